"""A server on loopback for tests: the real app under uvicorn, in a thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, text

from aiscope.server import Settings, create_app, protocol


@dataclass
class Running:
    """A server running in a thread on loopback."""

    url: str
    engine: Engine
    app: FastAPI


def run_server(settings: Settings, **timeouts: float) -> Iterator[Running]:
    """Run the app as ``aiscope serve`` does (its uvicorn protocol and timeouts, which
    ``timeouts`` may shorten) on a free loopback port until the generator is closed."""
    app = create_app(settings)
    config = protocol.config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **timeouts
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}", settings.engine, app)
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.writer.close()  # what the lifespan would do: its thread ends


AISCOPE = [sys.executable, "-c", "from aiscope.cli import main; main()"]


def serve_process(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """``aiscope serve`` (local mode) on ``db_url`` and loopback ``port``, started, not
    waited for (see :func:`wait_healthy`)."""
    return subprocess.Popen(
        [*AISCOPE, "serve", "--db", db_url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60) -> None:
    """Until the server on ``port`` answers its health check (fails if it exits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert proc.poll() is None, "server exited"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)


def mark_call(span: Any, input_tokens: int, model: str = "gpt-4o") -> None:
    """Make an OTLP ``span`` a GenAI call of ``model`` (OpenAI) with ``input_tokens``."""
    for key, value in (("gen_ai.request.model", model), ("gen_ai.provider.name", "openai")):
        kv = span.attributes.add()
        kv.key, kv.value.string_value = key, value
    kv = span.attributes.add()
    kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", input_tokens


def stored_counts(engine: Engine) -> tuple[int, int, int]:
    """Calls and spans stored, and calls counted in the minute rollups."""
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(q)).scalar_one()
            for q in (
                "SELECT count(*) FROM calls",
                "SELECT count(*) FROM spans",
                "SELECT sum(calls) FROM rollups WHERE resolution = 1",
            )
        )
