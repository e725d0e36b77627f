"""Loopback OTLP endpoints for tests: a receiver that decodes what it gets, and a
blackhole that accepts connections and never answers.

::

    with OtlpReceiver() as rx:
        tracer = Tracer(service_name="t", endpoint=rx.endpoint)
        ...
        tracer.flush()
        spans = rx.spans()          # decoded with opentelemetry-proto
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan


@dataclass(slots=True)
class ReceivedSpan:
    """One span as decoded from an OTLP export."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    status_code: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class ReceivedExport:
    """One OTLP/HTTP export request: its path, headers (lower-cased) and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


def any_value(v: AnyValue) -> Any:
    """A protobuf AnyValue as a Python value."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    """The spans of an ``ExportTraceServiceRequest`` body."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out: list[ReceivedSpan] = []
    for rs in req.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(_span(s, resource))
    return out


def _span(s: ProtoSpan, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=s.name,
        trace_id=s.trace_id.hex(),
        span_id=s.span_id.hex(),
        parent_span_id=s.parent_span_id.hex(),
        kind=s.kind,
        attributes={kv.key: any_value(kv.value) for kv in s.attributes},
        resource=resource,
        start_ns=s.start_time_unix_nano,
        end_ns=s.end_time_unix_nano,
        status_code=s.status.code,
        events=[(e.name, {kv.key: any_value(kv.value) for kv in e.attributes}) for e in s.events],
    )


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace receiver on a loopback port.

    ``status`` is the HTTP status it answers with (settable at any time): 200 keeps
    the export, anything else refuses it (counted in ``refused``, not kept), e.g.
    ``OtlpReceiver(status=500)`` for a collector that loses every span.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, status: int = 200) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code (200-599), got {status!r}")
        self._exports: list[ReceivedExport] = []
        self._lock = threading.Lock()
        self.status = status
        #: export requests answered with an error status
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.status
                with receiver._lock:
                    if 200 <= status < 300:
                        receiver._exports.append(ReceivedExport(self.path, headers, body))
                    else:
                        receiver.refused += 1
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP traces endpoint: ``http://127.0.0.1:PORT/v1/traces``."""
        return self.url + "/v1/traces"

    def exports(self) -> list[ReceivedExport]:
        """Every export request received so far."""
        with self._lock:
            return list(self._exports)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, decoded."""
        return [s for e in self.exports() for s in decode_spans(e.body)]

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Blackhole:
    """A TCP port that accepts connections and never reads or answers."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._sock.getsockname()[1])

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        return len(self._conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)  # held open, never read

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for c in self._conns:
            c.close()
        self._sock.close()


__all__ = [
    "Blackhole",
    "OtlpReceiver",
    "ReceivedExport",
    "ReceivedSpan",
    "any_value",
    "decode_spans",
]
