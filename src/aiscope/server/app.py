"""The FastAPI application: the routers of :mod:`aiscope.server.routes` over one
database, error answers, and one lifespan for the background work.

Who may call what (keys, local-only mode) is in :mod:`aiscope.server.deps`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aiscope.server import otlp
from aiscope.server.alerting import AlertService
from aiscope.server.background import Background, Job, lifespan, maintain
from aiscope.server.deps import DecodeSlots, is_loopback
from aiscope.server.routes import ROUTERS
from aiscope.server.settings import MAX_BODY_BYTES, MAX_SPANS, Settings
from aiscope.server.writer import GroupWriter

__all__ = ["MAX_BODY_BYTES", "MAX_SPANS", "Settings", "create_app", "is_loopback"]


async def _payload_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, otlp.PayloadError)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def _value_error(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _too_deep(_request: Request, _exc: Exception) -> JSONResponse:
    # a body nested thousands deep: the request's fault, whichever parser met it
    return JSONResponse({"detail": "request body is nested too deeply"}, status_code=400)


def _jobs(settings: Settings, alerts: AlertService) -> list[Job]:
    jobs = []
    if settings.compact_every_s is not None:
        jobs.append(Job("maintenance", settings.compact_every_s, lambda: maintain(settings)))
    if settings.alert_every_s is not None:
        jobs.append(Job("alerts", settings.alert_every_s, alerts.evaluate_all))
    return jobs


def create_app(settings: Settings) -> FastAPI:
    """The server's ASGI app over ``settings.engine`` (already migrated)."""
    if settings.retention_days is not None and not settings.retention_days > 0:
        raise ValueError(f"retention_days must be > 0, got {settings.retention_days!r}")
    for name in ("compact_every_s", "alert_every_s"):
        every = getattr(settings, name)
        if every is not None and not every > 0:
            raise ValueError(f"{name} must be > 0 seconds or None, got {every!r}")
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
    writer = GroupWriter(settings.engine)
    if settings.alert_every_s is not None and not settings.alert_lease_s > settings.alert_every_s:
        raise ValueError(
            f"alert_lease_s ({settings.alert_lease_s!r}) must be longer than alert_every_s "
            f"({settings.alert_every_s!r}): the lease is renewed at each evaluation"
        )
    alerts = AlertService(
        settings.engine,
        settings.alert_every_s or 15.0,
        notifiers=settings.notifiers,
        lease_s=settings.alert_lease_s,
        ledger=settings.ledger,
    )
    app.state.settings = settings
    app.state.writer = writer
    app.state.alert_service = alerts
    app.state.decode_slots = DecodeSlots(settings.max_concurrent_decodes)
    app.state.background = Background(_jobs(settings, alerts), on_stop=[alerts.close, writer.close])
    app.add_exception_handler(otlp.PayloadError, _payload_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(RecursionError, _too_deep)
    for router in ROUTERS:
        app.include_router(router)
    return app
