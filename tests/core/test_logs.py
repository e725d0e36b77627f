"""Structured logging: JSON lines, trace/span ids on every record in a span, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from aiscope import InMemoryExporter, Tracer, configure_logging
from aiscope.logs import TRACE, JsonFormatter, SecretMaskingFilter, TraceContextFilter, mask_secrets

KEY = "sk-proj-LOGSECRET0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = configure_logging("TRACE", stream=out)
    yield out
    logging.getLogger("aiscope").removeHandler(handler)
    logging.getLogger("aiscope").setLevel(logging.NOTSET)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_trace_and_span_ids(stream: io.StringIO) -> None:
    mem = InMemoryExporter()
    tracer = Tracer(exporter=mem)
    log = logging.getLogger("aiscope.client")
    log.info("outside")
    with tracer.span("outer") as span:
        log.info("inside %s", "outer", extra={"model": "gpt-4o", "tokens": 12})
        log.log(TRACE, "frame %d", 1)
    outside, inside, frame = _lines(stream)
    assert "trace_id" not in outside
    ctx = span.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert inside["message"] == "inside outer" and inside["level"] == "INFO"
    assert inside["logger"] == "aiscope.client"
    assert inside["model"] == "gpt-4o" and inside["tokens"] == 12
    assert frame["level"] == "TRACE" and frame["span_id"] == inside["span_id"]


def test_secrets_masked_in_messages_args_and_exceptions(stream: io.StringIO) -> None:
    log = logging.getLogger("aiscope")
    log.warning("Authorization: Bearer %s", KEY)
    log.info("key in a dict %s", {"api_key": KEY})
    try:
        raise ValueError(f"Incorrect API key provided: {KEY}")
    except ValueError:
        log.exception("call failed")
    text = stream.getvalue()
    assert "LOGSECRET" not in text
    assert len(_lines(stream)) == 3 and "exception" in _lines(stream)[2]


def test_plain_text_format_has_ids() -> None:
    out = io.StringIO()
    handler = configure_logging(logging.INFO, json_lines=False, stream=out)
    try:
        logging.getLogger("aiscope").info("hello x-api-key: %s", KEY)
    finally:
        logging.getLogger("aiscope").removeHandler(handler)
    line = out.getvalue()
    assert "INFO aiscope [trace= span=] hello" in line and "LOGSECRET" not in line


def test_filters_and_formatter_work_on_any_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(TraceContextFilter())
    handler.addFilter(SecretMaskingFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("myapp.test")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("token=%s", f"Bearer {KEY}")
    finally:
        log.removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    assert "LOGSECRET" not in line and json.loads(line)["level"] == "ERROR"


def test_mask_secrets_shapes() -> None:
    for text in (
        f"Bearer {KEY}",
        f"x-api-key: {KEY}",
        f"api_key={KEY}",
        f"plain {KEY} in text",
        "sk-ant-api03-LOGSECRET0123456789",
        "secret_key='LOGSECRET0123456789'",
        "AIzaLOGSECRET0123456789",
    ):
        assert "LOGSECRET" not in mask_secrets(text), text
    assert mask_secrets("the skeleton key-value is fine") == "the skeleton key-value is fine"


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging("LOUD")
