"""Server ingest throughput, request latency and query latency, next to Arize Phoenix
(run with the dev venv).

    .venv/bin/python bench/server_ingest.py                       # SQLite in a temp dir
    .venv/bin/python bench/server_ingest.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/server_ingest.py --batches 650 --rounds 3 --plans   # ~1M calls
    .venv/bin/python bench/server_ingest.py --db sqlite --db postgresql://.../test \
        --replicas 1 2 --clients 8 --no-queries --no-phoenix       # stores side by side

Starts ``aiscope serve`` as a subprocess on loopback (with ``--replicas 2``, two
server processes on the same database, the clients spread over them), sends
OTLP/HTTP protobuf requests of ``--spans`` GenAI spans each from ``--clients``
concurrent clients (threads, each with its own connection), and reports *stored*
spans per second: a request is answered only after its transaction commits, and
after each round the script counts the rows in the database, which must equal what
was sent (it never trusts the answers alone). It reports each request's latency
(p50/p95/p99 over every round) and the load average. Several ``--db`` (and
``--replicas`` counts, on PostgreSQL) run as separate stores in one session, their
rounds interleaved, every store sent the very same request bodies.

Then it times the dashboard queries (median of ``--repeat`` after a warm-up) over
what each store holds, and with ``--plans`` prints each query's plan (EXPLAIN) at
that size.

Then, when Arize Phoenix is installed (``bash bench/setup_phoenix.sh`` makes
``.venv-phoenix``; ``--no-phoenix`` skips it), it starts ``phoenix serve`` on SQLite
in a temporary directory, sends it the first ``--phoenix-batches`` of the very same
request bodies, and measures *its* stored rate: Phoenix answers 200 before it
decodes, so the clock stops when its database holds every span (polled).
On PostgreSQL each store is a fresh schema (no statistics), dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from aiscope.server import queries
from aiscope.server.auth import LOCAL_PROJECT
from aiscope.server.db import normalize_url
from aiscope.server.explain import plans_of
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
            if httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def ingest_round(ports: list[int], bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Seconds to get every body acknowledged, sent by ``clients`` concurrent clients
    (client ``i`` talks to ``ports[i % len(ports)]``), and each request's seconds."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []
    latencies: list[float] = []

    def send(port: int) -> None:
        with httpx2.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                t0 = time.perf_counter()
                r = client.post(
                    f"http://127.0.0.1:{port}/v1/traces",
                    content=body,
                    headers={"content-type": "application/x-protobuf"},
                )
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=send, args=(ports[i % len(ports)],)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return elapsed, latencies


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def time_query(port: int, path: str, params: dict[str, object], repeat: int) -> tuple[float, float]:
    """Milliseconds of the first GET (cold: nothing cached) and the median of ``repeat``
    more."""
    times = []
    with httpx2.Client(timeout=60) as client:
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            r = client.get(f"http://127.0.0.1:{port}{path}", params=params)
            dt = time.perf_counter() - t0
            r.raise_for_status()
            times.append(dt * 1000)
    return times[0], statistics.median(times[1:])


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


QUERIES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("cost by model", "/api/cost", {"group_by": "model"}),
    ("cost by day", "/api/cost", {"group_by": "day"}),
    ("cost by feature, last 24 h", "/api/cost", {"group_by": "feature", "start": "DAY"}),
    ("latency p50/p95/p99 by model", "/api/latency", {}),
    ("latency by model, last 24 h", "/api/latency", {"start": "DAY"}),
    ("calls, first page of 100", "/api/calls", {"limit": 100}),
    ("calls of one model, page", "/api/calls", {"model": "gpt-4o", "limit": 100}),
    ("calls of one team, page", "/api/calls", {"team": "b", "limit": 100}),
    ("calls of one trace", "/api/calls", {"trace_id": "TRACE"}),
    ("one trace as a tree", "/api/traces/TRACE", {}),
)


def _resolve(params: dict[str, object], day_ago: float, trace_id: str) -> dict[str, object]:
    return {
        k: day_ago if v == "DAY" else trace_id if v == "TRACE" else v for k, v in params.items()
    }


def print_plans(engine: Engine, day_ago: float, trace_id: str) -> None:
    """EXPLAIN every dashboard query as the server runs it, at the stored size."""
    p = LOCAL_PROJECT
    reads: dict[str, Callable[[], object]] = {
        "cost by model": lambda: queries.cost_by(engine, p, "model"),
        "cost by day": lambda: queries.cost_by(engine, p, "day"),
        "cost by feature, last 24 h": lambda: queries.cost_by(engine, p, "feature", start=day_ago),
        "latency by model": lambda: queries.latency_by_model(engine, p),
        "latency by model, last 24 h": lambda: queries.latency_by_model(engine, p, start=day_ago),
        "calls, first page": lambda: queries.list_calls(engine, p),
        **{
            f"calls by {col}": (
                lambda col=col, value=value: queries.list_calls(engine, p, filters={col: value})
            )
            for col, value in (
                ("model", "gpt-4o"),
                ("provider", "anthropic"),
                ("feature", "search"),
                ("team", "b"),
                ("status", "error"),
                ("operation", "embeddings"),
                ("trace_id", trace_id),
            )
        },
        "one trace": lambda: queries.trace_tree(engine, p, trace_id),
    }
    for name, read in reads.items():
        for plan in plans_of(engine, read):
            print(f"plan {name}: {' | '.join(plan.lines)}")


def start_phoenix(phoenix: Path, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """``phoenix serve`` on SQLite in ``workdir``, loopback only, nothing fetched."""
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": workdir,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
    }
    env.pop("PHOENIX_SQL_DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(phoenix), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx2.TransportError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("phoenix serve did not start")


def phoenix_round(
    phoenix: Path, bodies: list[bytes], spans: int, senders: int
) -> tuple[float, float, float]:
    """Phoenix's (accepted, stored) spans per second for ``bodies``, and its CPU use
    (cores) while storing: the clock stops when its SQLite database holds every span."""
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_phoenix(phoenix, workdir)
        try:
            db = sqlite3.connect(f"file:{workdir}/phoenix.db?mode=ro", uri=True)
            sent = len(bodies) * spans
            cpu0 = _cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            accept_s, _ = ingest_round([port], bodies, senders)
            stored = 0
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                stored = db.execute("SELECT count(*) FROM spans").fetchone()[0]
                if stored >= sent:
                    break
                time.sleep(0.05)
            store_s = time.perf_counter() - t0
            cores = (_cpu_seconds(proc.pid) - cpu0) / store_s
            db.close()
            if stored != sent:
                raise RuntimeError(f"phoenix stored {stored} of {sent} spans")
            return sent / accept_s, sent / store_s, cores
        finally:
            proc.terminate()
            proc.wait(60)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Store:
    """One store under test: its database, its server processes and what was measured."""

    label: str
    db: str
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    schema: str | None = None
    rates: list[float] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    engine: Engine | None = None

    def count(self) -> int:
        """Calls stored now, counted in the database."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(calls)).scalar_one())

    def cpu(self) -> float:
        """CPU seconds of the server processes so far."""
        return sum(_cpu_seconds(p.pid) for p in self.procs)

    def db_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving this store's servers
        (by their ``application_name``; empty on SQLite, or for a database on
        another machine)."""
        if self.schema is None or self.engine is None:
            return {}
        with self.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                {"a": self.schema},
            ).scalars()
            out = {}
            for pid in pids:
                with contextlib.suppress(OSError):  # a database on another machine: none
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                        out[int(pid)] = _cpu_seconds(int(pid))
            return out


def open_store(spec: str, replicas: int, tmp: str, admin: Engine | None) -> Store:
    """A fresh store for ``spec`` (``sqlite`` or a PostgreSQL URL) with ``replicas``
    server processes on it."""
    if spec == "sqlite":
        if replicas != 1:
            raise SystemExit("--replicas above 1 needs PostgreSQL (SQLite has one writer)")
        db, schema, label = f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:6]}.db", None, "SQLite"
        reader = db
    else:
        assert admin is not None
        schema = f"aiscope_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(normalize_url(spec)).update_query_dict(
            {"options": f"-csearch_path={schema}", "application_name": schema}
        )
        db = url.render_as_string(hide_password=False)
        # the bench's own reads are not the servers' backends (not counted as theirs)
        reader = url.update_query_dict({"application_name": "bench"}).render_as_string(
            hide_password=False
        )
        label = f"PostgreSQL, {replicas} server{'s' if replicas > 1 else ''}"
    store = Store(label, db, [free_port() for _ in range(replicas)], schema=schema)
    # one after the other: the first migrates (the others would wait on its lock anyway)
    store.procs = [start_server(db, port) for port in store.ports]
    store.engine = create_engine(normalize_url(reader))
    return store


def close_store(store: Store, admin: Engine | None) -> None:
    for proc in store.procs:
        proc.terminate()
    for proc in store.procs:
        proc.wait(30)
    if store.engine is not None:
        store.engine.dispose()
    if store.schema is not None and admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{store.schema}" CASCADE'))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def report_queries(store: Store, args: argparse.Namespace, now: int) -> None:
    """Compact the store's rollups, then time the dashboard queries (and print plans)."""
    engine = store.engine
    assert engine is not None
    with engine.connect() as conn:
        n_rollups = conn.execute(select(func.count()).select_from(rollups)).scalar()
        trace_id = conn.execute(select(calls.c.trace_id).limit(1)).scalar_one()
    t0 = time.perf_counter()
    while compact(engine):  # what the server's compactor does every 30 s
        pass
    compact_s = time.perf_counter() - t0
    if store.schema is not None:  # fresh statistics, as autovacuum gathers them
        with engine.begin() as conn:  # committed: a rolled-back ANALYZE leaves none
            conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        compacted = conn.execute(select(func.count()).select_from(rollups)).scalar()
    print(
        f"{store.label}: {store.count():,} calls, {n_rollups:,} rollup rows, "
        f"{compacted:,} after compaction ({compact_s:.1f} s)"
    )
    day_ago = time.time() - 86400
    for name, path, params in (
        *QUERIES,
        *dashboard_queries(now / 1e9, args.span_minutes * 60),
    ):
        first, ms = time_query(
            store.ports[0],
            path.replace("TRACE", trace_id),
            _resolve(params, day_ago, trace_id),
            args.repeat,
        )
        print(f"query {store.label}, {name}: median {ms:.1f} ms (first, cold: {first:.1f} ms)")
    if args.plans:
        print_plans(engine, day_ago, trace_id)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--db",
        action="append",
        help="postgresql://... or sqlite (a temporary file); repeat to run several stores "
        "side by side (default: sqlite)",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        nargs="+",
        default=[1],
        help="server processes on each PostgreSQL store; several counts run as "
        "separate stores (e.g. --replicas 1 2)",
    )
    ap.add_argument("--spans", type=int, default=512, help="spans per request")
    ap.add_argument("--batches", type=int, default=100, help="requests per round")
    ap.add_argument(
        "--clients", "--senders", dest="clients", type=int, default=4,
        help="concurrent OTLP clients",
    )  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=9, help="timed runs of each query")
    ap.add_argument("--no-queries", action="store_true", help="measure ingest only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--span-minutes", type=int, default=7 * 24 * 60, help="the calls' start times cover this"
    )
    ap.add_argument("--plans", action="store_true", help="print each query's plan (EXPLAIN)")
    ap.add_argument(
        "--phoenix",
        type=Path,
        default=root / ".venv-phoenix" / "bin" / "phoenix",
        help="the phoenix executable (default: .venv-phoenix, see bench/setup_phoenix.sh)",
    )
    ap.add_argument("--no-phoenix", action="store_true", help="skip the Phoenix comparison")
    ap.add_argument(
        "--phoenix-batches",
        type=int,
        default=20,
        help="requests sent to Phoenix (it stores ~200 spans/s: keep it small)",
    )
    args = ap.parse_args()
    specs = args.db or ["sqlite"]
    pg = [s for s in specs if s != "sqlite"]
    if any(r < 1 for r in args.replicas) or args.clients < 1:
        raise SystemExit("--replicas and --clients must be >= 1")

    tmp = tempfile.TemporaryDirectory()
    admin = create_engine(normalize_url(pg[0]), isolation_level="AUTOCOMMIT") if pg else None
    rng = random.Random(args.seed)
    now = time.time_ns()
    first_bodies: list[bytes] = []
    stores: list[Store] = []
    print(f"start: {load()}")
    try:
        for spec in specs:
            for replicas in [1] if spec == "sqlite" else args.replicas:
                stores.append(open_store(spec, replicas, tmp.name, admin))
        sent = args.batches * args.spans
        for r in range(args.rounds):
            bodies = [
                payload(rng, args.spans, now - rng.randrange(args.span_minutes) * 60_000_000_000)
                for _ in range(args.batches)
            ]
            first_bodies = first_bodies or bodies
            # the stores take turns, starting with another one each round
            for store in stores[r % len(stores) :] + stores[: r % len(stores)]:
                before, cpu0, db0 = store.count(), store.cpu(), store.db_cpu()
                secs, latencies = ingest_round(store.ports, bodies, args.clients)
                cpu = store.cpu() - cpu0
                db = sum(v - db0.get(pid, 0.0) for pid, v in store.db_cpu().items())
                stored = store.count() - before
                if stored != sent:
                    raise RuntimeError(f"{store.label}: stored {stored} of {sent} acknowledged")
                store.rates.append(stored / secs)
                store.cores.append(cpu / secs)
                store.latencies.extend(latencies)
                print(
                    f"round {r + 1}, {store.label}: {stored} spans stored in {secs:.2f} s "
                    f"({stored / secs:,.0f}/s), p99 {percentile(latencies, 0.99):.2f} s, "
                    f"servers {cpu / secs:.2f} cores, {cpu * 1e6 / stored:.0f} CPU-us per span"
                    + (
                        f", PostgreSQL backends {db / secs:.2f} cores, "
                        f"{db * 1e6 / stored:.0f} CPU-us per span"
                        if store.schema
                        else ""
                    )
                    + f"; {load()}"
                )
        print(f"end: {load()}")
        print(
            f"\n{args.clients} clients, {args.spans} spans a request, {args.rounds} rounds of "
            f"{args.batches} requests\n"
        )
        print("| store | stored spans/s, median (rounds) | p50 | p95 | p99 | servers' cores |")
        print("| --- | --- | --- | --- | --- | --- |")
        for store in stores:
            lat = store.latencies
            print(
                f"| {store.label} | {statistics.median(store.rates):,.0f} "
                f"({', '.join(f'{x:,.0f}' for x in store.rates)}) | "
                f"{percentile(lat, 0.5):.2f} s | {percentile(lat, 0.95):.2f} s | "
                f"{percentile(lat, 0.99):.2f} s | {statistics.median(store.cores):.2f} |"
            )
        if not args.no_queries:
            for store in stores:
                report_queries(store, args, now)
    finally:
        for store in stores:
            close_store(store, admin)
        if admin is not None:
            admin.dispose()
        tmp.cleanup()

    if args.no_phoenix:
        return
    if not args.phoenix.exists():
        print(f"phoenix: {args.phoenix} not found (bash bench/setup_phoenix.sh); skipped")
        return
    bodies = first_bodies[: args.phoenix_batches]
    accepted, phx_stored, cores = phoenix_round(args.phoenix, bodies, args.spans, args.clients)
    print(
        f"Phoenix (SQLite), same {len(bodies) * args.spans:,} spans: accepted {accepted:,.0f}/s, "
        f"stored {phx_stored:,.0f}/s, {cores:.2f} cores while storing"
    )
    print("| stored spans/s | aiscope | Phoenix (SQLite) | ratio |")
    print("| --- | --- | --- | --- |")
    for store in stores:
        median_rate = statistics.median(store.rates)
        print(
            f"| {store.label}, median of rounds | {median_rate:,.0f} | {phx_stored:,.0f} | "
            f"{median_rate / phx_stored:,.0f}x |"
        )
        print(
            f"| {store.label}, first round (empty store) | {store.rates[0]:,.0f} | "
            f"{phx_stored:,.0f} | {store.rates[0] / phx_stored:,.0f}x |"
        )


if __name__ == "__main__":
    main()
