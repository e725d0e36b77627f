"""``aiscope demo`` with the server: the real command in a subprocess sends the workload
to the server over OTLP, prints the dashboard URL and, with ``--serve``, keeps
serving the stored data until interrupted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from aiscope.demo import run_workload
from aiscope.demo_server import DemoServer

AISCOPE = [sys.executable, "-c", "from aiscope.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serve_keeps_the_stored_workload_until_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *AISCOPE,
            "demo",
            "--requests",
            "8",
            "--no-prometheus",
            "--serve",
            "--db-dir",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + 60
    url = None
    while url is None:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(out)
        assert time.monotonic() < deadline, "".join(out)
        out.append(line)
        m = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)", line)
        url = m.group(1) if m else None
    assert url == f"http://127.0.0.1:{port}/"
    try:
        text = "".join(out)
        assert "server totals match the CostTracker" in text, text
        cost = httpx2.get(f"{url}api/cost", timeout=10).json()["rows"]
        assert sum(r["calls"] for r in cost) == 8
        budgets = httpx2.get(f"{url}api/budgets", timeout=10).json()["budgets"]
        assert [b["name"] for b in budgets] == ["demo"]
        assert len(httpx2.get(f"{url}api/alert-rules", timeout=10).json()["rules"]) == 16
        assert proc.poll() is None  # still serving
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(20)
    assert rc == 0
    assert (tmp_path / "aiscope.db").exists()  # a given directory is kept


def test_the_server_stores_what_the_tracker_counted() -> None:
    with DemoServer() as srv:
        tracer = srv.tracer()
        result = run_workload(requests=12, seed=3, tracer=tracer)
        assert tracer.flush(15)
        tracer.shutdown()
        check = srv.check_cost(result.report)
        db = srv.db_dir
    assert check.matches, check
    assert check.server_calls == result.report.call_count == 12
    assert check.server_cost > 0
    for local, stored in check.by_model.values():
        assert abs(local - stored) <= 1e-9
    assert not db.exists()  # a temporary directory is removed


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*AISCOPE, "demo", "--requests", "2", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the aiscope server did not start" in r.stderr  # errors go to stderr
