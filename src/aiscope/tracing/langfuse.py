"""LangfuseExporter: spans to Langfuse's OpenTelemetry endpoint, LLM spans as generations.

Langfuse ingests OTLP/HTTP at ``{host}/api/public/otel/v1/traces`` with HTTP Basic
authentication (public key as user, secret key as password). It maps the GenAI
attributes (``gen_ai.request.model``, ``gen_ai.usage.*``, ``gen_ai.usage.cost``)
to a generation's model, usage and cost; this exporter adds, on copies of the
LLM spans, the Langfuse attributes that make that mapping explicit (observation
type, usage and cost details, completion start time, user and session ids).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope._fork import fork_safe_lock
from aiscope.tracing import attributes as A
from aiscope.tracing.otlp import fork_safe_session

log = logging.getLogger("aiscope.tracing")

DEFAULT_HOST = "https://cloud.langfuse.com"
OTEL_PATH = "/api/public/otel/v1/traces"

_USAGE_KEYS = {
    A.USAGE_INPUT_TOKENS: "input",
    A.USAGE_OUTPUT_TOKENS: "output",
    A.USAGE_CACHE_READ_INPUT_TOKENS: "input_cached_tokens",
    A.USAGE_CACHE_CREATION_INPUT_TOKENS: "input_cache_creation",
    A.USAGE_REASONING_OUTPUT_TOKENS: "output_reasoning_tokens",
}


class LangfuseExporter(SpanExporter):
    """Export to Langfuse (cloud or self-hosted) over OTLP/HTTP.

    Keys default to ``LANGFUSE_PUBLIC_KEY``/``LANGFUSE_SECRET_KEY`` and the host to
    ``LANGFUSE_HOST`` (else Langfuse Cloud).
    """

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        host: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        public_key = public_key if public_key is not None else os.environ.get("LANGFUSE_PUBLIC_KEY")
        secret_key = secret_key if secret_key is not None else os.environ.get("LANGFUSE_SECRET_KEY")
        host = host if host is not None else os.environ.get("LANGFUSE_HOST", DEFAULT_HOST)
        for name, value in (("public_key", public_key), ("secret_key", secret_key)):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"LangfuseExporter needs {name} (or LANGFUSE_{name.upper()}), got {value!r}"
                )
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http(s):// URL, got {host!r}")
        assert isinstance(public_key, str) and isinstance(secret_key, str)
        self.host = host.rstrip("/")
        self.endpoint = self.host + OTEL_PATH
        self.public_key = public_key
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        self._otlp = OTLPSpanExporter(
            endpoint=self.endpoint,
            headers={"Authorization": f"Basic {token}"},
            timeout=timeout,
            session=fork_safe_session(),  # a forked child connects afresh
        )
        self._lock = fork_safe_lock()  # taken on the export thread
        #: spans Langfuse accepted, and spans lost because an export failed
        self.exported = 0
        self.failed = 0
        self._failed_seen = 0  # ``failed`` as of the last force_flush

    def __repr__(self) -> str:  # never shows the secret key
        return f"LangfuseExporter(host={self.host!r}, public_key={self.public_key!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``, LLM spans marked as Langfuse generations; a failed export
        (an HTTP error, Langfuse unreachable) is counted in ``failed``."""
        try:
            result = self._otlp.export([as_generation(s) for s in spans])
        except Exception:
            result = SpanExportResult.FAILURE
            log.warning("Langfuse export raised; %d spans lost", len(spans), exc_info=True)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        """Close the HTTP session."""
        self._otlp.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here (the span processor batches). False when an export
        failed since the last flush: those spans did not reach Langfuse."""
        with self._lock:
            ok = self.failed == self._failed_seen
            self._failed_seen = self.failed
        return ok


def generation_attributes(attrs: Mapping[str, Any], start_time_ns: int | None) -> dict[str, Any]:
    """The Langfuse attributes for an LLM span with GenAI attributes ``attrs``."""
    out: dict[str, Any] = {"langfuse.observation.type": "generation"}
    model = attrs.get(A.RESPONSE_MODEL) or attrs.get(A.REQUEST_MODEL)
    if model:
        out["langfuse.observation.model.name"] = model
    usage = {name: attrs[key] for key, name in _USAGE_KEYS.items() if key in attrs}
    if usage:
        usage["total"] = int(usage.get("input", 0)) + int(usage.get("output", 0))
        out["langfuse.observation.usage_details"] = json.dumps(usage)
    cost = attrs.get(A.COST_USD)
    if cost is not None:
        out["gen_ai.usage.cost"] = cost
        out["langfuse.observation.cost_details"] = json.dumps({"total": cost})
    ttft = attrs.get(A.RESPONSE_TIME_TO_FIRST_CHUNK)
    if ttft is not None and start_time_ns is not None:
        started = datetime.fromtimestamp(start_time_ns / 1e9 + float(ttft), tz=UTC)
        out["langfuse.observation.completion_start_time"] = started.isoformat()
    for tag, target in (("user", "user.id"), ("session", "session.id")):
        value = attrs.get(A.TAG_PREFIX + tag)
        if value:
            out[target] = value
    if A.ERROR_TYPE in attrs:
        out["langfuse.observation.level"] = "ERROR"
        out["langfuse.observation.status_message"] = str(attrs[A.ERROR_TYPE])
    return out


def as_generation(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself, or for an LLM span a copy with the Langfuse attributes added."""
    attrs = span.attributes or {}
    if A.OPERATION_NAME not in attrs:
        return span
    merged = {**attrs, **generation_attributes(attrs, span.start_time)}
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=merged,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


__all__ = [
    "DEFAULT_HOST",
    "OTEL_PATH",
    "LangfuseExporter",
    "as_generation",
    "generation_attributes",
]
