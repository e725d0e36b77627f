"""FastAPI: ``/metrics``, ``/health`` and a cost report, and per-request attribution.

::

    from fastapi import FastAPI
    from aiscope.integrations.fastapi import instrument_app

    app = FastAPI()
    instrument_app(app)      # middleware + GET /metrics, /health, /costs

Every LLM call made while a request is handled (by an instrumented SDK,
AiClient or manual capture) carries the tag ``route`` — the route's template,
such as ``/items/{item_id}``, never the raw path, so label values stay bounded
— and runs inside a span named ``"<METHOD> <route>"`` when the scope's tracer
can open spans (``tracer.span(name)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Match

from aiscope.context import tags
from aiscope.scope import Scope, current_scope

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: What ``/health`` calls: returns a mapping with a ``status`` (or an object with
#: ``as_dict()``); ``"unhealthy"``/``"down"`` answer 503.
HealthCheck = Callable[[], Any]

UNHEALTHY = frozenset({"unhealthy", "down", "fail", "failed", "error"})
UNMATCHED = "unmatched"


def route_template(scope: Mapping[str, Any]) -> str:
    """The template of the route that will serve this ASGI request (``/items/{id}``)."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        try:
            match, _child = route.matches(scope)
        except Exception:
            continue
        if match == Match.FULL:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                return path
    return UNMATCHED


class AiscopeMiddleware:
    """ASGI middleware: tags the LLM calls of each HTTP request with its route and
    opens a request span when the scope's tracer has ``span(name)``.

    ``scope`` None follows :func:`aiscope.current_scope` at each request.
    """

    def __init__(self, app: ASGIApp, *, scope: Scope | None = None, tag: str = "route") -> None:
        if scope is not None and not isinstance(scope, Scope):
            raise TypeError(f"scope must be an aiscope.Scope, got {scope!r}")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty str, got {tag!r}")
        self.app = app
        self.scope = scope
        self.tag = tag

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(scope)
        tracer = (self.scope or current_scope()).tracer
        span = getattr(tracer, "span", None) if tracer is not None else None
        with tags(**{self.tag: route}):
            if span is None:
                await self.app(scope, receive, send)
                return
            with _span(span, f"{scope.get('method', 'GET')} {route}"):
                await self.app(scope, receive, send)


def _span(factory: Callable[[str], Any], name: str) -> contextlib.AbstractContextManager[Any]:
    # A tracer that fails to open a span must not fail the request.
    try:
        cm = factory(name)
        if hasattr(cm, "__enter__") and hasattr(cm, "__exit__"):
            return cm  # type: ignore[no-any-return]
    except Exception:
        pass
    return contextlib.nullcontext()


def _default_health(scope: Scope) -> dict[str, Any]:
    return {"status": "ok", "sink_errors": dict(scope.sink_errors)}


def aiscope_router(
    *,
    scope: Scope | None = None,
    health: HealthCheck | None = None,
    metrics_path: str = "/metrics",
    health_path: str = "/health",
    costs_path: str = "/costs",
) -> APIRouter:
    """A router with GET ``/metrics`` (Prometheus text), ``/health`` and ``/costs``
    (``total_cost``, ``remaining``, ``by_model``, ...).

    ``health`` is any callable returning the health report (a mapping with
    ``status``, or an object with ``as_dict()``); by default the scope's own
    sink-error counts with ``status: ok``.
    """
    if health is not None and not callable(health):
        raise TypeError(f"health must be callable, got {health!r}")
    router = APIRouter()

    def active() -> Scope:
        return scope if scope is not None else current_scope()

    @router.get(metrics_path, include_in_schema=False)
    def metrics() -> PlainTextResponse:
        collector = active().metrics
        if collector is None:
            return PlainTextResponse("no MetricsCollector configured\n", status_code=404)
        return PlainTextResponse(collector.export_prometheus(), media_type=CONTENT_TYPE_LATEST)

    @router.get(health_path)
    def health_report() -> JSONResponse:
        report = health() if health is not None else _default_health(active())
        if hasattr(report, "as_dict"):
            report = report.as_dict()
        if not isinstance(report, Mapping):
            raise TypeError(f"health check must return a mapping, got {type(report).__name__}")
        status = str(report.get("status", "ok")).lower()
        return JSONResponse(dict(report), status_code=503 if status in UNHEALTHY else 200)

    @router.get(costs_path)
    def costs() -> JSONResponse:
        tracker = active().cost_tracker
        if tracker is None:
            return JSONResponse({"detail": "no CostTracker configured"}, status_code=404)
        report = tracker.get_report()
        return JSONResponse(
            {
                "total_cost": report.total_cost,
                "remaining": report.remaining,
                "budget_usd": report.budget_usd,
                "spent": report.spent,
                "call_count": report.call_count,
                "error_count": report.error_count,
                "refused_calls": report.refused_calls,
                "by_model": report.by_model,
                "by_provider": report.by_provider,
                "by_feature": report.by_feature,
                "by_team": report.by_team,
                "by_operation": report.by_operation,
            }
        )

    return router


def instrument_app(
    app: FastAPI,
    *,
    scope: Scope | None = None,
    health: HealthCheck | None = None,
    prefix: str = "",
    tag: str = "route",
) -> FastAPI:
    """Add :class:`AiscopeMiddleware` and :func:`aiscope_router` (under ``prefix``) to ``app``."""
    if not isinstance(app, FastAPI):
        raise TypeError(f"app must be a fastapi.FastAPI, got {type(app).__name__}")
    app.add_middleware(AiscopeMiddleware, scope=scope, tag=tag)
    app.include_router(aiscope_router(scope=scope, health=health), prefix=prefix)
    return app
