"""FastAPI integration: endpoints and per-request attribution, through TestClient (httpx)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import aiscope
from aiscope.integrations.fastapi import aiscope_router, instrument_app
from aiscope.record import CallRecord
from aiscope.scope import Scope
from aiscope.testing import MockProvider


class SpanNames:
    """A tracer-shaped sink that remembers the spans opened and the records seen."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.records: list[CallRecord] = []

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        self.opened.append(name)
        yield

    def on_record(self, record: CallRecord) -> None:
        self.records.append(record)


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    with MockProvider() as m:
        yield m


def make_app(mock: MockProvider, scope: Scope, **kw: object) -> FastAPI:
    app = FastAPI()
    llm = openai.AsyncOpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
    sync_llm = aiscope.wrap(
        openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0), scope=scope
    )
    aiscope.wrap(llm, scope=scope)

    @app.post("/items/{item_id}/summary")
    async def summarise(item_id: int) -> dict[str, str]:
        with aiscope.tags(feature="summary"):
            r = await llm.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"item {item_id}"}]
            )
        return {"text": r.choices[0].message.content or ""}

    @app.get("/sync")
    def sync_call() -> dict[str, int]:
        r = sync_llm.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        return {"tokens": r.usage.total_tokens if r.usage else 0}

    instrument_app(app, scope=scope, **kw)  # type: ignore[arg-type]
    return app


def test_route_tag_span_metrics_and_costs(mock: MockProvider) -> None:
    tracer = SpanNames()
    scope = Scope(
        metrics=aiscope.MetricsCollector(),
        cost_tracker=aiscope.CostTracker(budget_usd=10.0),
        tracer=tracer,
    )
    http = TestClient(make_app(mock, scope))
    assert http.post("/items/7/summary").status_code == 200
    assert http.get("/sync").json()["tokens"] > 0
    first, second = tracer.records
    assert first.tags == {"route": "/items/{item_id}/summary", "feature": "summary"}
    assert second.tags == {"route": "/sync"}
    assert tracer.opened[:2] == ["POST /items/{item_id}/summary", "GET /sync"]

    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'model="gpt-4o"' in metrics.text

    costs = http.get("/costs").json()
    total = (first.cost_usd or 0) + (second.cost_usd or 0)
    assert total > 0
    assert costs["total_cost"] == pytest.approx(total)
    assert costs["remaining"] == pytest.approx(10.0 - total)
    assert costs["by_model"]["gpt-4o"] == pytest.approx(total)
    assert costs["call_count"] == 2

    assert http.get("/health").json() == {"status": "ok", "sink_errors": {}}


def test_pluggable_health_and_missing_sinks(mock: MockProvider) -> None:
    state = {"status": "ok"}
    app = make_app(mock, Scope(), health=lambda: dict(state))
    http = TestClient(app)
    assert http.get("/health").status_code == 200
    state["status"] = "unhealthy"
    r = http.get("/health")
    assert (r.status_code, r.json()) == (503, {"status": "unhealthy"})
    assert http.get("/metrics").status_code == 404
    assert http.get("/costs").status_code == 404


def test_router_under_a_prefix_follows_the_current_scope() -> None:
    app = FastAPI()
    app.include_router(aiscope_router(), prefix="/ops")
    aiscope.configure(cost_tracker=aiscope.CostTracker(budget_usd=5.0))
    try:
        aiscope.record_call("gpt-4o", "openai", input_tokens=1000, output_tokens=100)
        costs = TestClient(app).get("/ops/costs").json()
    finally:
        aiscope.configure()
    assert costs["total_cost"] > 0 and costs["remaining"] < 5.0


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"app must be a fastapi\.FastAPI"):
        instrument_app(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="health must be callable"):
        aiscope_router(health="up")  # type: ignore[arg-type]
