"""Clients that open connections and never finish a request (slowloris): the server
closes each once ``request_timeout_s`` has passed, keeps serving everyone else, and
still lets a slow but punctual request through."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2
import pytest
from sqlalchemy import Engine

from aiscope.server import Settings
from aiscope.server.auth import ensure_local_project
from tests.server.harness import Running, run_server

TIMEOUT_S = 1.0


@pytest.fixture
def guarded(engine: Engine) -> Iterator[Running]:
    ensure_local_project(engine)
    yield from run_server(Settings(engine=engine, local_only=True), request_timeout_s=TIMEOUT_S)


def _connect(server: Running) -> socket.socket:
    u = urlsplit(server.url)
    return socket.create_connection((u.hostname, u.port), timeout=10)


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within the socket's timeout."""
    try:
        while chunk := sock.recv(4096):
            if chunk.startswith(b"HTTP/1.1 2"):
                return False  # answered: the request was not cut off
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_half_sent_requests_are_closed_after_the_request_timeout(guarded: Running) -> None:
    half = [
        b"",  # connects, sends nothing
        b"GET /api/health HT",  # half a request line
        b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never end
        b"POST /api/ingest/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ca',  # body stops
    ]
    socks = [_connect(guarded) for _ in range(200) for _ in half]
    for i, s in enumerate(socks):
        if half[i % len(half)]:
            s.sendall(half[i % len(half)])
    start = time.monotonic()
    # everyone else is served meanwhile
    assert httpx2.get(f"{guarded.url}/api/health", timeout=5).status_code == 200
    for s in socks:
        s.settimeout(max(0.1, start + TIMEOUT_S + 5 - time.monotonic()))
        assert _closed_by_server(s)
        s.close()
    assert time.monotonic() - start < TIMEOUT_S + 5


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_slow_but_punctual_request_and_keep_alive_are_served(guarded: Running) -> None:
    s = _connect(guarded)
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(2):  # two requests on one kept-alive connection, each dribbled
        for i in range(0, len(request), 8):
            s.sendall(request[i : i + 8])
            time.sleep(TIMEOUT_S / 12)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT_S * 0.6)  # idle between requests: keep-alive's, not ours
    s.close()
