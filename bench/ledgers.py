"""Reserve + commit per call on every budget ledger, next to bare store round trips.

    .venv/bin/python bench/ledgers.py [--calls N] [--seconds S] [--threads T]
        [--redis-url URL] [--postgres-url URL]

For each ledger (memory, sqlite, redis, postgres, and postgres with
``synchronous_commit=False`` as pg-nosync) it measures one call's budget work
as CostTracker does it: ``try_reserve`` then ``settle`` (two operations, each one
round trip on Redis and PostgreSQL):

* latency: the median of ``--calls`` single-threaded reserve+commit pairs;
* throughput: pairs per second with ``--threads`` concurrent callers (threads in
  one process) for ``--seconds`` (PostgreSQL: through a pool of at most 16
  connections per ledger, so the run stays well under ``max_connections``).

In the same run it measures the floors: one bare Redis ``PING`` and one bare
PostgreSQL ``SELECT 1`` (same clients, same loopback), timed alternately with the
ledger's pairs, call by call, so that the ratio compares the two under one load.
The same for one rate-limit acquire (issue 14 item 5): the in-process
``RateLimiter`` and ``RedisRateLimiter`` (one round trip), next to one bare
``PING`` (rates so high that no acquire waits: this measures the bookkeeping).
URLs default to ``AISCOPE_TEST_REDIS_URL`` / ``AISCOPE_TEST_POSTGRES_URL``; a
ledger whose URL is unset is skipped. Keys live under a fresh prefix/schema that is
removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiscope.cost import MemoryLedger, PostgresLedger, RedisLedger, SQLiteLedger
from aiscope.resilience import RateLimiter, RedisRateLimiter

LIMIT = 1e9  # never refuses: this measures the admitted path
#: rate limits no acquire ever waits for
RATES: dict[str, Any] = {"requests_per_minute": 1e12, "tokens_per_minute": 1e12}
AMOUNT = 0.0075


def _latency(op: Callable[[], Any], calls: int) -> float:
    for _ in range(min(200, calls)):  # warm-up: connections, prepared statements
        op()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        op()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000.0  # µs


def _paired(op: Callable[[], Any], floor: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Medians (µs) of ``op`` and ``floor`` timed alternately, call by call, so both see
    the same load (this machine's is shared)."""
    for _ in range(min(200, calls)):
        op()
        floor()
    a, b = [], []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        op()
        t1 = time.perf_counter_ns()
        floor()
        t2 = time.perf_counter_ns()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return statistics.median(a) / 1000.0, statistics.median(b) / 1000.0


def _throughput(op: Callable[[], Any], threads: int, seconds: float) -> float:
    stop = threading.Event()
    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        start.wait()
        n = 0
        while not stop.is_set():
            op()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def _pair(ledger: Any, key: str) -> Callable[[], None]:
    def op() -> None:
        rid = ledger.try_reserve(key, AMOUNT, LIMIT)
        ledger.settle(key, rid, AMOUNT)

    return op


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--redis-url", default=os.environ.get("AISCOPE_TEST_REDIS_URL"))
    ap.add_argument("--postgres-url", default=os.environ.get("AISCOPE_TEST_POSTGRES_URL"))
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    ledgers: list[tuple[str, Any]] = [
        ("memory", MemoryLedger()),
        ("sqlite", SQLiteLedger(Path(tmp.name) / "ledger.db")),
    ]
    cleanup: list[Callable[[], None]] = []
    floors: list[tuple[str, Callable[[], Any]]] = []
    limiters: list[tuple[str, Any]] = [("memory", RateLimiter(**RATES))]
    if args.redis_url:
        prefix = f"aiscope-bench-{uuid.uuid4().hex[:8]}:"
        redis_ledger = RedisLedger(args.redis_url, prefix=prefix)
        ledgers.append(("redis", redis_ledger))
        floors.append(("Redis PING", redis_ledger.client.ping))
        limiters.append(
            ("redis", RedisRateLimiter(args.redis_url, name="bench", prefix=prefix, **RATES))
        )

        def drop_redis() -> None:
            keys = list(redis_ledger.client.scan_iter(match=prefix + "*"))
            if keys:
                redis_ledger.client.delete(*keys)

        cleanup.append(drop_redis)
    if args.postgres_url:
        import psycopg

        schema = f"aiscope_bench_{uuid.uuid4().hex[:8]}"
        pg_ledger = PostgresLedger(
            args.postgres_url, schema=schema, pool_size=min(args.threads, 16)
        )
        ledgers.append(("postgres", pg_ledger))
        pg_async_commit = PostgresLedger(
            args.postgres_url,
            schema=schema,
            pool_size=min(args.threads, 16),
            synchronous_commit=False,
        )
        ledgers.append(("pg-nosync", pg_async_commit))
        bare = psycopg.connect(args.postgres_url, autocommit=True, prepare_threshold=0)
        floors.append(("PostgreSQL SELECT 1", lambda: bare.execute("SELECT 1").fetchone()))

        def drop_pg() -> None:
            pg_ledger.close()
            pg_async_commit.close()
            bare.execute(f'DROP SCHEMA "{schema}" CASCADE')
            bare.close()

        cleanup.append(drop_pg)

    try:
        floor_ops = dict(floors)
        floor_us: dict[str, list[float]] = {name: [] for name in floor_ops}
        print(f"{'ledger':<10} {'reserve+commit p50':>20} {'x2 floor':>9} "
              f"{f'{args.threads} callers':>16}")  # fmt: skip
        for name, ledger in ledgers:
            floor = {
                "redis": "Redis PING",
                "postgres": "PostgreSQL SELECT 1",
                "pg-nosync": "PostgreSQL SELECT 1",
            }.get(name)
            pair = _pair(ledger, f"bench-{name}:total:all")
            if floor in floor_ops:
                lat, bare_us = _paired(pair, floor_ops[floor], args.calls)
                floor_us[floor].append(bare_us)
                ratio = f"{lat / (2 * bare_us):.2f}x"
            else:
                lat, ratio = _latency(pair, args.calls), "-"
            tput = _throughput(_pair(ledger, f"bench-{name}-t:total:all"), args.threads,
                               args.seconds)  # fmt: skip
            print(f"{name:<10} {lat:>17.1f} µs {ratio:>9} {tput:>12,.0f} /s")
        print(f"{'limiter':<10} {'acquire(100) p50':>20} {'x1 floor':>9}")
        for name, limiter in limiters:
            acquire = lambda lim=limiter: lim.acquire(100)  # noqa: E731
            if name == "redis":
                lat, bare_us = _paired(acquire, floor_ops["Redis PING"], args.calls)
                floor_us["Redis PING"].append(bare_us)
                ratio = f"{lat / bare_us:.2f}x"
            else:
                lat, ratio = _latency(acquire, args.calls), "-"
            tput = _throughput(acquire, args.threads, args.seconds)
            print(f"{name:<10} {lat:>17.1f} µs {ratio:>9} {tput:>12,.0f} /s")
        for name, values in floor_us.items():
            shown = ", ".join(f"{us:.1f}" for us in values)
            print(f"floor: one bare {name}: {shown} µs (p50, timed alternately with each row)")
    finally:
        for fn in cleanup:
            fn()
        tmp.cleanup()


if __name__ == "__main__":
    main()
