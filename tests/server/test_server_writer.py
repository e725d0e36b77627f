"""Group commit: batches that wait together are written in one transaction, each
request's future completes only once its rows are committed, and one bad batch in a
group fails alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.engine import make_url

from aiscope.cost.pricing import Pricing
from aiscope.server import Settings, open_database
from aiscope.server.auth import ensure_local_project
from aiscope.server.db import write_lock
from aiscope.server.ingest import Batch, to_batch
from aiscope.server.tables import calls, rollups
from aiscope.server.writer import GroupWriter
from tests.server.harness import Running, run_server

PRICING = Pricing()


def _request(n: int, spans: int = 8, model: str = "gpt-4o") -> ExportTraceServiceRequest:
    """``spans`` GenAI spans of trace number ``n``."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(spans):
        s = ss.spans.add()
        s.trace_id = n.to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = "chat"
        s.start_time_unix_nano = now
        s.end_time_unix_nano = now + 2_000_000
        for key, value in (("gen_ai.request.model", model), ("gen_ai.provider.name", "openai")):
            kv = s.attributes.add()
            kv.key, kv.value.string_value = key, value
        kv = s.attributes.add()
        kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", 10
    return req


def _batch(n: int, spans: int = 8, model: str = "gpt-4o") -> Batch:
    return to_batch(_request(n, spans, model), "p1", PRICING)


def _count(engine: Engine, trace_n: int | None = None) -> int:
    q = select(func.count()).select_from(calls)
    if trace_n is not None:
        q = q.where(calls.c.trace_id == trace_n.to_bytes(16, "big").hex())
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


@contextmanager
def _writes_blocked(engine: Engine) -> Iterator[None]:
    """Hold off every writer: SQLite's in-process write lock, or a PostgreSQL table lock
    (reads still pass)."""
    if engine.dialect.name == "sqlite":
        with write_lock(engine):
            yield
        return
    with engine.begin() as conn:
        conn.execute(text("LOCK TABLE calls IN EXCLUSIVE MODE"))
        yield


def test_waiting_batches_share_one_commit(engine: Engine) -> None:
    writer = GroupWriter(engine, writers=1)  # one thread: the groups are exactly known
    try:
        with _writes_blocked(engine):
            futures = [writer.submit(_batch(1))]
            time.sleep(0.2)  # the writer holds the first batch, blocked
            futures += [writer.submit(_batch(n)) for n in range(2, 21)]  # these queue
            time.sleep(0.2)
            assert not any(f.done() for f in futures)  # nothing answered before its commit
            assert _count(engine) == 0
        for f in futures:
            f.result(timeout=30)
        # the first batch alone, then the 19 that waited, together
        assert (writer.commits, writer.batches) == (2, 20)
        assert _count(engine) == 20 * 8
        with engine.connect() as conn:
            rolled = conn.execute(
                select(func.sum(rollups.c.calls)).where(rollups.c.resolution == 1)
            ).scalar_one()
        assert rolled == 20 * 8
    finally:
        writer.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_postgresql_two_groups_commit_side_by_side(engine: Engine) -> None:
    writer = GroupWriter(engine)
    assert writer.writers == 2
    try:
        with _writes_blocked(engine):
            futures = [writer.submit(_batch(1))]
            time.sleep(0.2)  # one writer holds the first batch, blocked
            futures.append(writer.submit(_batch(2)))
            time.sleep(0.2)  # the other holds the second, blocked too
            futures += [writer.submit(_batch(n)) for n in range(3, 21)]  # these queue
            time.sleep(0.2)
            assert not any(f.done() for f in futures)
        for f in futures:
            f.result(timeout=30)
        # two groups of one batch each in flight at once, then the 18 that waited
        assert (writer.commits, writer.batches) == (3, 20)
        assert _count(engine) == 20 * 8
    finally:
        writer.close()


def test_a_future_completes_only_after_its_rows_are_committed(engine: Engine) -> None:
    writer = GroupWriter(engine)
    try:
        for n in range(1, 6):
            writer.submit(_batch(n)).result(timeout=30)
            assert _count(engine, n) == 8  # visible from another connection at once
    finally:
        writer.close()


