"""Turning one OTLP request into rows, and writing them in one transaction.

The transaction commits before the HTTP answer is sent, so an acknowledged
request is on disk (SQLite ``synchronous=FULL``; PostgreSQL's commit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import JSON as JSON_TYPE
from sqlalchemy import Connection, Engine, Table

from aiscope.cost.pricing import Pricing
from aiscope.server import otlp
from aiscope.server.db import write_lock
from aiscope.server.genai import InvalidCall, call_row, is_call
from aiscope.server.rollup import rollup_rows
from aiscope.server.tables import calls, rollups, spans


@dataclass(slots=True)
class Batch:
    """The rows of one request, and what was wrong with the spans that are not calls."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def to_batch(request: ExportTraceServiceRequest, project_id: str, pricing: Pricing) -> Batch:
    """Rows for every span of ``request`` (a call's span is its ``calls`` row).

    A GenAI span with bad numbers stays a plain span and is counted as rejected
    (OTLP partial success) with the reason.
    """
    batch = Batch()
    for s in otlp.spans(request):
        if len(s.trace_id) != 32 or len(s.span_id) != 16:
            batch.rejected += 1
            batch.errors.append(f"span {s.name!r}: trace_id/span_id missing or malformed")
            continue
        if is_call(s.attributes):
            try:
                batch.calls.append(call_row(s, project_id, pricing))
                continue
            except InvalidCall as exc:  # kept below as a plain span
                batch.rejected += 1
                batch.errors.append(f"span {s.span_id}: {exc}")
        batch.spans.append(
            {
                "project_id": project_id,
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "name": s.name[:512],
                "kind": s.kind,
                "start_ts": s.start_ns / 1e9,
                "end_ts": s.end_ns / 1e9,
                "status": "error" if s.error else "ok",
                "service_name": s.service_name,
                "attributes": s.attributes,
            }
        )
    return batch


def write(engine: Engine, batch: Batch) -> None:
    """Insert the batch's spans, calls and rollups in one transaction."""
    if not batch.spans and not batch.calls:
        return
    with write_lock(engine), engine.begin() as conn:
        if batch.spans:
            bulk_insert(conn, spans, batch.spans)
        if batch.calls:
            bulk_insert(conn, calls, batch.calls)
            bulk_insert(conn, rollups, rollup_rows(batch.calls))


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows through the driver's ``executemany`` directly.

    SQLAlchemy's per-row parameter processing costs more than the insert itself
    at ingest rates; the rows here hold only str/int/float/bool/None and JSON
    columns (encoded here), which both drivers take as they are.
    """
    names = list(rows[0])
    json_cols = [n for n in names if isinstance(table.c[n].type, JSON_TYPE)]
    if json_cols:
        rows = [{**r, **{c: json.dumps(r[c]) for c in json_cols}} for r in rows]
    style = "%({})s" if conn.dialect.paramstyle == "pyformat" else ":{}"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join(style.format(n) for n in names)})"
    )
    conn.exec_driver_sql(sql, rows)
