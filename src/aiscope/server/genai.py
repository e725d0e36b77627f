"""GenAI spans become calls: OpenTelemetry GenAI semantic-convention attributes
(``gen_ai.*``) plus aiscope's own (``aiscope.cost_usd``, ``aiscope.tag.*``).

A span is a call when it names a model (``gen_ai.request.model`` or
``gen_ai.response.model``). Its cost is the span's ``aiscope.cost_usd`` when
present, otherwise it is priced here by :class:`~aiscope.cost.pricing.Pricing`,
the same code the SDK prices with, at the span's start time.
"""

from __future__ import annotations

from typing import Any

from aiscope.cost.pricing import Pricing
from aiscope.record import CallRecord, Usage
from aiscope.server.otlp import Span
from aiscope.server.queries import MAX_TIME
from aiscope.tracing import attributes as A

# the names the SDK's tracer writes (one list, in aiscope.tracing.attributes)
OPERATION = A.OPERATION_NAME
PROVIDER = A.PROVIDER_NAME
SYSTEM = "gen_ai.system"  # the name before semantic conventions 1.37 (read, never written)
REQUEST_MODEL = A.REQUEST_MODEL
RESPONSE_MODEL = A.RESPONSE_MODEL
INPUT_TOKENS = A.USAGE_INPUT_TOKENS
OUTPUT_TOKENS = A.USAGE_OUTPUT_TOKENS
CACHE_READ_TOKENS = A.USAGE_CACHE_READ_INPUT_TOKENS
CACHE_WRITE_TOKENS = A.USAGE_CACHE_CREATION_INPUT_TOKENS
REASONING_TOKENS = A.USAGE_REASONING_OUTPUT_TOKENS
TIME_TO_FIRST_CHUNK = A.RESPONSE_TIME_TO_FIRST_CHUNK  # seconds
ERROR_TYPE = A.ERROR_TYPE
COST_USD = A.COST_USD
REQUEST_ID = A.REQUEST_ID
TAG_PREFIX = A.TAG_PREFIX


class InvalidCall(ValueError):
    """A GenAI span whose numbers are inconsistent (kept as a plain span)."""


#: bounds that keep every stored number, and every sum of a project's numbers, inside
#: its column (BIGINT minutes and token sums, finite costs): no real call comes near
_LIMITS = (
    ("start_time", MAX_TIME),
    ("latency_s", 1e7),
    ("time_to_first_token_s", 1e7),
    ("cost_usd", 1e6),
)
MAX_TOKENS = 10**12
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def check_bounds(record: CallRecord, where: str = "call") -> None:
    """``ValueError`` naming a number too large to be a real call's."""
    for name, limit in _LIMITS:
        value = getattr(record, name)
        if value is not None and value >= limit:
            raise ValueError(f"{where}: {name} must be below {limit:g}, got {value!r}")
    u = record.usage
    for name in _TOKEN_FIELDS:
        if getattr(u, name) > MAX_TOKENS:
            raise ValueError(f"{where}: usage.{name} must be at most {MAX_TOKENS}")


def text(value: object, limit: int) -> str:
    """``value`` as text that fits its column: no NUL (PostgreSQL refuses it in text),
    at most ``limit`` characters."""
    out = str(value)
    if "\x00" in out:
        out = out.replace("\x00", "\ufffd")
    return out[:limit]


def _opt(value: object, limit: int) -> str | None:
    return text(value, limit) if value not in (None, "") else None


def is_call(attributes: dict[str, Any]) -> bool:
    """Whether a span with these attributes describes one GenAI call."""
    return bool(attributes.get(REQUEST_MODEL) or attributes.get(RESPONSE_MODEL))


def _count(attrs: dict[str, Any], key: str) -> int:
    value = attrs.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidCall(f"{key} must be an integer, got {value!r}")
    try:
        n = int(value)
    except (ValueError, OverflowError):  # "x", NaN, Infinity
        raise InvalidCall(f"{key} must be an integer, got {value!r}") from None
    if n < 0 or n != float(value):
        raise InvalidCall(f"{key} must be a whole number >= 0, got {value!r}")
    return n


def _seconds(attrs: dict[str, Any], key: str) -> float | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCall(f"{key} must be a number, got {value!r}")
    if not 0 <= value < float("inf"):
        raise InvalidCall(f"{key} must be a finite number >= 0, got {value!r}")
    return float(value)


def call_row(span: Span, project_id: str, pricing: Pricing) -> dict[str, Any]:
    """The ``calls`` row of a GenAI span; :class:`InvalidCall` names a bad attribute."""
    a = span.attributes
    model = text(a.get(REQUEST_MODEL) or a.get(RESPONSE_MODEL), 256)
    response_model = _opt(a.get(RESPONSE_MODEL), 256)
    provider = text(a.get(PROVIDER) or a.get(SYSTEM) or "unknown", 128)
    try:
        usage = Usage(
            input_tokens=_count(a, INPUT_TOKENS),
            output_tokens=_count(a, OUTPUT_TOKENS),
            cache_read_tokens=_count(a, CACHE_READ_TOKENS),
            cache_write_tokens=_count(a, CACHE_WRITE_TOKENS),
            reasoning_tokens=_count(a, REASONING_TOKENS),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidCall(str(exc)) from None
    start = span.start_ns / 1e9
    latency_s = max(0, span.end_ns - span.start_ns) / 1e9
    ttft = _seconds(a, TIME_TO_FIRST_CHUNK)
    tags = {
        text(k[len(TAG_PREFIX) :], 256): text(v, 1024)
        for k, v in a.items()
        if k.startswith(TAG_PREFIX)
    }
    error_type = a.get(ERROR_TYPE)
    record = CallRecord(
        model=model,
        provider=provider,
        operation=text(a.get(OPERATION) or "chat", 64),
        request_id=span.span_id,  # not used here: saves generating a uuid per span
        response_model=response_model,
        start_time=start,
        latency_s=latency_s,
        usage=usage,
        cost_usd=_seconds(a, COST_USD),
        status="error" if span.error or error_type else "ok",
    )
    try:
        check_bounds(record, "span")
    except ValueError as exc:
        raise InvalidCall(str(exc)) from None
    # keeps a cost the span already carries; a failed call without usage is "no_usage"
    pricing.price_record(record)
    return {
        "project_id": project_id,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": text(span.name, 512),
        "service_name": _opt(span.service_name, 256),
        "request_id": _opt(a.get(REQUEST_ID), 128),
        "operation": record.operation,
        "provider": provider,
        "model": model,
        "response_model": record.response_model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "latency_ms": latency_s * 1000.0,
        "ttft_ms": None if ttft is None else ttft * 1000.0,
        "cost_usd": record.cost_usd,
        "cost_status": record.cost_status,
        "status": record.status,
        "error_type": _opt(error_type, 256),
        "feature": _opt(tags.get("feature"), 256),
        "team": _opt(tags.get("team"), 256),
        "tags": tags,
        "start_ts": start,
    }
