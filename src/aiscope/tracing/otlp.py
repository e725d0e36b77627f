"""The official OTLP span exporters, chosen from an endpoint URL (or from the
standard ``OTEL_EXPORTER_OTLP_*`` variables, see :mod:`aiscope.tracing.env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

from aiscope._fork import after_fork_in_child
from aiscope.tracing import env
from aiscope.tracing.env import Protocol

TRACES_PATH = "/v1/traces"


def resolve(
    endpoint: str, protocol: Protocol | None = None, *, exact_path: bool = False
) -> tuple[Protocol, str]:
    """``(protocol, exporter endpoint)`` for a user's endpoint.

    gRPC for port 4317 or a ``grpc://`` URL; OTLP/HTTP otherwise (port 4318, or a
    URL ending in ``/v1/traces``), with ``/v1/traces`` added to a bare HTTP URL
    unless ``exact_path`` (a signal-specific endpoint, used as is).
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
    if exact_path:
        return "http", f"{scheme}://{url.netloc}{url.path}{'?' + url.query if url.query else ''}"
    path = url.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return "http", f"{scheme}://{url.netloc}{path}"


def otlp_exporter(
    endpoint: str,
    protocol: Protocol | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    *,
    exact_path: bool = False,
) -> SpanExporter:
    """The OpenTelemetry OTLP exporter (gRPC or HTTP/protobuf) for ``endpoint``.

    A setting not given comes from the OTLP environment variables: ``protocol``,
    ``headers`` (the arguments' win key by key) and ``timeout_s`` (else 10 s).
    """
    if protocol is None:
        protocol = env.otlp_protocol()
    sent = {**env.otlp_headers(), **{k.lower(): v for k, v in (headers or {}).items()}}
    if timeout_s is None:
        timeout_s = env.otlp_timeout_s() or 10.0
    proto, target = resolve(endpoint, protocol, exact_path=exact_path)
    if proto == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ImportError(
                "OTLP over gRPC needs the grpc extra: pip install 'aiscope[grpc]' "
                "(or use the default HTTP/protobuf protocol)"
            ) from None

        return GrpcExporter(
            endpoint=target,
            insecure=target.startswith("http://"),
            headers=sent,
            timeout=timeout_s,
        )
    # requests imports netrc lazily in its first request, which runs on the export
    # thread: a fork during that import would leave the child's exporter stuck on the
    # import's lock. Imported here, on the caller's thread, it is never pending.
    import netrc  # noqa: F401

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    session = None
    if not any(k.endswith("_CREDENTIAL_PROVIDER") for k in os.environ):
        session = fork_safe_session()  # else the exporter makes its own from them
    return HttpExporter(endpoint=target, headers=sent, timeout=timeout_s, session=session)


def fork_safe_session() -> Any:
    """A ``requests.Session`` for an OTLP/HTTP exporter that a forked child empties of
    the connections it inherited: a kept-alive socket used by two processes would mix
    their requests and answers."""
    import requests

    session = requests.Session()
    after_fork_in_child(session, _drop_inherited_connections)
    return session


def _drop_inherited_connections(session: Any) -> None:
    # Closing only closes the child's copies of the sockets (no shutdown): the
    # parent's connections stay open; the session connects afresh when next used.
    session.close()


__all__ = [
    "TRACES_PATH",
    "fork_safe_session",
    "otlp_exporter",
    "resolve",
]
