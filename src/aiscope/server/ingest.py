"""Turning one OTLP request into rows, and writing the rows of one or several
requests in one transaction (:mod:`aiscope.server.writer` groups them).

The transaction commits before the HTTP answers are sent, so an acknowledged
request is on disk (SQLite ``synchronous=FULL``; PostgreSQL's commit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeVar

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import JSON as JSON_TYPE
from sqlalchemy import Column, Connection, Engine, MetaData, Table, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from aiscope.cost.pricing import Pricing
from aiscope.server import otlp
from aiscope.server.db import write_lock
from aiscope.server.genai import InvalidCall, call_row, is_call, text
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
                "name": text(s.name, 512),
                "kind": s.kind,
                "start_ts": s.start_ns / 1e9,
                "end_ts": s.end_ns / 1e9,
                "status": "error" if s.error else "ok",
                "service_name": None if s.service_name is None else text(s.service_name, 256),
                "attributes": s.attributes,
            }
        )
    return batch


def write(engine: Engine, batch: Batch) -> None:
    """Insert the batch's spans, calls and rollups in one transaction."""
    write_many(engine, [batch])


def write_many(engine: Engine, batches: Sequence[Batch]) -> None:
    """Insert the spans, calls and rollups of several batches in one transaction
    (group commit, see :mod:`aiscope.server.writer`)."""
    all_spans = [r for b in batches for r in b.spans]
    all_calls = [r for b in batches for r in b.calls]
    if not all_spans and not all_calls:
        return
    with write_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # the unique index decides what is new, one probe per row (ON CONFLICT):
            # no statement here reads calls or spans, so none can be planned as a scan
            # of the project whatever the statistics; replicas racing on the same
            # rows wait on each other's rows and store each once
            copy_new(conn, spans, all_spans)
            new_calls = _first_of(all_calls, copy_new(conn, calls, all_calls, keys=True))
            if new_calls:
                copy_rows(conn, rollups, rollup_rows(new_calls))
            return
        # SQLite always seeks the unique index for this lookup
        new_spans = _unseen(conn, spans, all_spans)
        new_calls = _unseen(conn, calls, all_calls)
        if new_spans:
            bulk_insert(conn, spans, new_spans)
        if new_calls:
            bulk_insert(conn, calls, new_calls)
            bulk_insert(conn, rollups, rollup_rows(new_calls))


