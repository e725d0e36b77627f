"""The routes' dependencies: the app's settings, database, writer and alert service,
who is asking (authentication), request bodies, and the time range of a query.

Ingest (``/v1/traces``, ``/api/ingest/calls``, ``POST /api/feedback``) takes a
project's public key; reads (``/api/...`` GETs) take its secret key; either goes in
``Authorization: Bearer`` or ``x-aiscope-key``. In local-only mode (no keys) everything
belongs to the ``local`` project and only loopback clients are served, under a loopback
``Host`` name (or one of ``Settings.allowed_hosts``: a DNS-rebinding page has its own),
and writes from a browser page of another site are refused (``Sec-Fetch-Site``,
``Origin``): no web page the user visits can read or write the local data.
"""

from __future__ import annotations

import ipaddress
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy import Engine

from aiscope.cost.pricing import Pricing, default_pricing
from aiscope.server import auth, otlp
from aiscope.server.alerting import AlertService
from aiscope.server.settings import Settings
from aiscope.server.writer import GroupWriter


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the app's parts ----------------------------------------------------------------------
def get_settings(request: Request) -> Settings:
    """The app's :class:`Settings`."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """The app's database."""
    return get_settings(request).engine


def get_pricing(request: Request) -> Pricing:
    """The prices ingest uses (the settings', or the bundled ones)."""
    return get_settings(request).pricing or default_pricing()


def get_writer(request: Request) -> GroupWriter:
    """The app's group-commit writer."""
    writer: GroupWriter = request.app.state.writer
    return writer


def get_alerts(request: Request) -> AlertService:
    """The app's alert service."""
    service: AlertService = request.app.state.alert_service
    return service


AppSettings = Annotated[Settings, Depends(get_settings)]
Db = Annotated[Engine, Depends(get_engine)]
Prices = Annotated[Pricing, Depends(get_pricing)]
Writer = Annotated[GroupWriter, Depends(get_writer)]
Alerts = Annotated[AlertService, Depends(get_alerts)]


# -- who is asking ------------------------------------------------------------------------
def _key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-aiscope-key", "").strip()


#: what ``Sec-Fetch-Site`` says of a request a page of another site made
_CROSS_SITE = frozenset({"cross-site", "same-site"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(value: str) -> str | None:
    """The host name of a ``Host`` header or an ``Origin`` URL's authority, lowercased."""
    try:
        return urllib.parse.urlsplit(f"//{value}").hostname
    except ValueError:
        return None


def _local_host(settings: Settings, value: str) -> bool:
    name = _host_name(value)
    return name is not None and (is_loopback(name) or name in settings.allowed_hosts)


def _check_local(request: Request, settings: Settings) -> None:
    """Refuse what a local-only server must not serve: other machines, other host
    names (DNS rebinding) and browser writes from other sites (CSRF)."""
    client = request.client.host if request.client else ""
    if not is_loopback(client):
        raise HTTPException(403, "local-only mode serves loopback clients only")
    host = request.headers.get("host", "")
    if not _local_host(settings, host):
        raise HTTPException(
            403,
            f"Host {host!r} is not a loopback name: local-only mode refuses it (a page "
            "on another site may have renamed this address); allow it in allowed_hosts",
        )
    if request.method in _SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site", "").lower() in _CROSS_SITE:
        raise HTTPException(403, "writes from a page of another site are refused")
    origin = request.headers.get("origin")
    if origin is not None and not (
        urllib.parse.urlsplit(origin).scheme in ("http", "https")
        and _local_host(settings, urllib.parse.urlsplit(origin).netloc)
    ):
        raise HTTPException(403, f"writes from origin {origin!r} are refused")


def _principal(request: Request, kind: auth.Kind) -> auth.Principal:
    # a NUL names nothing stored (PostgreSQL refuses it in text): the request's fault
    if "\x00" in request.url.path or b"%00" in request.scope["query_string"]:
        raise HTTPException(400, "the URL holds a NUL byte (%00): no name or filter can")
    settings = get_settings(request)
    if settings.local_only:
        _check_local(request, settings)
        return auth.Principal(auth.LOCAL_PROJECT, kind)
    key = _key(request)
    if not key:
        raise HTTPException(401, "missing API key (Authorization: Bearer <key>)")
    who = auth.authenticate(settings.engine, key)
    if who is None:
        raise HTTPException(401, "invalid API key")
    if who.kind != kind:
        need = "public (ingest)" if kind == "public" else "secret (read)"
        raise HTTPException(403, f"this endpoint needs the project's {need} key")
    return who


def ingest_principal(request: Request) -> auth.Principal:
    """The project a write goes to (public key)."""
    return _principal(request, "public")


def read_principal(request: Request) -> auth.Principal:
    """The project a read is scoped to (secret key)."""
    return _principal(request, "secret")


Ingester = Annotated[auth.Principal, Depends(ingest_principal)]
Reader = Annotated[auth.Principal, Depends(read_principal)]

# -- the time range of a query ------------------------------------------------------------
Start = Annotated[float | None, Query(description="Unix seconds, inclusive")]
End = Annotated[float | None, Query(description="Unix seconds, exclusive")]


# -- request bodies -----------------------------------------------------------------------
class DecodeSlots:
    """At most ``n`` request bodies decoded at once; a request that waits longer than
    ``wait_s`` for a turn gets 503 + Retry-After. Taken on the decoding worker thread,
    so waiting never blocks the event loop."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"max_concurrent_decodes must be >= 1, got {n!r}")
        self._free = threading.BoundedSemaphore(n)

    @contextmanager
    def slot(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold one slot; 503 when none frees up within ``wait_s`` seconds."""
        if not self._free.acquire(timeout=wait_s):
            raise HTTPException(
                503,
                "the server is decoding as many requests as it takes: retry",
                headers={"Retry-After": "1"},
            )
        try:
            yield
        finally:
            self._free.release()


def decode_slot(request: Request) -> AbstractContextManager[None]:
    """A decode slot of the app, to take on a worker thread (see
    ``Settings.max_concurrent_decodes``)."""
    slots: DecodeSlots = request.app.state.decode_slots
    return slots.slot(get_settings(request).decode_wait_s)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (declared or sent)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise otlp.PayloadError(f"body exceeds the {limit}-byte limit", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise otlp.PayloadError(f"body exceeds the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)
