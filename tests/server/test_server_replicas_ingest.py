"""Two ``aiscope serve`` processes on one PostgreSQL database ingest at once: every
span and call is stored exactly once, the rollups count each call once at every
resolution (with a compactor racing them), and the two never deadlock, though each
request is sent to both servers at the same moment, in opposite orders, and other
requests overlap them."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from aiscope.cost.pricing import Pricing
from aiscope.server import open_database
from aiscope.server.db import normalize_url
from aiscope.server.ingest import Batch, to_batch, write_many
from aiscope.server.rollup import RESOLUTIONS, compact
from tests.server.fresh_pg import fresh_database
from tests.server.harness import mark_call, serve_process, wait_healthy

BATCHES = 24
SPANS = 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spans(rng: random.Random) -> list[tuple[bytes, bytes, bool, int]]:
    """(trace id, span id, is a call, input tokens) of one batch: a few traces."""
    traces = [rng.randbytes(16) for _ in range(4)]
    return [
        (rng.choice(traces), rng.randbytes(8), i % 2 == 0, rng.randint(1, 5000))
        for i in range(SPANS)
    ]


def _body(spans: list[tuple[bytes, bytes, bool, int]]) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for n, (trace_id, span_id, is_call, tokens) in enumerate(spans):
        s = ss.spans.add()
        s.trace_id, s.span_id, s.name = trace_id, span_id, "chat"
        s.start_time_unix_nano = now - (n % 7) * 3_600_000_000_000
        s.end_time_unix_nano = s.start_time_unix_nano + 5_000_000
        if is_call:
            mark_call(s, tokens)
    return req.SerializeToString()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("aiscope_replicas") as url:
        yield url


def test_two_servers_on_one_database_store_everything_once(database: str) -> None:
    rng = random.Random(14)
    batches = [_spans(rng) for _ in range(BATCHES)]
    # each batch, and the halves of two neighbours joined: every span sent 4 times
    bodies = [_body(b) for b in batches] + [
        _body(batches[i][: SPANS // 2] + batches[(i + 1) % BATCHES][SPANS // 2 :])
        for i in range(BATCHES)
    ]
    calls_sent = {(t.hex(), s.hex()): tok for b in batches for t, s, c, tok in b if c}
    spans_sent = {(t.hex(), s.hex()) for b in batches for t, s, c, _ in b if not c}

    ports = [_free_port(), _free_port()]
    # started together: they also race to migrate the new database
    procs = [serve_process(database, port) for port in ports]
    engine = create_engine(normalize_url(database))
    failures: list[str] = []
    retried = 0
    lock = threading.Lock()

    def send(port: int, order: list[bytes]) -> None:
        nonlocal retried
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for body in order:
                for _ in range(20):  # as an OTLP exporter does: 503 is retried
                    r = client.post(
                        "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf"},
                    )
                    if r.status_code != 503:
                        break
                    with lock:
                        retried += 1
                    time.sleep(0.2)
                if r.status_code != 200:
                    with lock:
                        failures.append(f"{r.status_code} {r.text[:200]}")

    stop = threading.Event()
    compactions: list[int] = []

    def compactor() -> None:
        while not stop.is_set():
            compactions.append(compact(engine))

    try:
        for proc, port in zip(procs, ports, strict=True):
            wait_healthy(proc, port)
        forward, backward = bodies, bodies[::-1]
        # four clients a server: server 0 gets every body in one order, server 1 in the
        # other, so each body reaches both while their group commits hold other rows
        threads = [
            threading.Thread(target=send, args=(ports[0], forward[k::4])) for k in range(4)
        ] + [threading.Thread(target=send, args=(ports[1], backward[k::4])) for k in range(4)]
        racer = threading.Thread(target=compactor)
        racer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        racer.join()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    assert failures == []
    while compact(engine):
        pass
    with engine.connect() as conn:
        stored_calls = {
            (t, s): tok
            for t, s, tok in conn.execute(text("SELECT trace_id, span_id, input_tokens FROM calls"))
        }
        stored_spans = set(conn.execute(text("SELECT trace_id, span_id FROM spans")).tuples())
        n_calls = conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
        n_spans = conn.execute(text("SELECT count(*) FROM spans")).scalar_one()
        sums = {
            res: tuple(row)
            for res, *row in conn.execute(
                text(
                    "SELECT resolution, sum(calls), sum(input_tokens) FROM rollups "
                    "GROUP BY resolution"
                )
            )
        }
        time.sleep(1.5)  # the statistics of the servers' sessions are flushed each second
        deadlocks = conn.execute(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = :d"),
            {"d": make_url(database).database},
        ).scalar_one()
    engine.dispose()
    assert (n_calls, n_spans) == (len(calls_sent), len(spans_sent))
    assert stored_calls == calls_sent
    assert stored_spans == spans_sent
    tokens = sum(calls_sent.values())
    assert sums == {res: (len(calls_sent), tokens) for res in RESOLUTIONS}
    assert deadlocks == 0, f"{deadlocks} deadlocks ({retried} requests retried after a 503)"


def _write_at(
    start: threading.Barrier, engine: Engine, order: list[Batch], errors: list[BaseException]
) -> None:
    start.wait()
    try:
        write_many(engine, order)
    except BaseException as exc:  # the deadlock error, if any
        errors.append(exc)


def test_two_writers_given_the_same_batches_in_opposite_orders_never_deadlock(
    database: str,
) -> None:
    # what two replicas' group commits do when exporters retry to both: one writes
    # batches A then B, the other B then A, at the same moment. Rows inserted in batch
    # order would hold A's keys in one transaction and B's in the other, each then
    # waiting on the other's: PostgreSQL aborts one with a deadlock error.
    engines = [open_database(database), open_database(database)]
    rng = random.Random(7)
    try:
        for round_ in range(3):
            # two batches of 4,096 spans: long enough transactions to overlap
            a, b = (
                to_batch(ExportTraceServiceRequest.FromString(_body(spans)), "p", Pricing())
                for spans in ([x for _ in range(16) for x in _spans(rng)] for _ in range(2))
            )
            start = threading.Barrier(2)
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_write_at, args=(start, engines[0], [a, b], errors)),
                threading.Thread(target=_write_at, args=(start, engines[1], [b, a], errors)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == [], f"round {round_}: {errors[0]}"
        with engines[0].connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
            rolled = conn.execute(
                text("SELECT sum(calls) FROM rollups WHERE resolution = 1")
            ).scalar_one()
        assert n == rolled == 3 * 2 * 16 * SPANS // 2
    finally:
        for engine in engines:
            engine.dispose()
