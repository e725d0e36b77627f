"""The server's routes, one :class:`fastapi.APIRouter` per module, each named for what it
serves; :data:`ROUTERS` is every one of them, in the order the app includes them."""

from __future__ import annotations

from fastapi import APIRouter

from aiscope.server.routes import (
    alerts,
    budgets,
    calls,
    calls_ingest,
    dashboard,
    feedback,
    health,
    keys,
    otlp_ingest,
    quality,
    usage,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    otlp_ingest.router,
    calls_ingest.router,
    feedback.router,
    calls.router,
    usage.router,
    keys.router,
    budgets.router,
    alerts.router,
    quality.router,
    dashboard.router,
)

__all__ = ["ROUTERS"]
