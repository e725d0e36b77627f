"""Tracer on the OpenTelemetry SDK: custom spans, LLM call spans (GenAI conventions),
sampling, providers, content capture, metrics, console tree, exporters."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from aiscope import (
    CallRecord,
    ConsoleExporter,
    InMemoryExporter,
    LangfuseExporter,
    Scope,
    Tracer,
    Usage,
    llm_call,
    use_scope,
)
from aiscope.tracing import attributes as A
from aiscope.tracing.otlp import resolve


@pytest.fixture
def mem() -> InMemoryExporter:
    return InMemoryExporter()


@pytest.fixture
def tracer(mem: InMemoryExporter) -> Iterator[Tracer]:
    t = Tracer(service_name="test-svc", exporter=mem, resource_attributes={"env": "test"})
    yield t
    t.shutdown(timeout=1)


def _by_name(mem: InMemoryExporter) -> dict[str, object]:
    return {s.name: s for s in mem.spans()}


def test_nested_custom_spans_have_parents_and_attributes(
    tracer: Tracer, mem: InMemoryExporter
) -> None:
    with tracer.span("data_pipeline") as parent:
        with tracer.span("load_documents") as load:
            load.set_attribute("doc_count", 3)
        with tracer.span("save_results"):
            pass
    spans = {s.name: s for s in mem.spans()}
    assert set(spans) == {"data_pipeline", "load_documents", "save_results"}
    root = spans["data_pipeline"]
    assert root.parent is None
    for child in ("load_documents", "save_results"):
        assert spans[child].parent.span_id == root.context.span_id
        assert spans[child].context.trace_id == root.context.trace_id
    assert spans["load_documents"].attributes["doc_count"] == 3
    assert root.resource.attributes["service.name"] == "test-svc"
    assert root.resource.attributes["env"] == "test"
    assert parent.get_span_context().span_id == root.context.span_id


async def test_async_tasks_get_their_own_parents(tracer: Tracer, mem: InMemoryExporter) -> None:
    async def work(i: int) -> None:
        with tracer.span(f"task{i}"):
            await asyncio.sleep(0.01)
            with tracer.span(f"inner{i}"):
                await asyncio.sleep(0.01)

    with tracer.span("root"):
        await asyncio.gather(*(work(i) for i in range(5)))
    spans = {s.name: s for s in mem.spans()}
    root = spans["root"]
    for i in range(5):
        assert spans[f"task{i}"].parent.span_id == root.context.span_id
        assert spans[f"inner{i}"].parent.span_id == spans[f"task{i}"].context.span_id


def test_threads_keep_the_parent_with_bind(tracer: Tracer, mem: InMemoryExporter) -> None:
    def work(i: int) -> None:
        with tracer.span(f"thread{i}"):
            pass

    with tracer.span("root"):
        threads = [threading.Thread(target=tracer.bind(work), args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    spans = {s.name: s for s in mem.spans()}
    for i in range(4):
        assert spans[f"thread{i}"].parent.span_id == spans["root"].context.span_id


def test_exception_in_span_is_recorded_masked_and_reraised(
    tracer: Tracer, mem: InMemoryExporter
) -> None:
    with pytest.raises(RuntimeError), tracer.span("boom"):
        raise RuntimeError("Incorrect API key provided: sk-proj-abcdefghijklmnop1234")
    (span,) = mem.spans("boom")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "RuntimeError"
    (event,) = span.events
    assert event.name == "exception"
    assert "abcdefghijklmnop1234" not in event.attributes["exception.message"]
    assert "abcdefghijklmnop1234" not in (span.status.description or "")


def _record(**changes: object) -> CallRecord:
    base: dict[str, object] = dict(
        model="gpt-4o",
        provider="openai",
        response_model="gpt-4o-2024-08-06",
        upstream_request_id="req-abc",
        response_id="chatcmpl-123",
        latency_s=0.5,
        usage=Usage(
            input_tokens=100,
            output_tokens=50,
            cache_read_tokens=40,
            cache_write_tokens=10,
            reasoning_tokens=20,
        ),
        finish_reasons=("stop",),
        tags={"feature": "search", "user": "u1"},
        server_address="api.openai.com",
        server_port=443,
    )
    base.update(changes)
    return CallRecord(**base)  # type: ignore[arg-type]


def test_call_span_begins_with_the_call_and_carries_genai_attributes(
    tracer: Tracer, mem: InMemoryExporter
) -> None:
    scope = Scope(tracer=tracer)
    pending = scope.begin("gpt-4o", "openai", 10, 100)
    assert pending.span is not None and pending.span.is_recording()
    with tracer.activate(pending.span), tracer.span("http_transport"):
        pass
    record = scope.emit(_record(), pending)
    spans = {s.name: s for s in mem.spans()}
    call = spans["chat gpt-4o"]
    assert call.kind is SpanKind.CLIENT
    assert spans["http_transport"].parent.span_id == call.context.span_id
    attrs = dict(call.attributes)
    assert attrs[A.OPERATION_NAME] == "chat"
    assert attrs[A.PROVIDER_NAME] == "openai"
    assert attrs[A.REQUEST_MODEL] == "gpt-4o"
    assert attrs[A.RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[A.RESPONSE_ID] == "chatcmpl-123"
    assert attrs[A.RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.USAGE_INPUT_TOKENS] == 100
    assert attrs[A.USAGE_OUTPUT_TOKENS] == 50
    assert attrs[A.USAGE_CACHE_READ_INPUT_TOKENS] == 40
    assert attrs[A.USAGE_CACHE_CREATION_INPUT_TOKENS] == 10
    assert attrs[A.USAGE_REASONING_OUTPUT_TOKENS] == 20
    assert attrs[A.SERVER_ADDRESS] == "api.openai.com" and attrs[A.SERVER_PORT] == 443
    assert attrs["aiscope.tag.feature"] == "search"
    assert attrs[A.COST_USD] == pytest.approx(record.cost_usd)
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.trace_id == format(call.context.trace_id, "032x")
    assert record.span_id == format(call.context.span_id, "016x")
    assert A.ERROR_TYPE not in attrs and call.status.status_code is StatusCode.UNSET


def test_error_call_sets_error_type_and_status(tracer: Tracer, mem: InMemoryExporter) -> None:
    scope = Scope(tracer=tracer)
    pending = scope.begin("gpt-4o", "openai")
    scope.emit(_record(status="error", error_type="RateLimitError", usage=Usage()), pending)
    (span,) = mem.spans()
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert span.status.status_code is StatusCode.ERROR


def test_record_without_begin_is_backdated(tracer: Tracer, mem: InMemoryExporter) -> None:
    record = Scope(tracer=tracer).emit(
        _record(model="claude-3-5-sonnet-latest", provider="anthropic", latency_s=2.0)
    )
    (span,) = mem.spans()
    assert span.name == "chat claude-3-5-sonnet-latest"
    assert span.end_time - span.start_time == pytest.approx(2.0e9, rel=1e-6)
    assert span.start_time == pytest.approx(record.start_time * 1e9, abs=1e3)
    assert span.attributes[A.PROVIDER_NAME] == "anthropic"


def test_abandoned_call_ends_its_span(tracer: Tracer, mem: InMemoryExporter) -> None:
    scope = Scope(tracer=tracer)
    pending = scope.begin("gpt-4o", "openai")
    scope.abandon(pending)
    (span,) = mem.spans()
    assert span.attributes[A.ERROR_TYPE] == "abandoned"
    assert span.end_time is not None


def test_llm_call_inside_custom_span_is_its_child(tracer: Tracer, mem: InMemoryExporter) -> None:
    with (
        use_scope(Scope(tracer=tracer)),
        tracer.span("process"),
        llm_call("gpt-4o", provider="openai") as call,
    ):
        call.set_usage(input_tokens=3, output_tokens=4)
    spans = {s.name: s for s in mem.spans()}
    assert spans["chat gpt-4o"].parent.span_id == spans["process"].context.span_id


def test_provider_names_follow_the_conventions() -> None:
    assert A.provider_name("gemini") == "gcp.gemini"
    assert A.provider_name("mistral") == "mistral_ai"
    assert A.provider_name("openai") == "openai"


def test_sampling_ratio_zero_records_nothing_but_calls_still_work(mem: InMemoryExporter) -> None:
    t = Tracer(exporter=mem, sample_ratio=0.0)
    scope = Scope(tracer=t)
    pending = scope.begin("gpt-4o", "openai")
    record = scope.emit(_record(), pending)
    with t.span("x"):
        pass
    assert mem.spans() == [] and record.cost_usd is not None
    t.shutdown(timeout=1)


def test_sampling_ratio_keeps_about_that_share(mem: InMemoryExporter) -> None:
    t = Tracer(exporter=mem, sample_ratio=0.25)
    for _ in range(2000):
        with t.span("s"):
            pass
    assert 350 < len(mem.spans()) < 650
    t.shutdown(timeout=1)


def test_own_provider_leaves_the_global_one_alone(mem: InMemoryExporter) -> None:
    before = trace.get_tracer_provider()
    Tracer(exporter=mem).shutdown(timeout=1)
    assert trace.get_tracer_provider() is before


def test_use_global_provider_needs_an_sdk_provider_for_exporters(mem: InMemoryExporter) -> None:
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("a global SDK provider is already set in this process")
    with pytest.raises(ValueError, match="use_global_provider"):
        Tracer(exporter=mem, use_global_provider=True)
    # Without exporters it simply uses whatever the application set (here the no-op one).
    t = Tracer(use_global_provider=True)
    with t.span("x") as s:
        assert not s.is_recording()


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="service_name"):
        Tracer(service_name="")
    with pytest.raises(ValueError, match="sample_ratio"):
        Tracer(sample_ratio=1.5)
    with pytest.raises(TypeError, match="exporter"):
        Tracer(exporter=[object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="endpoint"):
        Tracer(endpoint="ftp://x")
    with pytest.raises(TypeError, match="capture_content"):
        Tracer(capture_content="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret_key"):
        LangfuseExporter(public_key="pk-lf-1", secret_key="")
    with pytest.raises(ValueError, match="host"):
        LangfuseExporter(public_key="pk-lf-1", secret_key="sk-lf-1", host="cloud.langfuse.com")
    with pytest.raises(TypeError, match="show_attributes"):
        ConsoleExporter(show_attributes="yes")  # type: ignore[arg-type]


def test_endpoint_resolution() -> None:
    assert resolve("http://jaeger:4317") == ("grpc", "http://jaeger:4317")
    assert resolve("grpc://collector:9999") == ("grpc", "http://collector:9999")
    assert resolve("http://jaeger:4318") == ("http", "http://jaeger:4318/v1/traces")
    assert resolve("https://otel.example.com/v1/traces") == (
        "http",
        "https://otel.example.com/v1/traces",
    )
    assert resolve("http://jaeger:4317", "http") == ("http", "http://jaeger:4317/v1/traces")


def test_content_is_off_by_default_and_redacted_when_on() -> None:
    mem = InMemoryExporter()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstu, hello"},
    ]
    for capture in (False, True):
        t = Tracer(exporter=mem, capture_content=capture)
        span = t.start_call("gpt-4o", "openai")
        t.describe_request(span, max_tokens=50, temperature=0.2, messages=messages)
        t.describe_response(span, "hi there", "stop")
        span.end()
    off, on = mem.spans()
    assert off.attributes[A.REQUEST_MAX_TOKENS] == 50
    assert off.attributes[A.REQUEST_TEMPERATURE] == 0.2
    assert A.INPUT_MESSAGES not in off.attributes and A.OUTPUT_MESSAGES not in off.attributes
    inputs = json.loads(on.attributes[A.INPUT_MESSAGES])
    assert inputs[0]["role"] == "user" and "hello" in inputs[0]["parts"][0]["content"]
    assert "abcdefghijklmnopqrstu" not in on.attributes[A.INPUT_MESSAGES]
    assert json.loads(on.attributes[A.SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "be brief"}
    ]
    (out,) = json.loads(on.attributes[A.OUTPUT_MESSAGES])
    assert out == {
        "role": "assistant",
        "parts": [{"type": "text", "content": "hi there"}],
        "finish_reason": "stop",
    }


def test_custom_redaction_hook_can_drop_text(mem: InMemoryExporter) -> None:
    t = Tracer(exporter=mem, capture_content=True, redact=lambda s: None if "x" in s else s.upper())
    span = t.start_call("gpt-4o", "openai")
    t.describe_request(
        span, messages=[{"role": "user", "content": "xx"}, {"role": "user", "content": "ok"}]
    )
    span.end()
    (s,) = mem.spans()
    assert json.loads(s.attributes[A.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "OK"}]}
    ]
    t.shutdown(timeout=1)


def test_genai_metrics_with_recommended_buckets(mem: InMemoryExporter) -> None:
    reader = InMemoryMetricReader()
    t = Tracer(exporter=mem, meter_provider=MeterProvider(metric_readers=[reader]))
    scope = Scope(tracer=t)
    scope.emit(_record(latency_s=0.3), scope.begin("gpt-4o", "openai"))
    scope.emit(_record(streaming=True, time_to_first_token_s=0.05), scope.begin("gpt-4o", "openai"))
    data = reader.get_metrics_data()
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    duration = metrics[A.METRIC_OPERATION_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert tuple(point.explicit_bounds) == A.DURATION_BUCKETS
    assert point.count == 2 and point.sum == pytest.approx(0.8)
    assert point.attributes[A.OPERATION_NAME] == "chat"
    assert point.attributes[A.PROVIDER_NAME] == "openai"
    tokens = metrics[A.METRIC_TOKEN_USAGE]
    assert tokens.unit == "{token}"
    by_type = {p.attributes[A.TOKEN_TYPE]: p for p in tokens.data.data_points}
    assert tuple(by_type["input"].explicit_bounds) == A.TOKEN_USAGE_BUCKETS
    assert by_type["input"].sum == 200 and by_type["output"].sum == 100
    (ttfc,) = metrics[A.METRIC_TIME_TO_FIRST_CHUNK].data.data_points
    assert ttfc.count == 1
    assert "aiscope.tracing.dropped_spans" in metrics
    t.shutdown(timeout=1)


def test_console_exporter_prints_the_seed_shape(mem: InMemoryExporter) -> None:
    out = io.StringIO()
    t = Tracer(service_name="my-ai-app", exporter=ConsoleExporter(show_attributes=True, out=out))
    with t.span("rlm.run") as span:
        span.set_attribute("prompt_tokens", 15)
        span.set_attribute("completion_tokens", 234)
        span.set_attribute("model", "gpt-4o")
        with t.span("embedding.create") as child:
            child.set_attribute("dimensions", 1536)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("[SPAN] rlm.run (") and lines[0].endswith("s)")
    assert lines[1:4] == [
        "  ├─ prompt_tokens: 15",
        "  ├─ completion_tokens: 234",
        "  └─ model: gpt-4o",
    ]
    assert lines[4].startswith("  [SPAN] embedding.create (")
    assert lines[5] == "    └─ dimensions: 1536"
    t.shutdown(timeout=1)


def test_console_exporter_without_attributes() -> None:
    out = io.StringIO()
    t = Tracer(exporter=ConsoleExporter(show_attributes=False, out=out))
    with t.span("a") as s:
        s.set_attribute("k", 1)
    assert out.getvalue().strip().startswith("[SPAN] a (") and "k:" not in out.getvalue()


def test_in_memory_exporter_is_bounded() -> None:
    mem = InMemoryExporter(max_spans=10)
    t = Tracer(exporter=mem)
    for i in range(25):
        with t.span(f"s{i}"):
            pass
    assert [s.name for s in mem.spans()] == [f"s{i}" for i in range(15, 25)]
    mem.clear()
    assert mem.spans() == []
