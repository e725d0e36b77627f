"""A server on loopback for tests: the real app under uvicorn, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

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