def _first_of(
    rows: list[dict[str, Any]], inserted: set[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """The first of ``rows`` for each inserted (project, trace, span) key: the rows that
    were stored, each once however often the batch repeats it."""
    out = []
    for r in rows:
        key = (r["project_id"], r["trace_id"], r["span_id"])
        if key in inserted:
            inserted.discard(key)
            out.append(r)
    return out


def _unseen(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` minus the spans already stored (a re-sent batch) and repeats within it,
    so a retried request is stored, and counted in the rollups, once."""
    if not rows:
        return rows
    trace_ids: dict[str, set[str]] = {}
    for r in rows:
        trace_ids.setdefault(r["project_id"], set()).add(r["trace_id"])
    seen: set[tuple[str, str, str]] = set()
    for project_id, ids in trace_ids.items():
        ordered = sorted(ids)
        for i in range(0, len(ordered), 500):  # bounded IN lists
            seen.update(
                (project_id, t, s)
                for t, s in conn.execute(
                    select(table.c.trace_id, table.c.span_id).where(
                        table.c.project_id == project_id,
                        table.c.trace_id.in_(ordered[i : i + 500]),
                    )
                )
            )
    fresh = []
    for r in rows:
        key = (r["project_id"], r["trace_id"], r["span_id"])
        if key not in seen:
            seen.add(key)
            fresh.append(r)
    return fresh


_JSON = json.JSONEncoder(check_circular=False, separators=(",", ":"))


def _dumps(value: Any) -> str:
    """Compact JSON text of a column value: orjson (several times faster on the tags
    of every call); what it refuses (a lone surrogate from OTLP/JSON, an int past 64
    bits) through the standard library, as before."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _JSON.encode(value)


def _row_tuples(table: Table, rows: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
    """The column names of ``rows`` and each row as a tuple, JSON columns encoded: the
    rows hold only str/int/float/bool/None and JSON values, which drivers take as
    they are (SQLAlchemy's per-row parameter processing costs more than the insert
    itself at ingest rates)."""
    names = list(rows[0])
    json_at = [i for i, n in enumerate(names) if isinstance(table.c[n].type, JSON_TYPE)]
    values: list[Any] = list(map(itemgetter(*names), rows))  # the row tuples, in C
    if json_at:
        dumps = _dumps
        for i, row in enumerate(values):
            cells = list(row)
            for j in json_at:
                cells[j] = dumps(cells[j])
            values[i] = tuple(cells)
    return names, values


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows through the driver's ``executemany`` directly (SQLite)."""
    if not rows:
        return
    names, values = _row_tuples(table, rows)
    mark = "%s" if conn.dialect.paramstyle in ("pyformat", "format") else "?"
    conflict = " ON CONFLICT DO NOTHING" if table is not rollups else ""  # processes racing
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join([mark] * len(names))}){conflict}",
        values,
    )


def copy_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY`` ``rows`` into ``table`` (PostgreSQL): one stream, no statement per row."""
    if rows:
        names, values = _row_tuples(table, rows)
        _run_pg(conn, lambda cur: _copy(cur, table.name, names, values))


def copy_new(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, keys: bool = False
) -> set[tuple[str, str, str]]:
    """Store the ``rows`` whose (project, trace, span) is not stored yet (PostgreSQL);
    with ``keys`` return the keys of the rows inserted.

    ``COPY`` cannot skip a row that conflicts, so the rows are copied into a temporary
    table of the session (emptied at commit) and moved by ``INSERT ... SELECT ... ON
    CONFLICT DO NOTHING``: the unique index is the only thing consulted about the big
    table. They move in key order, so two transactions inserting overlapping rows (two
    replicas given the same retried batch) wait for each other in one order and never
    deadlock; the second one skips what the first stored.
    """
    if not rows:
        return set()
    names, values = _row_tuples(table, rows)
    cols = ", ".join(names)
    tmp = _temp_table(table)
    key = "project_id, trace_id, span_id"
    move = (
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {tmp.name} ORDER BY {key} "
        f"ON CONFLICT (project_id, trace_id, span_id) DO NOTHING"
    )

    def run(cur: Any) -> set[tuple[str, str, str]]:
        cur.execute(_temp_ddl(conn, tmp))
        _copy(cur, tmp.name, names, values)
        if not keys:
            cur.execute(move)
            return set()
        cur.execute(f"{move} RETURNING {key}")
        return set(map(tuple, cur.fetchall()))

    return _run_pg(conn, run)


def _copy(cur: Any, table_name: str, names: list[str], values: list[Any]) -> None:
    with cur.copy(f"COPY {table_name} ({', '.join(names)}) FROM STDIN") as copy:
        write_row = copy.write_row
        for row in values:
            write_row(row)


_T = TypeVar("_T")


def _run_pg(conn: Connection, run: Callable[[Any], _T]) -> _T:
    """``run(cursor)`` on the connection's psycopg cursor; driver errors become
    SQLAlchemy's, so a lost connection or a lock timeout is still a 503."""
    dbapi = conn.dialect.loaded_dbapi
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return run(cursor)
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()


_TEMP: dict[str, Table] = {}
_TEMP_DDL: dict[str, str] = {}


def _temp_table(table: Table) -> Table:
    """The session's temporary twin of ``table``: its columns but the id, no index or
    constraint, rows deleted at commit."""
    tmp = _TEMP.get(table.name)
    if tmp is None:
        tmp = _TEMP[table.name] = Table(
            f"aiscope_ingest_{table.name}",
            MetaData(),
            *(Column(c.name, c.type) for c in table.c if not c.primary_key),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
    return tmp


def _temp_ddl(conn: Connection, tmp: Table) -> str:
    ddl = _TEMP_DDL.get(tmp.name)
    if ddl is None:
        ddl = str(CreateTable(tmp, if_not_exists=True).compile(dialect=conn.dialect))
        _TEMP_DDL[tmp.name] = ddl
    return ddl
