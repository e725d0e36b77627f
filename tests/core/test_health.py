"""HealthChecker: built-in and custom checks, per-check timeouts, probes. Providers are
the mock provider over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

import aiscope
from aiscope import CheckResult, HealthChecker
from aiscope.resilience import CircuitBreaker
from aiscope.testing import MockProvider


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    with MockProvider(api_key="k") as m:
        yield m


async def test_provider_check_reaches_the_manifest_health_path(mock: MockProvider) -> None:
    client = aiscope.AiClient("openai/gpt-4o", api_key="k", base_url=mock.base_url("openai"))
    health = HealthChecker(clients=[client])
    status = await health.check()
    assert status.is_healthy, status.details
    assert status.details["provider:openai"]["status"] == "healthy"
    assert status.details["circuit:openai"]["status"] == "healthy"
    assert any(r.path.endswith("/models") for r in mock.requests)
    # a wrong key: the provider answers 401, the check says so
    bad = aiscope.AiClient("openai/gpt-4o", api_key="wrong", base_url=mock.base_url("openai"))
    status = await HealthChecker(clients=[bad]).check()
    assert not status.is_healthy
    assert "401" in status.details["provider:openai"]["message"]


async def test_provider_down_is_unhealthy_but_liveness_is_not_affected() -> None:
    with MockProvider(api_key="k") as m:
        url = m.base_url("anthropic")
    client = aiscope.AiClient("anthropic/claude-x", api_key="k", base_url=url)  # nothing there
    health = HealthChecker(clients=[client], timeout_s=1.0)
    ready = await health.readiness()
    assert ready.status == "unhealthy" and not ready.is_healthy
    assert ready.checks["provider:anthropic"].status == "unhealthy"
    live = await health.liveness()
    assert live.is_healthy and "provider:anthropic" not in live.checks


async def test_a_hung_check_times_out_alone() -> None:
    release = threading.Event()
    health = HealthChecker()
    health.add_check("hung_sync", lambda: release.wait(30), timeout_s=0.3)

    async def hung_async() -> bool:
        await asyncio.sleep(30)
        return True

    health.add_check("hung_async", hung_async, timeout_s=0.3)
    health.add_check("fine", lambda: ("healthy", "all good"))
    t0 = time.perf_counter()
    status = await health.check()
    elapsed = time.perf_counter() - t0
    release.set()
    assert elapsed < 2.0
    assert status.checks["hung_sync"].status == "unhealthy"
    assert "timed out after 0.3s" in status.checks["hung_async"].message
    assert status.checks["fine"] == CheckResult(
        "fine", "healthy", status.checks["fine"].latency_ms, "all good"
    )
    assert status.status == "unhealthy"


async def test_custom_check_outcomes() -> None:
    health = HealthChecker()

    def raises() -> bool:
        raise ConnectionError("redis unreachable")

    health.add_check("db", lambda: True)
    health.add_check("cache", raises)
    health.add_check("queue", lambda: "degraded")
    health.add_check("weird", lambda: 42)
    status = await health.check()
    assert status.checks["db"].status == "healthy"
    assert status.checks["cache"].message == "ConnectionError: redis unreachable"
    assert status.checks["queue"].status == "degraded"
    assert (
        status.checks["weird"].status == "unhealthy"
        and "expected a bool" in status.checks["weird"].message
    )
    assert all(r.latency_ms >= 0 for r in status.checks.values())
    with pytest.raises(ValueError, match="timeout_s"):
        health.add_check("x", lambda: True, timeout_s=0)
    with pytest.raises(TypeError, match="must be callable"):
        health.add_check("x", 3)  # type: ignore[arg-type]


async def test_circuit_breaker_states() -> None:
    breaker = CircuitBreaker("openai", failure_threshold=1, recovery_timeout_s=60)
    health = HealthChecker(breakers=[breaker])
    assert (await health.check()).checks["circuit:openai"].status == "healthy"
    breaker.record_failure()
    status = await health.check()
    assert status.checks["circuit:openai"].status == "unhealthy"
    assert "circuit open" in status.checks["circuit:openai"].message


async def test_exporter_dropping_spans_is_degraded() -> None:
    class Exporter:
        name = "otlp"

        def __init__(self) -> None:
            self.dropped_spans = 0

    exp = Exporter()
    health = HealthChecker(exporters=[exp, type("Q", (), {"dropped_spans": lambda self: 0})()])
    assert (await health.check()).checks["exporter:otlp"].status == "healthy"
    exp.dropped_spans = 12
    status = await health.check()
    assert status.checks["exporter:otlp"].status == "degraded"
    assert "12" in status.checks["exporter:otlp"].message
    assert status.checks["exporter:Q"].status == "healthy"
    dropped = [0]

    def otlp_dropped() -> int:
        return dropped[0]

    by_function = HealthChecker(exporters=[otlp_dropped])
    assert (await by_function.check()).checks["exporter:otlp_dropped"].status == "healthy"
    dropped[0] = 3
    assert (await by_function.check()).checks["exporter:otlp_dropped"].status == "degraded"
    assert (await health.check()).checks["exporter:otlp"].status == "healthy"  # stopped dropping
    with pytest.raises(TypeError, match=r"exporters\[0\] must have a dropped_spans count"):
        HealthChecker(exporters=[object()])


async def test_budget_state() -> None:
    tracker = aiscope.CostTracker(budget_usd=1.0, alert_threshold=0.5)
    health = HealthChecker(cost_tracker=tracker)
    assert (await health.check()).checks["budget"].status == "healthy"
    tracker.record("openai", "gpt-4o", 0, 0, 0.6)
    assert (await health.check()).checks["budget"].status == "degraded"
    tracker.record("openai", "gpt-4o", 0, 0, 0.5)
    status = await health.check()
    assert status.checks["budget"].status == "unhealthy"
    assert "$1.1000 of $1.00" in status.checks["budget"].message


def test_sink_errors_degrade_and_sync_api() -> None:
    class Broken:
        def on_record(self, record: object) -> None:
            raise RuntimeError("nope")

    scope = aiscope.Scope(sinks=[Broken()])
    aiscope.record_call("gpt-4o", "openai", scope=scope)
    status = HealthChecker(scope=scope).check_sync()
    assert status.checks["sinks"].status == "degraded" and status.is_healthy
    assert status.as_dict()["checks"]["sinks"]["message"].startswith(
        "sink errors so far (Broken: 1)"
    )


def test_unknown_provider_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="providers: unknown provider 'nope'"):
        HealthChecker(providers=["nope"])


def test_fastapi_health_endpoint_serves_the_checker() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aiscope.integrations.fastapi import instrument_app

    breaker = CircuitBreaker("openai", failure_threshold=1, recovery_timeout_s=60)
    checker = HealthChecker(breakers=[breaker], scope=aiscope.Scope())
    app = FastAPI()
    instrument_app(app, scope=aiscope.Scope(), health=checker.check_sync)
    http = TestClient(app)
    ok = http.get("/health")
    assert ok.status_code == 200, ok.text
    assert ok.json()["checks"]["circuit:openai"]["status"] == "healthy"
    breaker.record_failure()
    down = http.get("/health")
    assert down.status_code == 503
    assert down.json()["status"] == "unhealthy" and down.json()["is_healthy"] is False


async def test_the_tracer_is_an_exporter_to_check() -> None:
    tracer = aiscope.Tracer(service_name="health-test", exporter=aiscope.InMemoryExporter())
    try:
        status = await HealthChecker(exporters=[tracer]).check()
        check = status.checks["exporter:Tracer"]
        assert check.status == "healthy" and check.message == "0 spans dropped in total"
    finally:
        tracer.shutdown(timeout=1)


# -- Kubernetes probes over the FastAPI integration --------------------------------------
def probe_app(health: object, **kw: object) -> object:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aiscope.integrations.fastapi import instrument_app

    app = FastAPI()
    instrument_app(app, scope=aiscope.Scope(), health=health, **kw)  # type: ignore[arg-type]
    return TestClient(app)


def test_an_async_readiness_function_is_awaited_and_its_failing_checks_named_in_a_503() -> None:
    breaker = CircuitBreaker("openai", failure_threshold=1, recovery_timeout_s=60)
    checker = HealthChecker(breakers=[breaker], scope=aiscope.Scope())
    http = probe_app(checker.readiness)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        ok = http.get("/health")  # type: ignore[attr-defined]
        assert ok.status_code == 200, ok.text
        assert ok.json()["checks"]["circuit:openai"]["status"] == "healthy"
        breaker.record_failure()
        down = http.get("/readyz")  # type: ignore[attr-defined]
    assert down.status_code == 503
    assert down.json()["failing"] == ["circuit:openai"]
    assert down.json()["checks"]["circuit:openai"]["message"].startswith("circuit open")


def test_livez_runs_only_liveness_checks_and_readyz_every_check() -> None:
    with MockProvider(api_key="k") as mock:
        client = aiscope.AiClient("openai/gpt-4o", api_key="k", base_url=mock.base_url("openai"))
    # the provider is gone now: its real HTTP check is refused
    checker = HealthChecker(clients=[client], scope=aiscope.Scope(), timeout_s=2.0)

    async def db() -> bool:
        await asyncio.sleep(0)
        return False

    checker.add_check("db", db)
    checker.add_check("event_loop", lambda: True, liveness=True)
    http = probe_app(checker)
    live = http.get("/livez")  # type: ignore[attr-defined]
    assert live.status_code == 200, live.text
    assert set(live.json()["checks"]) == {"sinks", "event_loop"}
    ready = http.get("/readyz")  # type: ignore[attr-defined]
    assert ready.status_code == 503
    assert sorted(ready.json()["failing"]) == ["db", "provider:openai"]
    assert ready.json()["checks"]["circuit:openai"]["status"] == "healthy"
    assert http.get("/health").status_code == 503  # type: ignore[attr-defined]


def test_a_hung_async_check_times_out_on_its_own_and_readyz_names_it() -> None:
    checker = HealthChecker(scope=aiscope.Scope())

    async def vector_db() -> bool:
        await asyncio.sleep(30)
        return True

    checker.add_check("vector_db", vector_db, timeout_s=0.2)
    http = probe_app(checker)
    t0 = time.perf_counter()
    r = http.get("/readyz")  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    assert r.status_code == 503
    assert r.json()["failing"] == ["vector_db"]
    assert r.json()["checks"]["vector_db"]["message"] == "timed out after 0.2s"
    assert r.json()["checks"]["budget"]["status"] == "healthy"
    assert elapsed < 5
    assert http.get("/livez").status_code == 200  # type: ignore[attr-defined]


def test_a_hung_or_failing_health_function_answers_503_naming_it() -> None:
    release = threading.Event()

    def stuck() -> dict[str, str]:
        release.wait(30)
        return {"status": "ok"}

    t0 = time.perf_counter()
    try:
        r = probe_app(stuck, health_timeout_s=0.2).get("/readyz")  # type: ignore[attr-defined]
    finally:
        release.set()
    assert time.perf_counter() - t0 < 5
    assert r.status_code == 503
    assert r.json() == {
        "status": "unhealthy",
        "failing": ["health"],
        "message": "the health check timed out after 0.2s",
    }

    def broken() -> dict[str, str]:
        raise ConnectionError("database refused")

    r = probe_app(broken).get("/health")  # type: ignore[attr-defined]
    assert (r.status_code, r.json()["message"]) == (503, "ConnectionError: database refused")
    r = probe_app(lambda: "up").get("/health")  # type: ignore[attr-defined]
    assert r.status_code == 500
    assert "must return a mapping with a status" in r.json()["message"]


def test_default_probes_check_the_scope() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aiscope.integrations.fastapi import instrument_app

    tracker = aiscope.CostTracker(budget_usd=0.001)
    app = FastAPI()
    instrument_app(app, scope=aiscope.Scope(cost_tracker=tracker))
    http = TestClient(app)
    assert http.get("/readyz").status_code == 200
    tracker.record("openai", "gpt-4o", 100_000, 100_000, 5.0)
    r = http.get("/readyz")
    assert (r.status_code, r.json()["failing"]) == (503, ["budget"])
    assert http.get("/livez").status_code == 200  # spending does not restart the pod


async def test_check_sync_works_when_called_from_async_code() -> None:
    checker = HealthChecker(scope=aiscope.Scope())
    status = checker.check_sync()  # on a thread whose event loop is running
    assert status.status == "healthy" and status.failing == []


def test_bad_probe_arguments() -> None:
    with pytest.raises(ValueError, match="health_timeout_s must be a number of seconds > 0"):
        probe_app(None, health_timeout_s=0)
    with pytest.raises(TypeError, match="health must be a HealthChecker or callable"):
        probe_app("up")
