"""The FastAPI application: OTLP ingest, feedback, and the query API.

Ingest (``/v1/traces``, ``/api/feedback``) takes a project's public key; reads
(``/api/...`` GETs) take its secret key; either goes in ``Authorization: Bearer``
or ``x-aiscope-key``. In local-only mode (no keys) everything belongs to the
``local`` project and only loopback clients are served, under a loopback ``Host``
name (or one of ``Settings.allowed_hosts``: a DNS-rebinding page has its own), and
writes from a browser page of another site are refused (``Sec-Fetch-Site``,
``Origin``): no web page the user visits can read or write the local data.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, insert

from aiscope.cost.pricing import Pricing, default_pricing
from aiscope.server import auth, ingest, otlp, queries, rollup
from aiscope.server.db import write_lock
from aiscope.server.genai import text
from aiscope.server.tables import feedback
from aiscope.server.writer import GroupWriter, commit

MAX_BODY_BYTES = 16 * 1024 * 1024
#: most spans one OTLP request may carry (the SDK's batch processor sends 512): a
#: bigger one is answered 413, so a request's memory stays proportional to this
MAX_SPANS = 50_000
log = logging.getLogger("aiscope.server")


@dataclass(slots=True)
class Settings:
    """What one server process needs: its database and how it authenticates."""

    engine: Engine
    local_only: bool = False
    pricing: Pricing | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    #: seconds between rollup compactions (and retention runs) while the app runs
    compact_every_s: float | None = 30.0
    #: raw calls, spans and feedback older than this are deleted; rollups are kept
    retention_days: float | None = None
    #: request bodies decoded at once; one more waits up to ``decode_wait_s`` for a
    #: turn, then is answered 503 with Retry-After: a burst of large requests cannot
    #: take memory without bound
    max_concurrent_decodes: int = 4
    decode_wait_s: float = 10.0
    #: ``Host`` names served in local-only mode besides loopback ones (``localhost``,
    #: ``127.0.0.1``, ``[::1]``, ...), e.g. a name in ``/etc/hosts`` for 127.0.0.1
    allowed_hosts: tuple[str, ...] = ()


def _maintenance(settings: Settings, stop: threading.Event) -> None:
    assert settings.compact_every_s is not None
    while not stop.wait(settings.compact_every_s):
        try:
            rollup.compact(settings.engine)
            if settings.retention_days is not None:
                rollup.prune(settings.engine, time.time() - settings.retention_days * 86400)
        except Exception:  # retried next time; ingest goes on
            log.exception("rollup compaction or retention failed")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    settings: Settings = request.app.state.settings
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
Start = Annotated[float | None, Query(description="Unix seconds, inclusive")]
End = Annotated[float | None, Query(description="Unix seconds, exclusive")]


class _DecodeSlots:
    """At most ``n`` request bodies decoded at once; a request that waits longer than
    ``wait_s`` for a turn gets 503 + Retry-After. Taken on the decoding worker thread,
    so waiting never blocks the event loop."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"max_concurrent_decodes must be >= 1, got {n!r}")
        self._free = threading.BoundedSemaphore(n)

    @contextmanager
    def slot(self, wait_s: float = 0.0) -> Iterator[None]:
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
    slots: _DecodeSlots = request.app.state.decode_slots
    return slots.slot(request.app.state.settings.decode_wait_s)


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


