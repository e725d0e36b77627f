"""FastAPI: ``/metrics``, ``/health``, ``/livez``, ``/readyz`` and a cost report, and
per-request attribution.

::

    from fastapi import FastAPI
    from aiscope.integrations.fastapi import instrument_app

    app = FastAPI()
    instrument_app(app)  # route tags, server spans, GET /metrics /health /livez /readyz /costs

Every LLM call made while a request is handled (by an instrumented SDK,
AiClient or manual capture) carries the tag ``route`` — the route's template,
such as ``/items/{item_id}``, never the raw path, so label values stay bounded —
also for routes of an included ``APIRouter``. The request's HTTP server span
(named ``"<METHOD> <route>"``, with the incoming ``traceparent`` as its parent)
comes from ``opentelemetry-instrumentation-fastapi``, on the scope's Tracer's
TracerProvider, so LLM call spans are its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from opentelemetry import trace
from opentelemetry.util.types import Attributes
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Match

from aiscope.context import tags
from aiscope.health import HealthChecker, in_daemon_thread
from aiscope.scope import Scope, current_scope

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: What ``/health`` (and ``/readyz``) call when given a function: sync or async, it
#: returns a mapping with a ``status`` (or an object with ``as_dict()``);
#: ``"unhealthy"``/``"down"`` answer 503.
HealthCheck = Callable[[], Any]

UNHEALTHY = frozenset({"unhealthy", "down", "fail", "failed", "error"})
UNMATCHED = "unmatched"

_iter_route_contexts: Callable[[Sequence[Any]], Iterator[Any]] | None
try:  # FastAPI >= 0.137.2: included routers flattened into matchable route contexts
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI
    _iter_route_contexts = None


def _flat_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """The matchable routes of an app: FastAPI keeps an included router as one
    ``_IncludedRouter`` entry whose ``matches()`` says nothing of the route inside, so
    it is expanded into its routes (with their full, prefixed paths)."""
    if _iter_route_contexts is not None:
        yield from _iter_route_contexts(list(routes))
        return
    for route in routes:  # pragma: no cover - older FastAPI
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


#: the attribute of a router holding (routes version, [(matches, path)]) of its routes
_TABLE = "_aiscope_route_table"


def _route_table(router: Any, routes: Iterable[Any]) -> list[tuple[Any, Any]]:
    """The flattened routes as ``(matches, path)`` pairs, rebuilt when FastAPI says the
    routes changed (its routes version; without one, at every request)."""
    version_of = getattr(router, "_get_routes_version", None)
    version: object = None
    if version_of is not None:
        try:
            version = (version_of(), len(getattr(router, "routes", ())))
        except Exception:
            version = None
    if version is not None:
        cached = getattr(router, _TABLE, None)
        if cached is not None and cached[0] == version:
            return cached[1]  # type: ignore[no-any-return]
    table = [(route.matches, getattr(route, "path", None)) for route in _flat_routes(routes)]
    if version is not None:
        with contextlib.suppress(AttributeError, TypeError):  # no attribute: no cache
            setattr(router, _TABLE, (version, table))
    return table


def route_template(scope: Mapping[str, Any]) -> str:
    """The template of the route that will serve this ASGI request (``/items/{id}``),
    found as ``opentelemetry-instrumentation-fastapi`` finds its ``http.route``: the
    route that matches fully, else the last partial match (a mount's path, or a
    route asked with another method); ``"unmatched"`` when nothing matches."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    routes: Iterable[Any] = getattr(app, "routes", None) or getattr(router, "routes", None) or ()
    found: str | None = None
    for matches, path in _route_table(router if router is not None else app, routes):
        try:
            match, _child = matches(scope)
        except Exception:  # a route that cannot judge this request does not serve it
            continue
        if match == Match.FULL:
            return path if isinstance(path, str) and path else str(scope.get("path", UNMATCHED))
        if match == Match.PARTIAL and isinstance(path, str) and path:
            found = path
    return found if found is not None else UNMATCHED


#: the ASGI scope key of ``(app, route template)`` found once per request for both the
#: server span and the route tag (the app, so a mounted app finds its own)
_ROUTE_KEY = "aiscope.route"


