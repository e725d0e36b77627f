"""FastAPI integration: endpoints, per-request attribution and request spans, through
TestClient (httpx), the real OpenTelemetry SDK and opentelemetry-instrumentation-fastapi."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import aiscope
from aiscope.integrations.fastapi import aiscope_router, instrument_app, route_template
from aiscope.record import CallRecord
from aiscope.scope import Scope
from aiscope.testing import MockProvider
from aiscope.tracing import InMemoryExporter

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Records:
    """A sink that keeps the records it sees."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_record(self, record: CallRecord) -> None:
        self.records.append(record)


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    with MockProvider() as m:
        yield m


@pytest.fixture
def spans() -> Iterator[tuple[aiscope.Tracer, InMemoryExporter]]:
    exporter = InMemoryExporter()
    tracer = aiscope.Tracer(service_name="fastapi-test", exporter=exporter)
    try:
        yield tracer, exporter
    finally:
        tracer.shutdown(timeout=1)


def server_spans(exporter: InMemoryExporter) -> list[ReadableSpan]:
    return [s for s in exporter.spans() if s.kind == SpanKind.SERVER]


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

    api = APIRouter(prefix="/api")
    v2 = APIRouter()

    @api.get("/users/{user_id}/ask")
    def ask(user_id: str) -> dict[str, int]:
        r = sync_llm.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": user_id}]
        )
        return {"tokens": r.usage.total_tokens if r.usage else 0}

    @v2.post("/docs/{doc_id}")
    async def doc(doc_id: int) -> dict[str, str]:
        r = await llm.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": str(doc_id)}]
        )
        return {"text": r.choices[0].message.content or ""}

    api.include_router(v2, prefix="/v2")
    app.include_router(api)
    app.state.route_tags = []

    @app.middleware("http")  # added first, so it runs inside aiscope's middleware
    async def seen_route_tag(request, call_next):  # type: ignore[no-untyped-def]
        app.state.route_tags.append(aiscope.current_tags().get("route"))
        return await call_next(request)

    instrument_app(app, scope=scope, **kw)  # type: ignore[arg-type]
    return app


def test_route_tag_span_metrics_and_costs(
    mock: MockProvider, spans: tuple[aiscope.Tracer, InMemoryExporter]
) -> None:
    tracer, exporter = spans
    records = Records()
    scope = Scope(
        metrics=aiscope.MetricsCollector(),
        cost_tracker=aiscope.CostTracker(budget_usd=10.0),
        tracer=tracer,
        sinks=[records],
    )
    http = TestClient(make_app(mock, scope))
    assert http.post("/items/7/summary").status_code == 200
    assert http.get("/sync").json()["tokens"] > 0
    first, second = records.records
    assert first.tags == {"route": "/items/{item_id}/summary", "feature": "summary"}
    assert second.tags == {"route": "/sync"}
    assert [s.name for s in server_spans(exporter)] == [
        "POST /items/{item_id}/summary",
        "GET /sync",
    ]

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


def test_calls_in_routes_of_an_included_api_router_are_tagged_with_the_full_route_template(
    mock: MockProvider,
) -> None:
    records = Records()
    http = TestClient(make_app(mock, Scope(sinks=[records])))
    assert http.get("/api/users/u-42/ask").status_code == 200
    assert http.post("/api/v2/docs/9").status_code == 200
    assert [r.tags["route"] for r in records.records] == [
        "/api/users/{user_id}/ask",
        "/api/v2/docs/{doc_id}",
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/items/7/summary"),
        ("GET", "/sync"),
        ("GET", "/api/users/u-1/ask"),
        ("POST", "/api/v2/docs/3"),
        ("GET", "/ops/metrics"),
        ("GET", "/ops/costs"),
        ("GET", "/ops/health"),
        ("GET", "/ops/livez"),
        ("GET", "/ops/readyz"),
        ("GET", "/api/v2/docs/3"),  # another method: 405, still its route's template
    ],
)
def test_route_tag_is_the_http_route_of_the_opentelemetry_fastapi_server_span(
    mock: MockProvider,
    spans: tuple[aiscope.Tracer, InMemoryExporter],
    method: str,
    path: str,
) -> None:
    tracer, exporter = spans
    app = make_app(mock, Scope(tracer=tracer, metrics=aiscope.MetricsCollector()), prefix="/ops")
    TestClient(app).request(method, path)
    seen = app.state.route_tags
    (span,) = server_spans(exporter)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
    assert span.attributes is not None
    assert seen == [span.attributes["http.route"]]
    assert span.name == f"{method} {seen[0]}"
    assert "unmatched" not in span.name


def test_span_names_are_the_ones_the_opentelemetry_fastapi_instrumentation_computes(
    mock: MockProvider,
) -> None:
    # aiscope hands the instrumentation a route lookup of its own (cached, shared with
    # the route tag): it must name every request as the instrumentation itself would
    from opentelemetry.instrumentation.fastapi import _get_default_span_details

    from aiscope.integrations.fastapi import _span_details

    app = make_app(mock, Scope(), prefix="/ops")
    sub = FastAPI()
    sub.get("/inner/{n}")(lambda n: {"n": n})
    app.mount("/sub", sub)

    @app.websocket("/ws/{room}")
    async def ws(websocket: WebSocket, room: str) -> None:
        await websocket.close()

    ws_scope = {"type": "websocket", "path": "/ws/7", "app": app, "root_path": ""}
    assert _span_details(dict(ws_scope)) == _get_default_span_details(dict(ws_scope))
    for method, path in [
        ("POST", "/items/7/summary"),
        ("GET", "/items/7/summary"),
        ("GET", "/api/users/u/ask"),
        ("POST", "/api/v2/docs/1"),
        ("PUT", "/api/v2/docs/1"),
        ("GET", "/ops/readyz"),
        ("GET", "/sub/inner/3"),
        ("GET", "/nowhere"),
        ("BREW", "/sync"),
    ]:
        asgi = {"type": "http", "method": method, "path": path, "app": app, "root_path": ""}
        assert _span_details(dict(asgi)) == _get_default_span_details(dict(asgi)), path


