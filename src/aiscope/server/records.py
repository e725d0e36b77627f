"""aiscope's own CallRecords (``POST /api/ingest/calls``) turned into an ingest batch.

Each record becomes the span the SDK's Tracer would have sent for it (the same
GenAI attributes, :func:`aiscope.tracing.attributes.record_attributes`), and that
span goes through :func:`aiscope.server.genai.call_row` like any OTLP span: one
pricing (a record's own cost is kept), one rollup path, one de-duplication key.
A record without trace/span ids gets ids derived from its ``request_id``, so a
batch sent twice (an exporter retrying) is stored once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from aiscope.cost.pricing import Pricing
from aiscope.record import CallRecord
from aiscope.server.genai import InvalidCall, call_row, check_bounds
from aiscope.server.ingest import Batch
from aiscope.server.otlp import Span
from aiscope.tracing import attributes as A

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def span_ids(record: CallRecord, where: str = "call") -> tuple[str, str]:
    """The record's (trace id, span id), derived from its request id when it has none."""
    digest = hashlib.sha256(record.request_id.encode()).hexdigest()
    trace_id, span_id = record.trace_id, record.span_id
    if trace_id is not None and not _HEX32.match(trace_id):
        raise ValueError(f"{where}: trace_id must be 32 lower-case hex digits, got {trace_id!r}")
    if span_id is not None and not _HEX16.match(span_id):
        raise ValueError(f"{where}: span_id must be 16 lower-case hex digits, got {span_id!r}")
    return trace_id or digest[:32], span_id or digest[32:48]


def record_span(record: CallRecord, where: str = "call") -> Span:
    """The OTLP span the SDK's Tracer makes of ``record``."""
    check_bounds(record, where)
    trace_id, span_id = span_ids(record, where)
    start_ns = int(record.start_time * 1e9)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=None,
        name=A.span_name(record.operation, record.model),
        kind=ProtoSpan.SPAN_KIND_CLIENT,
        start_ns=start_ns,
        end_ns=start_ns + round(record.latency_s * 1e9),
        error=record.status == "error",
        status_message=record.error_type or "",
        attributes=dict(A.record_attributes(record)),
        service_name=None,
    )


def to_batch(records: Sequence[CallRecord], project_id: str, pricing: Pricing) -> Batch:
    """The ingest batch of ``records``; ``ValueError`` names the first bad one."""
    batch = Batch()
    for i, record in enumerate(records):
        where = f"calls[{i}]"
        try:
            batch.calls.append(call_row(record_span(record, where), project_id, pricing))
        except InvalidCall as exc:
            raise ValueError(f"{where}: {exc}") from None
    return batch
