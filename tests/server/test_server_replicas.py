"""Several ``aiscope serve`` replicas on one PostgreSQL database alert once: real
subprocesses, a real webhook receiver on loopback, and a replica killed holding the
alerts lease is replaced once the lease ends."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, select

from aiscope import CallRecord, Usage
from aiscope.record_json import record_to_json
from aiscope.server.db import normalize_url
from aiscope.server.tables import leases
from tests.server.conftest import fresh_pg_schema

AISCOPE = [sys.executable, "-c", "from aiscope.cli import main; main()"]
LEASE_S = 3.0
EVERY_S = 0.25


class Receiver:
    """A webhook receiver on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        lock = threading.Lock()
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def states(self, rule: str) -> list[str]:
        return [e["state"] for e in list(self.events) if e["rule"] == rule]

    def wait_for(self, rule: str, want: list[str], timeout_s: float = 20.0) -> float:
        """Wait until ``rule``'s states are ``want``; the time it took."""
        t0 = time.monotonic()
        while self.states(rule) != want:
            got = self.states(rule)
            assert got == want[: len(got)], got  # never one too many
            assert time.monotonic() - t0 < timeout_s, f"got {got}, want {want}"
            time.sleep(0.05)
        return time.monotonic() - t0


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema of this test's own: other tests' rows and leases never meet it."""
    yield from fresh_pg_schema("aiscope_replicas")


def _start(db: str, hook: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*AISCOPE, "serve", "--db", db, "--port", "0", "--alert-every", str(EVERY_S),
         "--alert-lease", str(LEASE_S), "--alert-webhook", hook],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found, line + proc.stdout.read()
    return proc, f"http://127.0.0.1:{found.group(1)}"


def _rule(threshold: float) -> dict[str, Any]:
    return {"name": "any_calls", "severity": "critical", "signal": "requests",
            "comparison": ">", "threshold": threshold, "window": "5m"}  # fmt: skip


def _send(url: str, n: int) -> None:
    now = time.time()
    calls = [
        record_to_json(
            CallRecord(model="gpt-4o", provider="openai", usage=Usage(10, 5), start_time=now)
        )
        for _ in range(n)
    ]
    r = httpx2.post(f"{url}/api/ingest/calls", json={"calls": calls}, timeout=10)
    assert r.status_code == 200, r.text


def _put_rule(url: str, threshold: float) -> None:
    r = httpx2.post(f"{url}/api/alert-rules", json=_rule(threshold), timeout=10)
    assert r.status_code == 201, r.text


def _holder(db: str) -> str | None:
    eng = create_engine(normalize_url(db))
    try:
        with eng.connect() as conn:
            row = conn.execute(select(leases.c.owner).where(leases.c.name == "alerts")).first()
    finally:
        eng.dispose()
    return None if row is None else str(row.owner)


def test_two_replicas_notify_each_firing_and_resolve_once(pg_url: str) -> None:
    receiver = Receiver()
    started = [_start(pg_url, receiver.url) for _ in range(2)]
    procs = [p for p, _ in started]
    (a, b) = [u for _, u in started]
    try:
        # a rule that holds as soon as one call is stored, written through one replica
        # and data sent through the other: both evaluate every 0.25 s if they may
        _put_rule(a, 0)
        _send(b, 3)
        receiver.wait_for("any_calls", ["firing"])
        time.sleep(12 * EVERY_S)  # many evaluation rounds of both: still one firing
        assert receiver.states("any_calls") == ["firing"]
        (event,) = receiver.events
        assert event["severity"] == "critical" and event["value"] == 3
        # every replica answers the same stored state
        for url in (a, b):
            (alert,) = httpx2.get(f"{url}/api/alerts", timeout=10).json()["alerts"]
            assert (alert["name"], alert["state"]) == ("any_calls", "firing")

        _put_rule(b, 1000)  # no longer holds: resolved, once
        receiver.wait_for("any_calls", ["firing", "resolved"])
        time.sleep(12 * EVERY_S)
        assert receiver.states("any_calls") == ["firing", "resolved"]
        for url in (a, b):
            assert httpx2.get(f"{url}/api/alerts", timeout=10).json()["alerts"] == []

        # the replica holding the lease dies without giving it up (kill -9)
        holder = _holder(pg_url)
        assert holder is not None
        pid = int(holder.split(":")[1])
        (dead,) = [p for p in procs if p.pid == pid]
        (alive_url,) = [u for p, u in started if p.pid != pid]
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        killed_at = time.monotonic()
        _put_rule(alive_url, 0)  # holds again: the survivor notifies once it has the lease
        receiver.wait_for("any_calls", ["firing", "resolved", "firing"])
        took = time.monotonic() - killed_at
        # not before the dead replica's lease ended (it was renewed at most 0.25 s ago,
        # plus one round), and soon after
        assert LEASE_S - 2 * EVERY_S - 0.5 <= took <= LEASE_S + 10, took
        time.sleep(12 * EVERY_S)
        assert receiver.states("any_calls") == ["firing", "resolved", "firing"]
        new_holder = _holder(pg_url)
        assert new_holder is not None and int(new_holder.split(":")[1]) != pid
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        receiver.http.shutdown()
