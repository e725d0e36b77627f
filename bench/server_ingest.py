"""Server ingest throughput and query latency (run with the dev venv).

    .venv/bin/python bench/server_ingest.py                       # SQLite in a temp dir
    .venv/bin/python bench/server_ingest.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/server_ingest.py --batches 200 --senders 4 --rounds 3

Starts ``aiscope serve`` as a subprocess on loopback, sends OTLP/HTTP protobuf
requests of ``--spans`` GenAI spans each from ``--senders`` threads, and reports
*stored* spans per second: a request is answered only after its transaction
commits, so when every request has been acknowledged every span is queryable
(the script checks the stored count). Then it times the dashboard queries (cost by
model/day, latency percentiles, first page of calls) over what was stored.
On PostgreSQL the run uses a fresh schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from aiscope.server.db import normalize_url
from aiscope.server.rollup import compact
from aiscope.server.tables import calls, rollups

MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"))


def payload(rng: random.Random, spans: int, start_ns: int) -> bytes:
    """One request of ``spans`` GenAI spans, one trace, realistic attributes."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bench"
    ss = rs.scope_spans.add()
    trace_id = rng.randbytes(16)
    for _ in range(spans):
        provider, model = rng.choice(MODELS)
        s = ss.spans.add()
        s.trace_id, s.span_id, s.name, s.kind = trace_id, rng.randbytes(8), f"chat {model}", 3
        s.start_time_unix_nano = start_ns + rng.randrange(60_000_000_000)
        s.end_time_unix_nano = s.start_time_unix_nano + int(rng.lognormvariate(20, 0.7))
        for key, sval in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", provider),
            ("gen_ai.request.model", model),
            ("aiscope.tag.feature", rng.choice(("search", "chat", "summary"))),
            ("aiscope.tag.team", rng.choice(("a", "b"))),
        ):
            kv = s.attributes.add()
            kv.key, kv.value.string_value = key, sval
        for key, ival in (
            ("gen_ai.usage.input_tokens", rng.randint(100, 4000)),
            ("gen_ai.usage.output_tokens", rng.randint(10, 800)),
        ):
            kv = s.attributes.add()
            kv.key, kv.value.int_value = key, ival
    return req.SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: str, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from aiscope.cli import main; main()"]
    proc = subprocess.Popen([*cmd, "serve", "--db", db, "--port", str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def ingest_round(port: int, bodies: list[bytes], senders: int) -> float:
    """Seconds to get every body acknowledged, sent by ``senders`` threads."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def send() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                r = client.post(
                    f"http://127.0.0.1:{port}/v1/traces",
                    content=body,
                    headers={"content-type": "application/x-protobuf"},
                )
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=send) for _ in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return elapsed


def time_query(port: int, path: str, params: dict[str, object], repeat: int) -> float:
    """Median milliseconds of ``repeat`` GETs (after one warm-up)."""
    times = []
    with httpx.Client(timeout=60) as client:
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            r = client.get(f"http://127.0.0.1:{port}{path}", params=params)
            dt = time.perf_counter() - t0
            r.raise_for_status()
            if i:
                times.append(dt * 1000)
    return statistics.median(times)


def dashboard_queries(now: float, span_s: float) -> list[tuple[str, str, dict[str, object]]]:
    """The web dashboard's time series over the whole range, and over its last day."""
    week = {"start": now - span_s, "end": now, "step": 3600}
    day = {"start": now - 86400, "end": now, "step": 900}
    return [
        ("series: cost by model, hourly", "/api/timeseries", {"metric": "cost", **week}),
        ("series: p95 latency by model, hourly", "/api/timeseries",
         {"metric": "latency", "q": 0.95, **week}),
        ("series: tokens by type, last day / 15 min", "/api/timeseries",
         {"metric": "tokens", "group_by": "type", **day}),
        ("series: p50/p95/p99 latency, last day / 15 min", "/api/timeseries",
         {"metric": "latency", "group_by": "none", **day}),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", help="postgresql://... (default: SQLite in a temporary directory)")
    ap.add_argument("--spans", type=int, default=512, help="spans per request")
    ap.add_argument("--batches", type=int, default=100, help="requests per round")
    ap.add_argument("--senders", type=int, default=4, help="concurrent senders")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--span-minutes", type=int, default=7 * 24 * 60, help="the calls' start times cover this"
    )
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    schema = None
    if args.db:
        schema = f"aiscope_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(normalize_url(args.db), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(normalize_url(args.db)).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        db = url.render_as_string(hide_password=False)
    else:
        db = f"sqlite:///{tmp.name}/bench.db"
    rng = random.Random(args.seed)
    now = time.time_ns()
    port = free_port()
    proc = start_server(db, port)
    try:
        rates = []
        for r in range(args.rounds):
            bodies = [
                payload(rng, args.spans, now - rng.randrange(args.span_minutes) * 60_000_000_000)
                for _ in range(args.batches)
            ]
            secs = ingest_round(port, bodies, args.senders)
            rates.append(args.batches * args.spans / secs)
            print(f"round {r + 1}: {args.batches * args.spans} spans in {secs:.2f} s")
        engine = create_engine(normalize_url(db))
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(calls)).scalar()
            n_rollups = conn.execute(select(func.count()).select_from(rollups)).scalar()
        t0 = time.perf_counter()
        while compact(engine):  # what the server's compactor does every 30 s
            pass
        compact_s = time.perf_counter() - t0
        if args.db:  # fresh statistics, as autovacuum gathers them within a minute or so
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
        with engine.connect() as conn:
            compacted = conn.execute(select(func.count()).select_from(rollups)).scalar()
        engine.dispose()
        sent = args.rounds * args.batches * args.spans
        assert stored == sent, f"stored {stored} of {sent} acknowledged spans"
        backend = "PostgreSQL" if args.db else "SQLite"
        print(
            f"{backend}: stored spans/s median {statistics.median(rates):,.0f} "
            f"(rounds: {', '.join(f'{x:,.0f}' for x in rates)}); "
            f"{stored:,} calls, {n_rollups:,} rollup rows, "
            f"{compacted:,} after compaction ({compact_s:.1f} s)"
        )
        for name, path, params in (
            ("cost by model", "/api/cost", {"group_by": "model"}),
            ("cost by day", "/api/cost", {"group_by": "day"}),
            ("latency p50/p95/p99 by model", "/api/latency", {}),
            ("calls, first page of 100", "/api/calls", {"limit": 100}),
            ("calls of one model, page", "/api/calls", {"model": "gpt-4o", "limit": 100}),
            *dashboard_queries(now / 1e9, args.span_minutes * 60),
        ):
            print(f"query {name}: median {time_query(port, path, params, 9):.1f} ms")
    finally:
        proc.terminate()
        proc.wait(30)
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
