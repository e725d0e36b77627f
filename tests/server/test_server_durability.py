"""``kill -9`` during sustained ingest: every batch that got a 2xx is in the store after
a restart (SQLite WAL with synchronous=FULL; PostgreSQL commits)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import select

from aiscope.server import open_database
from aiscope.server.tables import calls

AISCOPE = [sys.executable, "-c", "from aiscope.cli import main; main()"]
BATCH = 128


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(db_url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*AISCOPE, "serve", "--db", db_url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx2.TransportError:
            pass
        assert proc.poll() is None, "server exited"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)


def _batch(worker: int, n: int) -> tuple[bytes, str]:
    """One protobuf request of BATCH GenAI spans sharing a trace id (which names the batch)."""
    trace_id = f"{worker:08x}{n:024x}"
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(BATCH):
        s = ss.spans.add()
        s.trace_id = bytes.fromhex(trace_id)
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = "chat"
        s.start_time_unix_nano = now
        s.end_time_unix_nano = now + 1_000_000
        for key, value in (("gen_ai.request.model", "gpt-4o"), ("gen_ai.provider.name", "openai")):
            kv = s.attributes.add()
            kv.key, kv.value.string_value = key, value
        kv = s.attributes.add()
        kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", 100
    return req.SerializeToString(), trace_id


@pytest.mark.slow
def test_acknowledged_batches_survive_kill_9(db_url: str) -> None:
    port = _free_port()
    open_database(db_url).dispose()  # migrate before the clock starts
    proc = _start(db_url, port)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx2.Client(timeout=5) as client:
            n = 0
            while not stop.is_set():
                body, trace_id = _batch(worker, n)
                n += 1
                try:
                    r = client.post(
                        f"http://127.0.0.1:{port}/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf"},
                    )
                except httpx2.TransportError:
                    return  # the server is gone: this batch was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.append(trace_id)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-ingest: requests are in flight
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 20, "too few batches were acknowledged to test anything"

    proc = _start(db_url, port)  # restart: recovery (WAL replay) happens here
    try:
        engine = open_database(db_url)
        with engine.connect() as conn:
            call_counts: dict[str, int] = {}
            for (trace_id,) in conn.execute(select(calls.c.trace_id)):
                call_counts[trace_id] = call_counts.get(trace_id, 0) + 1
        engine.dispose()
        missing = [t for t in acked if call_counts.get(t) != BATCH]
        assert missing == []
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
