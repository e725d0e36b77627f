"""Starting the server: open and migrate the database, then run uvicorn."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from sqlalchemy import Engine

from aiscope.server.app import create_app
from aiscope.server.auth import ensure_local_project
from aiscope.server.db import migrate, open_engine
from aiscope.server.deps import is_loopback
from aiscope.server.settings import Settings

DEFAULT_DB = f"sqlite:///{Path.home() / '.aiscope' / 'aiscope.db'}"
DEFAULT_PORT = 6363


def open_database(url: str = DEFAULT_DB) -> Engine:
    """An engine on ``url`` (``sqlite:///path`` or ``postgresql://...``), schema migrated."""
    engine = open_engine(url)
    migrate(engine)
    return engine


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn; ``OSError`` names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it keep-alive answers wait ~40 ms on delayed ACKs
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(
    db: str = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    require_keys: bool = False,
    retention_days: float | None = None,
) -> None:
    """Run the server until interrupted.

    Without ``require_keys`` it runs in local-only mode (no keys, one ``local``
    project), which is refused unless ``host`` is a loopback address. With
    ``retention_days`` raw calls and spans older than that are deleted (rollups stay).
    """
    import uvicorn

    from aiscope.server import protocol

    if not require_keys and not is_loopback(host):
        raise ValueError(
            f"host {host!r} is not a loopback address: keyless local mode would expose "
            "the data; bind to 127.0.0.1 or require API keys"
        )
    if require_keys and not is_loopback(host):
        # uvicorn here speaks plain HTTP: the keys cross the network in clear
        print(
            f"warning: serving {host}:{port} over plain HTTP: API keys travel in clear; "
            "put a TLS-terminating proxy in front of it, or bind 127.0.0.1",
            file=sys.stderr,
        )
    engine = open_database(db)
    if not require_keys:
        ensure_local_project(engine)
    app = create_app(
        Settings(engine=engine, local_only=not require_keys, retention_days=retention_days)
    )
    try:
        sock = listen_socket(host, port)  # a taken port fails before any banner
        bound = sock.getsockname()[1]
        print(f"aiscope server on http://{host}:{bound} (OTLP: /v1/traces, API: /openapi.json)")
        sys.stdout.flush()
        # a client gets REQUEST_TIMEOUT_S to send a whole request (no slowloris)
        uvicorn.Server(protocol.config(app, log_level="warning")).run(sockets=[sock])
    finally:
        engine.dispose()
