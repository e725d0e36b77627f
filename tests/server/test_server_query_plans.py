"""Every read of ``aiscope.server.queries`` seeks through an index: none reads a whole
table of calls, spans or rollups, and a page of calls filtered by any column the
dashboard offers comes out of its index in order (no sort), on SQLite and PostgreSQL.
The SQL checked is what the query functions really run (captured, then EXPLAINed)."""

from __future__ import annotations

import json
import random
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, event, text

from aiscope.cost.pricing import Pricing
from aiscope.server import queries
from aiscope.server.explain import plans_of
from aiscope.server.ingest import to_batch, write
from aiscope.server.tables import FILTERED_CALL_COLUMNS
from tests.server.harness import stored_counts

P = "p1"
TRACE = "0" * 31 + "1"


@pytest.fixture
def filled(engine: Engine) -> Engine:
    """A few hundred calls; the values the tests filter by are rare (1 in 20), as a
    model or a team is among many."""
    rng = random.Random(3)

    def pick(rare: str, common: str) -> str:
        return rare if rng.random() < 0.05 else common

    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(400):
        s = ss.spans.add()
        s.trace_id = bytes.fromhex(TRACE) if i < 3 else rng.randbytes(16)
        s.span_id = rng.randbytes(8)
        s.name = "chat"
        s.start_time_unix_nano = now - rng.randrange(86_400 * 10**9)
        s.end_time_unix_nano = s.start_time_unix_nano + 10**9
        if rng.random() < 0.05:
            s.status.code = 2  # STATUS_CODE_ERROR
        for key, value in (
            ("gen_ai.request.model", pick("o3", "gpt-4o")),
            ("gen_ai.provider.name", pick("mistral", "openai")),
            ("gen_ai.operation.name", pick("embeddings", "chat")),
            ("aiscope.tag.feature", pick("search", "chat")),
            ("aiscope.tag.team", pick("b", "a")),
        ):
            kv = s.attributes.add()
            kv.key, kv.value.string_value = key, value
    write(engine, to_batch(req, P, Pricing()))
    if engine.dialect.name == "postgresql":  # as autovacuum does; SQLite's server never does
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return engine


FILTER_VALUES = {
    "model": "o3",
    "provider": "mistral",
    "feature": "search",
    "team": "b",
    "status": "error",
    "operation": "embeddings",
    "trace_id": TRACE,
}


def test_every_filter_column_is_covered_here() -> None:
    assert set(FILTER_VALUES) == set(FILTERED_CALL_COLUMNS)
    assert set(FILTERED_CALL_COLUMNS) == set(queries.CALL_FILTERS)


@pytest.mark.parametrize("column", FILTERED_CALL_COLUMNS)
def test_a_filtered_page_of_calls_seeks_its_index_in_order(filled: Engine, column: str) -> None:
    now = time.time()
    for kwargs in (
        {},
        {"start": now - 3600, "end": now},
        {"cursor": f"{now - 60!r}:1000"},
    ):
        (plan,) = plans_of(
            filled,
            lambda kw=kwargs: queries.list_calls(
                filled, P, filters={column: FILTER_VALUES[column]}, **kw
            ),
            prefer_index=True,
        )
        assert plan.bounded_by(column), f"{column} {kwargs}:\n{plan}"
        assert plan.sorts() == [], f"{column} {kwargs}:\n{plan}"
        assert plan.full_scans() == [], f"{column} {kwargs}:\n{plan}"


def test_the_newest_calls_page_reads_the_time_index_in_order(filled: Engine) -> None:
    (plan,) = plans_of(filled, lambda: queries.list_calls(filled, P), prefer_index=True)
    assert plan.bounded_by("project_id"), str(plan)
    assert plan.sorts() == [], str(plan)
    assert plan.full_scans() == [], str(plan)


def test_a_trace_reads_only_its_spans_and_calls(filled: Engine) -> None:
    plans = plans_of(filled, lambda: queries.trace_tree(filled, P, TRACE), prefer_index=True)
    assert len(plans) == 2
    for plan in plans:
        assert plan.bounded_by("trace_id"), str(plan)
        assert plan.full_scans() == [], str(plan)
    # no index orders one trace's calls by time: a trace is small, sorting it is cheap
    with filled.begin() as conn:
        conn.execute(text("ANALYZE"))
    (plan,) = plans_of(filled, lambda: queries.list_calls(filled, P, filters={"trace_id": TRACE}))
    assert plan.bounded_by("trace_id") or filled.dialect.name == "sqlite", str(plan)
    assert plan.full_scans() == [], str(plan)


@pytest.mark.parametrize("group_by", queries.GROUPS)
def test_aggregates_read_rollups_by_time_range(filled: Engine, group_by: str) -> None:
    now = time.time()
    for start, end in ((None, None), (now - 86_400 * 3.5, now)):
        plans = [
            *plans_of(
                filled,
                lambda s=start, e=end: queries.cost_by(filled, P, group_by, start=s, end=e),
                prefer_index=True,
            ),
            *plans_of(
                filled,
                lambda s=start, e=end: queries.latency_by_model(filled, P, start=s, end=e),
                prefer_index=True,
            ),
        ]
        assert len(plans) == 2
        for plan in plans:
            assert plan.bounded_by("minute"), str(plan)
            assert plan.full_scans() == [], str(plan)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_duplicate_check_of_a_batch_seeks_the_unique_index_whatever_the_statistics(
    filled: Engine,
) -> None:
    # 400 analyzed rows in one project: a planner left to itself reads such a table
    # by project and filters the trace ids, as it may a big table with stale statistics
    plans: list[str] = []

    @event.listens_for(filled, "before_cursor_execute")
    def explain_in_place(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "trace_id" in statement:
            # EXPLAINed in the writer's own transaction: its settings are the ones used
            raw = conn.connection.dbapi_connection.cursor()
            raw.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plans.append(json.dumps(raw.fetchone()[0]))

    def batch(seed: int) -> ExportTraceServiceRequest:
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        rng = random.Random(seed)
        for i in range(300):
            s = ss.spans.add()
            s.trace_id, s.span_id, s.name = rng.randbytes(16), rng.randbytes(8), "chat"
            s.start_time_unix_nano = time.time_ns()
            if i % 2:  # calls and plain spans: both tables are checked
                kv = s.attributes.add()
                kv.key, kv.value.string_value = "gen_ai.request.model", "gpt-4o"
        return req

    def counts() -> tuple[int, int, int]:
        return stored_counts(filled)

    before = counts()
    try:
        write(filled, to_batch(batch(4), P, Pricing()))
        once = counts()
        write(filled, to_batch(batch(4), P, Pricing()))  # re-sent: nothing new
    finally:
        event.remove(filled, "before_cursor_execute", explain_in_place)
    assert once == (before[0] + 150, before[1] + 150, before[2] + 150)
    assert counts() == once
    for plan in plans:
        assert "Seq Scan" not in plan and '"Index Cond": "((project_id)::text' not in plan, plan
