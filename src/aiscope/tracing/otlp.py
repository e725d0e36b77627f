"""The official OTLP span exporters, chosen from an endpoint URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

Protocol = Literal["grpc", "http"]

TRACES_PATH = "/v1/traces"


def resolve(endpoint: str, protocol: Protocol | None = None) -> tuple[Protocol, str]:
    """``(protocol, exporter endpoint)`` for a user's endpoint.

    gRPC for port 4317 or a ``grpc://`` URL; OTLP/HTTP otherwise (port 4318, or a
    URL ending in ``/v1/traces``), with ``/v1/traces`` added to a bare HTTP URL.
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise ValueError(f"endpoint must be a URL such as http://localhost:4317, got {endpoint!r}")
    if protocol not in (None, "grpc", "http"):
        raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
    url = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if url.scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(f"endpoint must be an http(s):// or grpc:// URL, got {endpoint!r}")
    if not url.hostname:
        raise ValueError(f"endpoint has no host: {endpoint!r}")
    try:
        port = url.port
    except ValueError:
        raise ValueError(f"endpoint has an invalid port: {endpoint!r}") from None
    if protocol is None:
        if url.scheme.startswith("grpc") or (port == 4317 and url.path in ("", "/")):
            protocol = "grpc"
        else:
            protocol = "http"
    if protocol == "grpc":
        secure = url.scheme in ("https", "grpcs")
        return "grpc", f"{'https' if secure else 'http'}://{url.netloc}"
    scheme = "https" if url.scheme in ("https", "grpcs") else "http"
    path = url.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return "http", f"{scheme}://{url.netloc}{path}"


def otlp_exporter(
    endpoint: str,
    protocol: Protocol | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> SpanExporter:
    """The OpenTelemetry OTLP exporter (gRPC or HTTP/protobuf) for ``endpoint``."""
    proto, target = resolve(endpoint, protocol)
    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=target,
            insecure=target.startswith("http://"),
            headers=dict(headers or {}),
            timeout=timeout_s,
        )
    # requests imports netrc lazily in its first request, which runs on the export
    # thread: a fork during that import would leave the child's exporter stuck on the
    # import's lock. Imported here, on the caller's thread, it is never pending.
    import netrc  # noqa: F401

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=target, headers=dict(headers or {}), timeout=timeout_s)
