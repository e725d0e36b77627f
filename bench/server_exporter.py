"""ServerExporter: what it costs the application per record, and how fast records
sent through it are stored (run with the dev venv).

    .venv/bin/python bench/server_exporter.py                  # 20,000 records, 5 rounds

Starts ``aiscope serve`` (keyless, SQLite in a temp dir) as a subprocess on loopback,
so the server's work does not share this process's interpreter. Per round:
``--records`` CallRecords go through a Scope whose only sink is a ServerExporter;
the application-side time is the Scope's ``emit`` (validation, pricing, the
exporter's copy and enqueue, and the export thread's share of the interpreter),
measured against the same Scope without the exporter; the stored rate is
records / (first emit .. flush returned), checked against the server's ``/api/cost``
count. Medians over rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx2

from aiscope import CallRecord, Scope, ServerExporter, Usage


def _records(n: int, round_no: int) -> list[CallRecord]:
    models = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"))
    out = []
    for i in range(n):
        provider, model = models[i % 3]
        out.append(
            CallRecord(
                model=model,
                provider=provider,
                request_id=f"r{round_no}-{i}",
                usage=Usage(1000 + i % 500, 200 + i % 100),
                latency_s=0.2 + (i % 50) / 100,
                tags={"feature": ("search", "chat")[i % 2]},
            )
        )
    return out


@contextlib.contextmanager
def _server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    cmd = [sys.executable, "-c", "from aiscope.cli import main; main()", "serve", "--db", db]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _emit_all(scope: Scope, records: list[CallRecord]) -> float:
    t = time.perf_counter()
    for r in records:
        scope.emit(r)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    n = args.records
    per_record_us, bare_us, rates, queued_us = [], [], [], []
    with _server() as url:
        stored_before = 0
        for k in range(args.rounds):
            bare = _emit_all(Scope(), _records(n, -1 - k))
            # the exporter's own part with its thread idle: copy and enqueue only
            # (to a closed port: what shutdown may still send must not reach the server)
            idle = ServerExporter("http://127.0.0.1:9", max_queue_size=n, max_retries=0,
                                  max_export_batch_size=n, schedule_delay_s=3600)  # fmt: skip
            many = _records(n, -100 - k)
            t = time.perf_counter()
            for r in many:
                idle.on_record(r)
            queued_us.append((time.perf_counter() - t) / n * 1e6)
            assert idle.queued == n
            idle.close(0)
            exporter = ServerExporter(url, max_queue_size=max(2048, n))
            scope = Scope(sinks=[exporter])
            records = _records(n, k)
            t0 = time.perf_counter()
            app = _emit_all(scope, records)
            assert exporter.flush(120), "flush timed out"
            total = time.perf_counter() - t0
            exporter.close()
            assert (exporter.dropped, exporter.failed) == (0, 0), (
                exporter.dropped,
                exporter.failed,
            )
            rows = httpx2.get(f"{url}/api/cost", timeout=30).json()["rows"]
            stored = sum(r["calls"] for r in rows)
            assert stored - stored_before == n, (stored, stored_before, n)
            stored_before = stored
            per_record_us.append(app / n * 1e6)
            bare_us.append(bare / n * 1e6)
            rates.append(n / total)
            print(
                f"round {k + 1}: emit {app / n * 1e6:.1f} µs/record with the exporter "
                f"({bare / n * 1e6:.1f} without), {n / total:,.0f} records/s stored"
            )
    over = [a - b for a, b in zip(per_record_us, bare_us, strict=True)]
    print(
        f"\nmedian over {args.rounds} rounds of {n:,} records: Scope.emit "
        f"{statistics.median(per_record_us):.1f} µs with ServerExporter vs "
        f"{statistics.median(bare_us):.1f} µs without (+{statistics.median(over):.1f} µs); "
        f"{statistics.median(rates):,.0f} records/s stored (SQLite, aiscope serve); "
        f"on_record alone (export thread idle) {statistics.median(queued_us):.1f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