def test_resent_batches_in_one_group_are_stored_once(engine: Engine) -> None:
    writer = GroupWriter(engine)
    try:
        with _writes_blocked(engine):
            futures = [writer.submit(_batch(1)) for _ in range(4)]
            time.sleep(0.2)
        for f in futures:
            f.result(timeout=30)
        assert _count(engine) == 8
        with engine.connect() as conn:
            rolled = conn.execute(
                select(func.sum(rollups.c.calls)).where(rollups.c.resolution == 1)
            ).scalar_one()
        assert rolled == 8
    finally:
        writer.close()


def test_one_failing_batch_fails_alone(engine: Engine) -> None:
    writer = GroupWriter(engine)
    bad = _batch(99)
    bad.calls[3]["model"] = None  # NOT NULL: the database refuses the whole statement
    try:
        with _writes_blocked(engine):
            first = writer.submit(_batch(1))
            time.sleep(0.2)
            group = [writer.submit(_batch(2)), writer.submit(bad), writer.submit(_batch(3))]
            time.sleep(0.2)
        first.result(timeout=30)
        group[0].result(timeout=30)
        group[2].result(timeout=30)
        with pytest.raises(Exception, match=r"(?i)null"):
            group[1].result(timeout=30)
        assert [_count(engine, n) for n in (1, 2, 99, 3)] == [8, 8, 0, 8]
    finally:
        writer.close()


def test_close_writes_what_is_queued_then_refuses(engine: Engine) -> None:
    writer = GroupWriter(engine)
    with _writes_blocked(engine):
        futures = [writer.submit(_batch(n)) for n in range(1, 4)]
        closing = threading.Thread(target=writer.close)
        closing.start()
        time.sleep(0.2)
    closing.join(30)
    assert all(f.done() and f.exception() is None for f in futures)
    assert _count(engine) == 3 * 8
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(_batch(7))
    assert writer.submit(Batch()).result(timeout=1) is None  # nothing to write: no thread needed


def test_concurrent_requests_share_commits_and_are_answered_after_them(
    local_server: Running,
) -> None:
    engine = local_server.engine
    writer: GroupWriter = local_server.app.state.writer
    answers: list[int] = []

    def send(n: int) -> None:
        r = httpx2.post(
            f"{local_server.url}/v1/traces",
            content=_request(n).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=60,
        )
        answers.append(r.status_code)

    senders = [threading.Thread(target=send, args=(n,)) for n in range(1, 13)]
    with _writes_blocked(engine):
        for t in senders:
            t.start()
        time.sleep(1.0)  # every request decoded and waiting on the blocked writer
        assert answers == []  # no answer before the commit
    for t in senders:
        t.join(60)
    assert answers == [200] * 12
    assert _count(engine) == 12 * 8
    assert writer.batches == 12
    assert writer.commits < 12  # the requests that waited shared transactions


def test_a_store_that_cannot_write_answers_503_then_takes_the_retry(db_url: str) -> None:
    """A locked (or unreachable) store: 503 with Retry-After, which OTLP exporters retry,
    not a 500 they would drop the spans after; the retry is stored once."""
    sqlite = db_url.startswith("sqlite")
    if sqlite:
        engine = open_database(db_url)
        # give up on SQLite's lock after 0.2 s instead of 10 s
        event.listen(engine, "connect", lambda conn, _r: conn.execute("PRAGMA busy_timeout=200"))
        engine.dispose()
    else:
        url = make_url(db_url)
        options = f"{url.query['options']} -clock_timeout=200"
        engine = open_database(url.update_query_dict({"options": options}).render_as_string(False))
    ensure_local_project(engine)
    if sqlite:
        blocker = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process's write transaction
        release, close = blocker.rollback, blocker.close
    else:
        lock_conn = engine.connect()
        lock_conn.execute(text("LOCK TABLE calls IN EXCLUSIVE MODE"))
        release, close = lock_conn.rollback, lock_conn.close
    body = _request(5).SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    try:
        for running in run_server(Settings(engine=engine, local_only=True)):
            r = httpx2.post(f"{running.url}/v1/traces", content=body, headers=headers, timeout=30)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert "retry" in r.json()["detail"]
            release()
            r = httpx2.post(f"{running.url}/v1/traces", content=body, headers=headers, timeout=30)
            assert r.status_code == 200
            assert _count(engine, 5) == 8
    finally:
        release()
        close()
        engine.dispose()