def test_a_route_added_after_the_first_request_is_tagged_by_its_template() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/late")
    app.include_router(router)
    instrument_app(app, scope=Scope())
    http = TestClient(app)
    assert http.get("/late/1").status_code == 404

    @router.get("/{n}")
    def late(n: int) -> dict[str, str]:
        return {"route": aiscope.current_tags()["route"]}

    assert http.get("/late/1").json() == {"route": "/late/{n}"}


def test_aiscope_endpoints_under_a_prefix_have_spans_named_by_route(
    mock: MockProvider, spans: tuple[aiscope.Tracer, InMemoryExporter]
) -> None:
    tracer, exporter = spans
    app = make_app(mock, Scope(tracer=tracer, metrics=aiscope.MetricsCollector()), prefix="/ops")
    http = TestClient(app)
    for path in ("/ops/metrics", "/ops/costs", "/ops/health"):
        http.get(path)
    assert [s.name for s in server_spans(exporter)] == [
        "GET /ops/metrics",
        "GET /ops/costs",
        "GET /ops/health",
    ]


def test_request_span_continues_the_incoming_traceparent_and_parents_the_llm_call_span(
    mock: MockProvider, spans: tuple[aiscope.Tracer, InMemoryExporter]
) -> None:
    tracer, exporter = spans
    http = TestClient(make_app(mock, Scope(tracer=tracer)))
    assert http.get("/api/users/u-7/ask", headers={"traceparent": TRACEPARENT}).status_code == 200
    (server,) = server_spans(exporter)
    (call,) = [s for s in exporter.spans() if s.kind == SpanKind.CLIENT]
    assert server.context is not None and call.context is not None
    assert format(server.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent is not None and server.parent.span_id == 0xB7AD6B7169203331
    assert server.parent.is_remote
    assert call.context.trace_id == server.context.trace_id
    assert call.parent is not None and call.parent.span_id == server.context.span_id


def test_request_spans_follow_the_current_scope_configured_after_instrumentation(
    mock: MockProvider, spans: tuple[aiscope.Tracer, InMemoryExporter]
) -> None:
    tracer, exporter = spans
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"route": aiscope.current_tags()["route"]}

    instrument_app(app)  # follows aiscope.current_scope() at each request
    http = TestClient(app)
    assert http.get("/ping").json() == {"route": "/ping"}
    assert exporter.spans() == []  # no Tracer configured yet: no span
    aiscope.configure(tracer=tracer)
    try:
        assert http.get("/ping").status_code == 200
    finally:
        aiscope.configure()
    assert [s.name for s in server_spans(exporter)] == ["GET /ping"]


def test_an_app_already_instrumented_keeps_its_own_opentelemetry_instrumentation(
    spans: tuple[aiscope.Tracer, InMemoryExporter],
) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracer, aiscope_spans = spans
    own = InMemoryExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    app = FastAPI()
    router = APIRouter()

    @router.get("/r/{x}")
    def r(x: str) -> dict[str, str]:
        return {"route": aiscope.current_tags()["route"]}

    app.include_router(router)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    instrument_app(app, scope=Scope(tracer=tracer))
    assert TestClient(app).get("/r/1").json() == {"route": "/r/{x}"}
    assert [s.name for s in own.spans() if s.kind == SpanKind.SERVER] == ["GET /r/{x}"]
    assert server_spans(aiscope_spans) == []


def test_server_spans_can_be_left_out(spans: tuple[aiscope.Tracer, InMemoryExporter]) -> None:
    tracer, exporter = spans
    app = FastAPI()
    instrument_app(app, scope=Scope(tracer=tracer), server_spans=False)
    assert TestClient(app).get("/health").status_code == 200
    assert server_spans(exporter) == []


def test_route_template_of_the_aiscope_servers_own_routes(tmp_path: object) -> None:
    from aiscope.server import Settings, create_app, open_database

    engine = open_database(f"sqlite:///{tmp_path}/aiscope.db")
    try:
        app = create_app(Settings(engine=engine, compact_every_s=None))
        try:
            for method, path, template in [
                ("GET", "/api/health", "/api/health"),
                ("GET", "/api/keys", "/api/keys"),
                ("POST", "/api/keys/12/rotate", "/api/keys/{key_id}/rotate"),
                ("GET", "/api/timeseries", "/api/timeseries"),
                ("GET", "/ui/app.js", "/ui/{name}"),
                ("GET", "/nowhere", "unmatched"),
            ]:
                asgi = {"type": "http", "method": method, "path": path, "app": app}
                assert route_template(asgi) == template, path
        finally:
            app.state.writer.close()
    finally:
        engine.dispose()


def test_pluggable_health_and_missing_sinks(mock: MockProvider) -> None:
    state = {"status": "ok"}
    app = make_app(mock, Scope(), health=lambda: dict(state))
    http = TestClient(app)
    assert http.get("/health").status_code == 200
    state["status"] = "unhealthy"
    r = http.get("/health")
    assert (r.status_code, r.json()) == (503, {"status": "unhealthy", "failing": []})
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
    with pytest.raises(TypeError, match="health must be a HealthChecker or callable"):
        aiscope_router(health="up")  # type: ignore[arg-type]
