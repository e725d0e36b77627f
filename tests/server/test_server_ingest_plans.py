"""Ingest on PostgreSQL never plans a scan of a big table, whatever the statistics.

A fresh database (``CREATE DATABASE`` of the test's own), a project of 200,000 calls
and 200,000 spans that were never analyzed (autovacuum off on them, as it is on this
machine kind), and the real server ingesting over HTTP a new batch, the same batch
re-sent and a half-new one. Every statement the server runs is planned with
``auto_explain`` (JSON plans sent to the session as notices), so the plans checked
are the ones PostgreSQL really executed, including those of statements that bypass
SQLAlchemy. A statement may read ``calls``, ``spans`` or ``rollups`` only through a
unique index with every one of its columns bound: one row per probe.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from aiscope.cost.pricing import Pricing
from aiscope.server import Settings, create_project, open_database
from aiscope.server.db import normalize_url
from aiscope.server.explain import BIG_TABLES
from aiscope.server.ingest import to_batch, write
from aiscope.server.tables import calls, rollups, spans
from tests.server.fresh_pg import fresh_database
from tests.server.harness import mark_call, run_server, stored_counts

#: copies of the seed batch's rows: 500 calls and 500 spans each
COPIES = 400
AUTO_EXPLAIN = (
    "-csession_preload_libraries=auto_explain -cauto_explain.log_min_duration=0 "
    "-cauto_explain.log_level=notice -cauto_explain.log_format=json"
)


def _request(seed: int, n: int = 1000, trace: bytes | None = None) -> ExportTraceServiceRequest:
    """``n`` spans, every other one a GenAI call."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = trace or rng.randbytes(16)
        s.span_id, s.name = rng.randbytes(8), "chat"
        s.start_time_unix_nano = now - rng.randrange(86_400 * 10**9)
        s.end_time_unix_nano = s.start_time_unix_nano + 10**9
        if i % 2:
            mark_call(s, 100)
    return req


def _fill(engine: Engine, project_id: str) -> None:
    """A big project, never analyzed: a seed batch ingested, its rows copied in SQL under
    new trace ids (and its rollups under other minutes)."""
    with engine.begin() as conn:
        for table in (calls, spans, rollups):
            conn.execute(text(f"ALTER TABLE {table.name} SET (autovacuum_enabled = false)"))
    write(engine, to_batch(_request(1), project_id, Pricing()))
    with engine.begin() as conn:
        for table, changed in (
            (calls, {"trace_id": "md5(g::text || trace_id)"}),
            (spans, {"trace_id": "md5(g::text || trace_id)"}),
            (rollups, {"minute": "minute - g * 1440"}),
        ):
            cols = [c.name for c in table.c if not c.primary_key]
            values = [changed.get(c, c) for c in cols]
            conn.execute(
                text(
                    f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT {', '.join(values)} "
                    f"FROM {table.name}, generate_series(1, {COPIES}) AS g"
                )
            )


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _not_lookups(plan: dict[str, Any], unique: dict[str, list[str]]) -> list[str]:
    """The nodes of ``plan`` that read a big table other than by one unique key each."""
    bad = []
    for node in _nodes(plan["Plan"]):
        kind, table = node["Node Type"], node.get("Relation Name")
        if table not in BIG_TABLES or kind == "ModifyTable":  # the insert's own target
            continue
        if kind in ("Index Scan", "Index Only Scan"):
            probes = [node]
        elif kind == "Bitmap Heap Scan":
            probes = [n for n in _nodes(node) if n["Node Type"] == "Bitmap Index Scan"]
        else:
            probes = []
        if not probes or not all(
            p["Index Name"] in unique
            and all(
                re.search(rf"\b{col}\b", p.get("Index Cond", "")) for col in unique[p["Index Name"]]
            )
            for p in probes
        ):
            bad.append(f"{kind} on {table} ({plan['Query Text'][:200]})")
    return bad


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("aiscope_plans") as url:
        yield url


def test_every_ingest_statement_is_a_unique_index_lookup_without_statistics(database: str) -> None:
    engine = open_database(database)
    keys = create_project(engine, "big")
    _fill(engine, keys.project_id)
    engine.dispose()

    plans: list[dict[str, Any]] = []
    lock = threading.Lock()

    def collect(diag: Any) -> None:
        message = diag.message_primary or ""
        if "plan:" in message:
            with lock:
                plans.append(json.loads(message.split("plan:", 1)[1]))

    url = make_url(normalize_url(database)).update_query_dict({"options": AUTO_EXPLAIN})
    explained = create_engine(url)
    event.listen(
        explained, "connect", lambda dbapi_conn, _rec: dbapi_conn.add_notice_handler(collect)
    )
    with explained.connect() as conn:
        unique = {
            name: cols
            for name, cols in conn.execute(
                text(
                    "SELECT i.relname, array_agg(a.attname::text) FROM pg_index x "
                    "JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) "
                    "WHERE x.indisunique AND x.indrelid::regclass::text = ANY(:t) "
                    "GROUP BY i.relname"
                ),
                {"t": list(BIG_TABLES)},
            )
        }
        counted = conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
        # the duplicate check ingest ran before (a SELECT of the batch's trace ids)
        # reads far more than one key a probe: the check below sees it
        plans.clear()
        conn.execute(
            text(
                "SELECT trace_id, span_id FROM calls WHERE project_id = :p AND trace_id = ANY(:t)"
            ),
            {"p": keys.project_id, "t": [f"{i:032x}" for i in range(500)]},
        )
        conn.rollback()  # a portal's plan is logged when it is dropped (extended protocol)
        assert plans and _not_lookups(plans[0], unique), plans
    assert counted == 500 * (COPIES + 1)
    assert "ux_calls_project_trace_span" in unique and "ux_spans_project_trace_span" in unique

    plain = create_engine(normalize_url(database))  # the test's own reads: not checked

    def counts() -> tuple[int, int, int]:
        return stored_counts(plain)

    fresh = _request(2)
    half = _request(2, n=500)  # the first 500 of ``fresh`` again ...
    half.resource_spans[0].scope_spans[0].spans.extend(
        _request(3, n=500).resource_spans[0].scope_spans[0].spans
    )
    before = counts()
    gen = run_server(Settings(engine=explained, compact_every_s=None))
    server = next(gen)
    plans.clear()
    try:
        with httpx2.Client(base_url=server.url, timeout=60) as client:
            for req in (fresh, fresh, half):
                r = client.post(
                    "/v1/traces",
                    content=req.SerializeToString(),
                    headers={
                        "content-type": "application/x-protobuf",
                        "authorization": f"Bearer {keys.public_key}",
                    },
                )
                assert r.status_code == 200, r.text
    finally:
        gen.close()
    # 1,000 new spans, none of the re-sent ones, 500 of the half-new request
    assert counts() == (before[0] + 750, before[1] + 750, before[2] + 750)
    with lock:
        seen = list(plans)
    written = {
        n["Relation Name"]
        for p in seen
        for n in _nodes(p["Plan"])
        if n["Node Type"] == "ModifyTable"
    }
    assert {"calls", "spans"} <= written, [p["Query Text"] for p in seen]
    bad = [line for p in seen for line in _not_lookups(p, unique)]
    assert bad == [], bad
    with plain.connect() as conn:  # and still no statistics: nothing analyzed them
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_stats WHERE tablename = ANY(:t)"),
                {"t": list(BIG_TABLES)},
            ).scalar_one()
            == 0
        )
    explained.dispose()
    plain.dispose()