def create_app(settings: Settings) -> FastAPI:
    """The server's ASGI app over ``settings.engine`` (already migrated)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if settings.compact_every_s is not None:
            threading.Thread(
                target=_maintenance,
                args=(settings, stop),
                name="aiscope-maintenance",
                daemon=True,
            ).start()
        try:
            yield
        finally:
            stop.set()
            writer.close()

    app = FastAPI(
        title="aiscope server",
        summary="OTLP ingest and queries for LLM calls",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN, which fails
        # offline and would be the page's only third-party code: /openapi.json stays
        docs_url=None,
        redoc_url=None,
    )
    if settings.retention_days is not None and not settings.retention_days > 0:
        raise ValueError(f"retention_days must be > 0, got {settings.retention_days!r}")
    app.state.settings = settings
    pricing = settings.pricing or default_pricing()
    engine = settings.engine
    writer = GroupWriter(engine)
    app.state.writer = writer
    app.state.decode_slots = _DecodeSlots(settings.max_concurrent_decodes)

    @app.exception_handler(otlp.PayloadError)
    async def payload_error(_request: Request, exc: otlp.PayloadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(ValueError)
    async def value_error(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RecursionError)
    async def too_deep(_request: Request, _exc: RecursionError) -> JSONResponse:
        # a body nested thousands deep: the request's fault, whichever parser met it
        return JSONResponse({"detail": "request body is nested too deeply"}, status_code=400)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        """Liveness: the process answers (no key needed)."""
        return {"status": "ok"}

    @app.post(
        "/v1/traces",
        openapi_extra={
            "requestBody": {
                "content": {
                    otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    otlp.JSON: {"schema": {"type": "object"}},
                },
                "required": True,
            }
        },
    )
    async def traces(request: Request, who: Ingester) -> Response:
        """OTLP/HTTP traces (protobuf or JSON, gzip): answered after the batch is committed."""
        ctype = request.headers.get("content-type")
        encoding = request.headers.get("content-encoding")
        raw = await read_body(request, settings.max_body_bytes)
        slot = decode_slot(request)  # taken after the read: a slow sender holds none

        def decode() -> ingest.Batch:  # off the event loop: a large body takes a while
            with slot:
                body = otlp.decompress(raw, encoding, settings.max_body_bytes)
                parsed = otlp.parse(body, ctype)
                n = sum(len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)
                if n > MAX_SPANS:
                    raise otlp.PayloadError(
                        f"{n} spans in one request: at most {MAX_SPANS}; send smaller batches",
                        413,
                    )
                return ingest.to_batch(parsed, who.project_id, pricing)

        batch = await anyio.to_thread.run_sync(decode)
        await commit(writer, batch)  # answered only after the commit that holds it
        content, media = otlp.encode_response(ctype, batch.rejected, "; ".join(batch.errors[:5]))
        return Response(content, media_type=media)

    @app.post("/api/feedback", status_code=201)
    def add_feedback(
        who: Ingester,
        name: Annotated[str, Body(min_length=1, max_length=128)],
        score: Annotated[float | None, Body(allow_inf_nan=False)] = None,
        comment: Annotated[str | None, Body(max_length=10_000)] = None,
        trace_id: Annotated[str | None, Body(pattern="^[0-9a-f]{32}$")] = None,
        span_id: Annotated[str | None, Body(pattern="^[0-9a-f]{16}$")] = None,
        request_id: Annotated[str | None, Body(max_length=128)] = None,
    ) -> dict[str, str]:
        """A score or label for a call or trace (e.g. a user's thumbs up)."""
        if trace_id is None and request_id is None:
            raise ValueError("feedback needs trace_id or request_id")
        with write_lock(engine), engine.begin() as conn:
            conn.execute(
                insert(feedback),
                {
                    "project_id": who.project_id,
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "request_id": None if request_id is None else text(request_id, 128),
                    "name": text(name, 128),
                    "score": score,
                    "comment": None if comment is None else text(comment, 10_000),
                    "created_ts": time.time(),
                },
            )
        return {"status": "stored"}

    @app.get("/api/calls")
    def calls(
        who: Reader,
        start: Start = None,
        end: End = None,
        model: str | None = None,
        provider: str | None = None,
        feature: str | None = None,
        team: str | None = None,
        status: Literal["ok", "error"] | None = None,
        trace_id: str | None = None,
        operation: str | None = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=100)] = None,
    ) -> dict[str, Any]:
        """Calls, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        given = {
            "model": model,
            "provider": provider,
            "feature": feature,
            "team": team,
            "status": status,
            "trace_id": trace_id,
            "operation": operation,
        }
        page = queries.list_calls(
            engine,
            who.project_id,
            filters={k: v for k, v in given.items() if v is not None},
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @app.get("/api/traces/{trace_id}")
    def trace(who: Reader, trace_id: str) -> dict[str, Any]:
        """One trace as a tree of spans, each GenAI span with its call."""
        roots = queries.trace_tree(engine, who.project_id, trace_id)
        if roots is None:
            raise HTTPException(404, f"no trace {trace_id[:40]!r} in this project")
        return {"trace_id": trace_id, "roots": roots}

    @app.get("/api/cost")
    def cost(
        who: Reader,
        group_by: Literal["model", "provider", "feature", "team", "day"] = "model",
        start: Start = None,
        end: End = None,
    ) -> dict[str, Any]:
        """Calls, tokens and cost by model, provider, feature, team or day (from rollups)."""
        rows = queries.cost_by(engine, who.project_id, group_by, start=start, end=end)
        return {"group_by": group_by, "rows": rows}

    @app.get("/api/latency")
    def latency(
        who: Reader,
        start: Start = None,
        end: End = None,
        metric: Literal["latency", "ttft"] = "latency",
        q: Annotated[list[float] | None, Query(description="quantiles in [0, 1]")] = None,
    ) -> dict[str, Any]:
        """Latency (or time-to-first-token) percentiles in ms per model (from rollups)."""
        rows = queries.latency_by_model(
            engine,
            who.project_id,
            start=start,
            end=end,
            quantiles=q or (0.5, 0.95, 0.99),
            metric=metric,
        )
        return {"metric": metric, "rows": rows}

    # their routes use this module's dependencies (Reader, ...): imported here
    from aiscope.server import extras, feedback_report, timeseries
    from aiscope.server.web import routes as web

    app.include_router(timeseries.router)
    app.include_router(feedback_report.router)
    app.include_router(web.router)
    extras.install(app)
    return app
