"""The mock's HTTP/1.1 server: keep-alive, chunked streams, a thread per connection.

:class:`MockHTTPServer` hands every request, as an :class:`~aiscope.testing._frames.Incoming`,
to an application callable and writes the :class:`~aiscope.testing._frames.Outcome`
it returns: a whole body in one ``sendall``, or a chunked stream flushed frame by
frame (with Nagle's algorithm off, so each frame leaves at once). It can also
deliver the outcome's faults: delays, a connection cut mid-body, a corrupt frame.
"""

from __future__ import annotations

import contextlib
import http
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from aiscope.testing._frames import Headers, Incoming, Outcome, dumps

App = Callable[[Incoming], Outcome]

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def _reason(status: int) -> str:
    if status == 529:
        return "Site is overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _internal_error(exc: BaseException) -> Outcome:
    body = {"error": {"message": f"mock provider bug: {exc!r}", "type": "server_error"}}
    return Outcome(500, [], dumps(body).encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "aiscope-mock"
    timeout = 300  # seconds an idle keep-alive connection is kept

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks do not want a line per request."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ reading

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        app = cast(MockHTTPServer, self.server).app
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        incoming = Incoming(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        try:
            outcome = app(incoming)
        except Exception as exc:
            outcome = _internal_error(exc)
        try:
            self._deliver(outcome)
        except _DISCONNECTS:
            self.close_connection = True
            if outcome.record is not None:
                outcome.record.completed = False
                outcome.record.disconnected = True

    # ------------------------------------------------------------------ writing

    def _head(self, status: int, headers: Headers) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _cut(self) -> None:
        """Close the connection abruptly (after what was already sent)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _deliver(self, out: Outcome) -> None:
        if out.delay_s > 0:
            time.sleep(out.delay_s)
        if out.frames is None:
            self._send_whole(out)
        else:
            self._send_stream(out)

    def _send_whole(self, out: Outcome) -> None:
        record = out.record
        body = out.body
        headers = [
            *out.headers,
            ("content-type", out.content_type),
            ("content-length", str(len(body))),
        ]
        if record is not None:
            record.status = out.status
        if out.drop_after is not None:
            self.wfile.write(self._head(out.status, headers) + body[: len(body) // 2])
            self._cut()
            return
        if record is not None:
            if out.usage is not None:
                record.usage = out.usage
                record.wire_usage = out.wire_usage
            record.completed = True
        self.wfile.write(self._head(out.status, headers) + body)

    def _send_stream(self, out: Outcome) -> None:
        assert out.frames is not None
        record = out.record
        frames = out.frames
        headers = [
            *out.headers,
            ("content-type", out.content_type),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        if record is not None:
            record.status = out.status
        self.wfile.write(self._head(out.status, headers))
        if out.first_frame_delay_s > 0:
            time.sleep(out.first_frame_delay_s)
        count = len(frames) if out.drop_after is None else min(out.drop_after, len(frames))
        for i in range(count):
            if i > 0 and out.chunk_delay_s > 0:
                time.sleep(out.chunk_delay_s)
            frame = frames[i]
            malformed = i == out.malformed_at
            data = frame.encode(malformed=malformed)
            chunk = b"%x\r\n%s\r\n" % (len(data), data)
            last = i == len(frames) - 1 and out.drop_after is None
            if record is not None:
                if frame.usage is not None and not malformed:
                    record.usage = frame.usage
                    record.wire_usage = frame.wire_usage
                record.frames_sent = i + 1
                if last:
                    record.completed = True
            self.wfile.write(chunk + b"0\r\n\r\n" if last else chunk)
        if out.drop_after is not None:
            self._cut()
        elif not frames:
            self.wfile.write(b"0\r\n\r\n")
            if record is not None:
                record.completed = True


class MockHTTPServer(ThreadingHTTPServer):
    """A threading HTTP/1.1 server that serves ``app`` and can drop its connections."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection, then serve it on its own thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