def _span_details(scope: MutableMapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The server span's name and ``http.route``, as the FastAPI instrumentation's own
    ``_get_default_span_details`` makes them, from :func:`route_template` (whose route
    table is cached), remembered in the scope for the route tag."""
    try:
        route = route_template(scope)
    except Exception:
        route = UNMATCHED
    scope[_ROUTE_KEY] = (scope.get("app"), route)
    from opentelemetry.util.http import sanitize_method

    method = sanitize_method(str(scope.get("method", "")).strip())
    if method == "_OTHER":
        method = "HTTP"
    if route == UNMATCHED:
        return method, {}
    return f"{method} {route}", {"http.route": route}


def _share_route_lookup(app: FastAPI) -> None:
    """Have the instrumentation's middleware name its spans with :func:`_span_details`
    (the same names, the route looked up once per request, not twice); a version of it
    without ``default_span_details`` keeps its own lookup."""
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = build()
        node: Any = stack
        seen: set[int] = set()
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if type(node).__name__ == "OpenTelemetryMiddleware" and hasattr(
                node, "default_span_details"
            ):
                node.default_span_details = _span_details
                break
            node = getattr(node, "app", None)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


class AiscopeMiddleware:
    """ASGI middleware: tags the LLM calls of each HTTP request with its route
    template (``tag``, default ``route``).

    The request's server span is not opened here: :func:`instrument_app` adds
    ``opentelemetry-instrumentation-fastapi`` for it. ``scope`` is accepted for
    symmetry with :func:`aiscope_router`; tags follow the context either way.
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
        found = scope.get(_ROUTE_KEY)
        if found is not None and found[0] is scope.get("app"):
            route = found[1]  # found for the server span already (see _span_details)
        else:
            try:
                route = route_template(scope)
            except Exception:  # attribution must never fail the request
                route = UNMATCHED
        with tags(**{self.tag: route}):
            await self.app(scope, receive, send)


class _ScopeTracerProvider(trace.TracerProvider):
    """A TracerProvider that is, at each span, the scope's Tracer's provider (the
    current scope's when ``scope`` is None), else the global one: the request span
    then goes where the LLM call spans go, even when the scope is configured after
    the app was instrumented."""

    def __init__(self, scope: Scope | None) -> None:
        self._scope = scope

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _ScopeTracer(
            self._scope, instrumenting_module_name, instrumenting_library_version, schema_url
        )


class _ScopeTracer(trace.Tracer):
    """Delegates each span to the tracer of the provider in force (one-slot cache)."""

    def __init__(
        self, scope: Scope | None, name: str, version: str | None, schema_url: str | None
    ) -> None:
        self._scope = scope
        self._name = name
        self._version = version
        self._schema_url = schema_url
        self._cached: tuple[object, trace.Tracer] | None = None

    def _target(self) -> trace.Tracer:
        try:
            sink = (self._scope or current_scope()).tracer
            provider = getattr(sink, "tracer_provider", None)
            if not isinstance(provider, trace.TracerProvider):
                provider = trace.get_tracer_provider()
            cached = self._cached
            if cached is not None and cached[0] is provider:
                return cached[1]
            tracer = provider.get_tracer(self._name, self._version, self._schema_url)
            self._cached = (provider, tracer)
            return tracer
        except Exception:  # a broken tracer must not fail the request
            return trace.NoOpTracer()

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._target().start_as_current_span(*args, **kwargs)


def _server_spans(app: FastAPI, scope: Scope | None) -> None:
    """HTTP server spans by ``opentelemetry-instrumentation-fastapi`` (imported here, so
    importing aiscope does not import it), unless the app is instrumented already."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return  # the application's own FastAPIInstrumentor (and its provider) wins
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        warnings.warn(
            "aiscope: opentelemetry-instrumentation-fastapi is not installed, so requests "
            "get no server span (pip install 'aiscope[server]'); route tags still work",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_ScopeTracerProvider(scope),
        # one span per request: not one more per ASGI message sent or received
        exclude_spans=["receive", "send"],
    )
    _share_route_lookup(app)


# -- health --------------------------------------------------------------------------------
def _failing(report: Mapping[str, Any]) -> list[str]:
    """The names of the checks in ``report["checks"]`` whose status is unhealthy."""
    checks = report.get("checks")
    if not isinstance(checks, Mapping):
        return []
    names = []
    for name, check in checks.items():
        status = check.get("status") if isinstance(check, Mapping) else check
        if str(status).lower() in UNHEALTHY:
            names.append(str(name))
    return names


def _health_response(report: Any) -> JSONResponse:
    if hasattr(report, "as_dict"):
        report = report.as_dict()
    if not isinstance(report, Mapping):
        return JSONResponse(
            {
                "status": "unhealthy",
                "failing": ["health"],
                "message": "the health check must return a mapping with a status (or an "
                f"object with as_dict()), got {type(report).__name__}",
            },
            status_code=500,
        )
    body = dict(report)
    if str(body.get("status", "ok")).lower() not in UNHEALTHY:
        return JSONResponse(body, status_code=200)
    body.setdefault("failing", _failing(body))
    return JSONResponse(body, status_code=503)


async def _call_health(fn: HealthCheck, timeout_s: float) -> JSONResponse:
    """Run a health function (async awaited; sync in a daemon thread of its own, so a
    hung one holds no worker of a pool the app needs) under a timeout."""
    try:
        if inspect.iscoroutinefunction(fn):
            pending: Awaitable[Any] = fn()
        else:
            pending = in_daemon_thread(fn)
        report = await asyncio.wait_for(pending, timeout_s)
        if inspect.isawaitable(report):  # a sync function that returned a coroutine
            report = await asyncio.wait_for(report, timeout_s)
    except TimeoutError:
        return JSONResponse(
            {
                "status": "unhealthy",
                "failing": ["health"],
                "message": f"the health check timed out after {timeout_s:g}s",
            },
            status_code=503,
        )
    except Exception as exc:
        return JSONResponse(
            {
                "status": "unhealthy",
                "failing": ["health"],
                "message": f"{type(exc).__name__}: {exc}",
            },
            status_code=503,
        )
    return _health_response(report)


def _default_health(scope: Scope) -> dict[str, Any]:
    return {"status": "ok", "sink_errors": dict(scope.sink_errors)}


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"health_timeout_s must be a number of seconds > 0, got {value!r}")
    return float(value)


def aiscope_router(
    *,
    scope: Scope | None = None,
    health: HealthChecker | HealthCheck | None = None,
    metrics_path: str = "/metrics",
    health_path: str = "/health",
    costs_path: str = "/costs",
    livez_path: str = "/livez",
    readyz_path: str = "/readyz",
    health_timeout_s: float = 10.0,
) -> APIRouter:
    """A router with GET ``/metrics`` (Prometheus text), ``/health``, the Kubernetes
    probes ``/livez`` and ``/readyz``, and ``/costs`` (``total_cost``, ``remaining``,
    ``by_model``, ...).

    ``health`` is a :class:`~aiscope.health.HealthChecker` (``/health`` and ``/readyz``
    run every check, ``/livez`` only its liveness checks; each check under its own
    timeout), or any function, sync or async, returning the health report (a mapping
    with ``status``, or an object with ``as_dict()``), run under ``health_timeout_s``
    for ``/health`` and ``/readyz``. By default ``/health`` reports the scope's
    sink-error counts and the probes run a ``HealthChecker`` of the scope. An
    unhealthy report answers 503 with the failing checks' names in ``failing``.
    """
    if health is not None and not isinstance(health, HealthChecker) and not callable(health):
        raise TypeError(f"health must be a HealthChecker or callable, got {health!r}")
    timeout_s = _check_timeout(health_timeout_s)
    router = APIRouter()
    checker = health if isinstance(health, HealthChecker) else HealthChecker(scope=scope)
    report_fn = None if isinstance(health, HealthChecker) else health

    def active() -> Scope:
        return scope if scope is not None else current_scope()

    @router.get(metrics_path, include_in_schema=False)
    def metrics() -> PlainTextResponse:
        collector = active().metrics
        if collector is None:
            return PlainTextResponse("no MetricsCollector configured\n", status_code=404)
        return PlainTextResponse(collector.export_prometheus(), media_type=CONTENT_TYPE_LATEST)

    @router.get(health_path)
    async def health_report() -> JSONResponse:
        if report_fn is not None:
            return await _call_health(report_fn, timeout_s)
        if isinstance(health, HealthChecker):
            return _health_response(await checker.check())
        return _health_response(_default_health(active()))

    @router.get(livez_path)
    async def livez() -> JSONResponse:
        """Liveness: only the checks that say the process itself is stuck."""
        return _health_response(await checker.liveness())

    @router.get(readyz_path)
    async def readyz() -> JSONResponse:
        """Readiness: every check (not ready while a dependency is down)."""
        if report_fn is not None:
            return await _call_health(report_fn, timeout_s)
        return _health_response(await checker.readiness())

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
    health: HealthChecker | HealthCheck | None = None,
    prefix: str = "",
    tag: str = "route",
    server_spans: bool = True,
    health_timeout_s: float = 10.0,
) -> FastAPI:
    """Add :class:`AiscopeMiddleware` (route tags), HTTP server spans
    (``opentelemetry-instrumentation-fastapi`` on the scope's Tracer's provider;
    ``server_spans=False`` leaves them out) and :func:`aiscope_router` (under
    ``prefix``) to ``app``."""
    if not isinstance(app, FastAPI):
        raise TypeError(f"app must be a fastapi.FastAPI, got {type(app).__name__}")
    router = aiscope_router(scope=scope, health=health, health_timeout_s=health_timeout_s)
    app.add_middleware(AiscopeMiddleware, scope=scope, tag=tag)
    if server_spans:
        _server_spans(app, scope)
    app.include_router(router, prefix=prefix)
    return app


__all__ = [
    "AiscopeMiddleware",
    "aiscope_router",
    "instrument_app",
    "route_template",
]
