"""HealthChecker: is the LLM side of this application working, check by check.

``status = await health.check()`` runs every check concurrently, each under its own
timeout (so one hung check cannot hide the others' results), and returns
``is_healthy`` and ``details``: one entry per check with its status (healthy,
degraded, unhealthy), latency and message. Built-in checks: providers'
availability (a GET on the manifest's health path), circuit breakers, exporter
queues (dropped spans), budgets and the scope's sink errors. Custom checks are
registered by name, sync or async. :meth:`HealthChecker.liveness` and
:meth:`HealthChecker.readiness` are the Kubernetes probe variants.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx2

from aiscope.cost.tracker import CostTracker
from aiscope.resilience.circuit import CircuitBreaker, CircuitState
from aiscope.scope import Scope, current_scope

if TYPE_CHECKING:
    from aiscope.client import AiClient

Status = Literal["healthy", "degraded", "unhealthy"]
STATUSES: tuple[str, ...] = ("healthy", "degraded", "unhealthy")
_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}

#: what a check function may return: a bool, a status, (status, message), or a CheckResult
CheckFn = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    status: Status
    latency_ms: float
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {"status": self.status, "latency_ms": self.latency_ms, "message": self.message}


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """Every check's result and the overall status (the worst of them)."""

    status: Status
    checks: dict[str, CheckResult]

    @property
    def is_healthy(self) -> bool:
        """True unless a check is unhealthy (degraded still serves traffic)."""
        return self.status != "unhealthy"

    @property
    def failing(self) -> list[str]:
        """The names of the unhealthy checks (what a 503 probe answer names)."""
        return [name for name, r in self.checks.items() if r.status == "unhealthy"]

    @property
    def details(self) -> dict[str, dict[str, Any]]:
        """``{check name: {"status", "latency_ms", "message"}}``."""
        return {name: r.as_dict() for name, r in self.checks.items()}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (the /health, /livez and /readyz endpoints' body)."""
        return {
            "status": self.status,
            "is_healthy": self.is_healthy,
            "failing": self.failing,
            "checks": self.details,
        }


@dataclass(frozen=True, slots=True)
class _Check:
    fn: CheckFn
    timeout_s: float
    liveness: bool


def _check_timeout(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _result(name: str, outcome: Any, latency_ms: float) -> CheckResult:
    """Turn what a check returned into a CheckResult."""
    if isinstance(outcome, CheckResult):
        return CheckResult(name, outcome.status, latency_ms, outcome.message)
    if isinstance(outcome, bool):
        return CheckResult(name, "healthy" if outcome else "unhealthy", latency_ms)
    if outcome is None:
        return CheckResult(name, "healthy", latency_ms)
    message = ""
    if isinstance(outcome, tuple) and len(outcome) == 2:
        outcome, message = outcome
    if outcome not in STATUSES:
        return CheckResult(
            name,
            "unhealthy",
            latency_ms,
            f"check returned {outcome!r}: expected a bool, a status in {STATUSES}, "
            "(status, message) or a CheckResult",
        )
    return CheckResult(name, outcome, latency_ms, str(message))


def in_daemon_thread(fn: CheckFn) -> asyncio.Future[Any]:
    """Run a sync check (``fn()``) in a daemon thread of its own, as a future of the
    running loop: a hung one then neither stalls the event loop, nor holds a worker of
    the loop's executor, nor delays shutdown."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def run() -> None:
        try:
            result: tuple[bool, Any] = (True, fn())
        except Exception as exc:
            result = (False, exc)
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=run, name="aiscope-health-check", daemon=True).start()
    return future


class HealthChecker:
    """Runs health checks concurrently, each with its own timeout.

    ``clients`` are AiClients whose provider and circuit breaker are checked;
    ``providers`` are provider ids (``"openai"``) checked at their manifest's
    endpoint; ``breakers`` extra circuit breakers; ``exporters`` objects with a
    ``dropped_spans`` count (an attribute or a method), degraded while the count
    grows; ``cost_tracker`` the budgets (defaults to the current scope's).
    """

    def __init__(
        self,
        *,
        clients: Iterable[AiClient] = (),
        providers: Iterable[str] = (),
        breakers: Iterable[CircuitBreaker] = (),
        exporters: Iterable[object] = (),
        cost_tracker: CostTracker | None = None,
        scope: Scope | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self.timeout_s = _check_timeout("timeout_s", timeout_s)
        self._checks: dict[str, _Check] = {}
        self._scope = scope
        self._tracker = cost_tracker
        self._dropped_seen: dict[str, float] = {}
        self.add_check("sinks", self._sinks, liveness=True)
        self.add_check("budget", self._budget)
        for client in clients:
            self._add_provider(client.manifest.id, client.manifest, client)
            self.add_breaker(client.breaker)
        for pid in providers:
            from aiscope.client.manifest import get_manifest

            if not isinstance(pid, str):
                raise TypeError(f"providers must be provider ids (str), got {pid!r}")
            try:
                manifest = get_manifest(pid)
            except KeyError as exc:
                raise ValueError(f"providers: {exc.args[0]}") from None
            self._add_provider(pid, manifest, None)
        for breaker in breakers:
            self.add_breaker(breaker)
        for i, exporter in enumerate(exporters):
            self._add_exporter(i, exporter)

    # -- registration ---------------------------------------------------------------------
    def add_check(
        self,
        name: str,
        check: CheckFn,
        *,
        timeout_s: float | None = None,
        liveness: bool = False,
    ) -> None:
        """Register ``check`` (sync or async, no arguments) under ``name``.

        It may return True/False, a status (``"healthy"``, ``"degraded"``,
        ``"unhealthy"``), ``(status, message)``, a :class:`CheckResult` or None
        (healthy); raising makes it unhealthy. ``liveness=True`` puts it in the
        liveness probe too (only checks that say the process itself is stuck should).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"check name must be a non-empty str, got {name!r}")
        if not callable(check):
            raise TypeError(f"check {name!r} must be callable, got {check!r}")
        t = self.timeout_s if timeout_s is None else _check_timeout("timeout_s", timeout_s)
        self._checks[name] = _Check(check, t, liveness)

    def remove_check(self, name: str) -> None:
        """Unregister a check."""
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        """The registered checks."""
        return list(self._checks)

    def add_breaker(self, breaker: CircuitBreaker) -> None:
        """Check a circuit breaker: open is unhealthy, half-open degraded."""
        if not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be an aiscope CircuitBreaker, got {breaker!r}")

        def circuit() -> tuple[str, str]:
            state = breaker.state
            if state == CircuitState.OPEN:
                return "unhealthy", f"circuit open; retry in {breaker.retry_in_s():.1f}s"
            if state == CircuitState.HALF_OPEN:
                return "degraded", "circuit half-open (probing)"
            return "healthy", "circuit closed"

        self.add_check(f"circuit:{breaker.name}", circuit)

    def _add_provider(self, pid: str, manifest: Any, client: Any) -> None:
        from aiscope.client.request import provider_request

        path = manifest.health_path
        if path is None:
            return

        async def provider() -> tuple[str, str]:
            # the key and URL are read at each probe: the environment may change
            if client is not None:
                url, headers = client.provider_request(path)
            else:
                url, headers = provider_request(manifest, path)
            async with httpx2.AsyncClient(timeout=self._checks[f"provider:{pid}"].timeout_s) as c:
                resp = await c.get(url, headers=headers)
            code = resp.status_code
            if code < 400:
                return "healthy", f"GET {path}: {code}"
            if code == 429:
                return "degraded", f"GET {path}: 429 rate limited"
            return "unhealthy", f"GET {path}: {code}"

        self.add_check(f"provider:{pid}", provider)

    # -- built-in checks ------------------------------------------------------------------
    def _current_scope(self) -> Scope:
        return self._scope if self._scope is not None else current_scope()

    def _sinks(self) -> tuple[str, str]:
        errors = self._current_scope().sink_errors
        if errors:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
            return "degraded", f"sink errors so far ({detail}); calls are unaffected"
        return "healthy", "no sink errors"

    def _budget(self) -> tuple[str, str]:
        tracker = self._tracker or self._current_scope().cost_tracker
        if tracker is None or not tracker.budgets:
            return "healthy", "no budget configured"
        worst: tuple[str, str] = ("healthy", "")
        parts = []
        for st in tracker.budget_statuses():
            parts.append(f"{st.name} ({st.window}): ${st.spent_usd:.4f} of ${st.limit_usd:.2f}")
            if st.spent_usd >= st.limit_usd:
                status = "unhealthy" if tracker.mode == "block" else "degraded"
            elif st.spent_usd >= st.limit_usd * tracker.alert_threshold:
                status = "degraded"
            else:
                status = "healthy"
            if _RANK[status] > _RANK[worst[0]]:
                worst = (status, "")
        return worst[0], "; ".join(parts)

    def _add_exporter(self, i: int, exporter: object) -> None:
        """An exporter with a ``dropped_spans`` count (attribute or method), or a
        function returning the count (so tracing need not be imported here)."""
        if hasattr(exporter, "dropped_spans"):
            name = getattr(exporter, "name", type(exporter).__name__)

            def read() -> Any:
                raw = exporter.dropped_spans
                return raw() if callable(raw) else raw

        elif callable(exporter):
            name, read = getattr(exporter, "__name__", f"exporter{i}"), exporter
        else:
            raise TypeError(
                f"exporters[{i}] must have a dropped_spans count or be a function "
                f"returning it, got {exporter!r}"
            )
        self.add_check(f"exporter:{name}", self._exporter_check(name, read))

    def _exporter_check(self, name: str, read: Callable[[], Any]) -> Callable[[], tuple[str, str]]:
        def exporter_queue() -> tuple[str, str]:
            dropped = float(read())
            before = self._dropped_seen.get(name)
            self._dropped_seen[name] = dropped
            if before is not None and dropped > before:
                return "degraded", f"dropping spans: {dropped - before:g} since last check"
            return "healthy", f"{dropped:g} spans dropped in total"

        return exporter_queue

    # -- running --------------------------------------------------------------------------
    async def _run_one(self, name: str, check: _Check) -> CheckResult:
        t0 = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(check.fn):
                pending: Awaitable[Any] = check.fn()
            else:
                pending = in_daemon_thread(check.fn)
            outcome = await asyncio.wait_for(pending, check.timeout_s)
            if inspect.isawaitable(outcome):
                outcome = await asyncio.wait_for(outcome, check.timeout_s)
        except TimeoutError:
            ms = (time.perf_counter() - t0) * 1000.0
            return CheckResult(name, "unhealthy", ms, f"timed out after {check.timeout_s:g}s")
        except Exception as exc:
            ms = (time.perf_counter() - t0) * 1000.0
            return CheckResult(name, "unhealthy", ms, f"{type(exc).__name__}: {exc}")
        return _result(name, outcome, (time.perf_counter() - t0) * 1000.0)

    async def _run(self, only_liveness: bool) -> HealthStatus:
        chosen = [(n, c) for n, c in self._checks.items() if c.liveness or not only_liveness]
        results = await asyncio.gather(*(self._run_one(n, c) for n, c in chosen))
        overall: Status = "healthy"
        for r in results:
            if _RANK[r.status] > _RANK[overall]:
                overall = r.status
        return HealthStatus(overall, {r.name: r for r in results})

    async def check(self) -> HealthStatus:
        """Run every check concurrently; the overall status is the worst one."""
        return await self._run(only_liveness=False)

    async def readiness(self) -> HealthStatus:
        """Kubernetes readiness: every check (not ready while a dependency is down)."""
        return await self._run(only_liveness=False)

    async def liveness(self) -> HealthStatus:
        """Kubernetes liveness: only the checks registered with ``liveness=True``
        (a provider outage must not get the pod restarted)."""
        return await self._run(only_liveness=True)

    def check_sync(self) -> HealthStatus:
        """:meth:`check` for sync code, also when called on a thread whose event loop is
        running (a sync function called from async code): the checks then run on a loop
        of their own in a worker thread, as a second loop cannot run on this one."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.check())
        result: list[HealthStatus] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                result.append(asyncio.run(self.check()))
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=run, name="aiscope-health-check-sync", daemon=True)
        worker.start()
        worker.join()
        if failure:
            raise failure[0]
        return result[0]


__all__ = ["STATUSES", "CheckResult", "HealthChecker", "HealthStatus", "in_daemon_thread"]
