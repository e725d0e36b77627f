"""``aiscope serve``: the real command in a subprocess, on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from typer.testing import CliRunner

from aiscope.cli import app

AISCOPE = [sys.executable, "-c", "from aiscope.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_ingests_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    db = f"sqlite:///{tmp_path}/s.db"
    proc = subprocess.Popen(
        [*AISCOPE, "serve", "--db", db, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        span = {
            "traceId": "e" * 32,
            "spanId": "2" * 16,
            "name": "chat",
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000250000000",
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
        }
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        assert httpx2.post(f"{base}/v1/traces", json=body, timeout=10).status_code == 200
        items = httpx2.get(f"{base}/api/calls", timeout=10).json()["items"]
        assert [(c["model"], c["latency_ms"]) for c in items] == [("gpt-4o", 250.0)]
        assert "/v1/traces" in httpx2.get(f"{base}/openapi.json", timeout=10).json()["paths"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_create_project_prints_keys_and_public_bind_needs_keys(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/p.db"
    result = CliRunner().invoke(app, ["serve", "--db", db, "--create-project", "shop"])
    assert result.exit_code == 0, result.output
    keys = json.loads(result.output)
    assert keys["public_key"].startswith("ask_pub_") and keys["secret_key"].startswith("ask_sec_")
    refused = CliRunner().invoke(app, ["serve", "--db", db, "--host", "0.0.0.0"])
    assert refused.exit_code == 2
    assert "not a loopback address" in refused.output


def test_serve_with_keys_on_all_interfaces_warns_keys_travel_in_clear(tmp_path: Path) -> None:
    port = _free_port()
    db = f"sqlite:///{tmp_path}/s.db"
    proc = subprocess.Popen(
        [*AISCOPE, "serve", "--db", db, "--port", str(port), "--require-keys", "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert "plain HTTP" in err and "in clear" in err


def test_served_connections_have_tcp_nodelay() -> None:
    """Without TCP_NODELAY keep-alive answers waited ~40 ms on delayed ACKs."""
    import asyncio

    from aiscope.server.run import listen_socket

    async def check() -> int:
        sock = listen_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            raw = w.get_extra_info("socket")
            accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        _r, w = await asyncio.open_connection(*sock.getsockname()[:2])
        value = await asyncio.wait_for(accepted, 5)
        w.close()
        server.close()
        return value

    assert asyncio.run(check()) != 0
