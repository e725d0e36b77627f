"""Logging under the ``aiscope`` logger: a TRACE level, JSON lines, trace ids, secret masking.

INFO carries request/response summaries, DEBUG protocol loading and pipeline
stages, TRACE individual stream frames and JSONPath matches.
:func:`configure_logging` installs a handler on the ``aiscope`` logger whose
records carry the current ``trace_id``/``span_id`` and never an API key; its
pieces (:class:`JsonFormatter`, :class:`TraceContextFilter`,
:class:`SecretMaskingFilter`) also fit any handler of your own.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from aiscope.masking import mask_secrets as mask_secrets  # its documented home is here too
from aiscope.record import CallRecord
from aiscope.sink import SinkBase

#: Below DEBUG: individual stream frames and JSONPath matches.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex; empty outside a span) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None):
            return True  # a call's summary carries its own call span's ids
        from opentelemetry import trace  # loaded only once something logs through us

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = ""
            record.span_id = ""
        return True


#: one INFO line a call, whichever adapter captured it (AiClient, the SDK
#: instrumentation, llm_call/record_call), with the call's own trace and span ids
calls_log = logging.getLogger("aiscope.calls")


_INFO = logging.INFO


class CallLog(SinkBase):
    """The logs sink: one INFO summary line a finished call in the ``aiscope.calls``
    logger, carrying the call's ``trace_id``/``span_id`` (every Scope has one)."""

    __slots__ = ("_enabled", "logger")

    def __init__(self, logger: logging.Logger = calls_log) -> None:
        self.logger = logger
        self._enabled = logger.isEnabledFor  # bound once: this runs on every call

    def on_record(self, record: CallRecord) -> None:
        """Log ``record``'s summary when the logger is enabled for INFO."""
        if not self._enabled(_INFO):
            return
        logger = self.logger
        ids = {"trace_id": record.trace_id, "span_id": record.span_id} if record.trace_id else {}
        logger.info(
            "%s %s/%s status=%s latency=%.0fms tokens=%d/%d cost=%s retries=%d",
            record.operation,
            record.provider,
            record.model,
            record.status,
            record.latency_s * 1e3,
            record.usage.input_tokens,
            record.usage.output_tokens,
            "?" if record.cost_usd is None else f"${record.cost_usd:.6f}",
            record.retry_count,
            extra=ids,
        )


class SecretMaskingFilter(logging.Filter):
    """Masks API keys and bearer tokens in the message (arguments merged in) and
    in the exception text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw text, masked
            message = str(record.msg)
        record.msg = mask_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


#: LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "trace_id",
    "span_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, trace ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for key in ("trace_id", "span_id"):
            value = getattr(record, key, "")
            if value:
                out[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            out["exception"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = mask_secrets(record.exc_text)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(
    level: int | str = logging.INFO,
    *,
    json_lines: bool = True,
    stream: TextIO | None = None,
    logger: str = "aiscope",
) -> logging.Handler:
    """Send ``logger``'s records at ``level`` and above to ``stream`` (stderr), as
    JSON lines (or plain text with ``json_lines=False``), each with the current
    trace and span ids and with secrets masked. Returns the handler (calling
    again replaces it)."""
    if isinstance(level, str):
        name = level.upper()
        resolved = TRACE if name == "TRACE" else logging.getLevelName(name)
        if not isinstance(resolved, int):
            raise ValueError(f"level must be TRACE, DEBUG, INFO, WARNING or ERROR, got {level!r}")
        level = resolved
    target = logging.getLogger(logger)
    for old in list(target.handlers):
        if getattr(old, "_aiscope", False):
            target.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._aiscope = True  # type: ignore[attr-defined]
    for f in _filters():
        handler.addFilter(f)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"
        )
    )
    target.addHandler(handler)
    target.setLevel(level)
    return handler


def _filters() -> Iterable[logging.Filter]:
    return (TraceContextFilter(), SecretMaskingFilter())


__all__ = [
    "TRACE",
    "CallLog",
    "JsonFormatter",
    "SecretMaskingFilter",
    "TraceContextFilter",
    "configure_logging",
    "mask_secrets",
]
