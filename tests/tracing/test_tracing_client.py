"""A chat call through AiClient, exported over OTLP/HTTP to a loopback receiver and
decoded with opentelemetry-proto: exact GenAI attributes, the call span as parent
of the pipeline stage spans, and the W3C traceparent sent to the provider."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from aiscope import AiClient, Tracer
from aiscope.client.errors import AiClientError
from aiscope.resilience import RetryPolicy
from aiscope.testing import MockProvider, OtlpReceiver, ReceivedSpan
from aiscope.tracing import attributes as A

STAGES = {"request_compilation", "http_transport", "pipeline_processing", "event_mapping"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    with MockProvider() as m:
        yield m


def _client(mock: MockProvider, tracer: Tracer, provider: str = "openai") -> AiClient:
    model = {"openai": "gpt-4o", "anthropic": "claude-3-5-sonnet-latest"}[provider]
    return (
        AiClient.builder()
        .model(f"{provider}/{model}")
        .api_key("sk-test")
        .base_url(mock.base_url(provider))
        .tracer(tracer)
        .retry(RetryPolicy(max_retries=1, base_delay_s=0.01))
        .build()
    )


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def test_chat_call_span_tree_and_attributes(receiver: OtlpReceiver, mock: MockProvider) -> None:
    tracer = Tracer(service_name="client-test", endpoint=receiver.endpoint)
    client = _client(mock, tracer)
    with tracer.span("request_handler"):
        response, stats = (
            client.chat()
            .system("be brief")
            .user("Hello there")
            .temperature(0.3)
            .top_p(0.9)
            .max_tokens(64)
            .stop("END")
            .tags(feature="greeting", team="growth")
            .execute_with_stats_sync()
        )
    tracer.shutdown(timeout=5)
    client.close()
    spans = receiver.spans()
    (handler,) = [s for s in spans if s.name == "request_handler"]
    (call,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert call.parent_span_id == handler.span_id and call.trace_id == handler.trace_id
    assert call.kind == 3  # CLIENT
    stages = _children(spans, call)
    assert {s.name for s in stages} == STAGES
    for s in stages:
        assert call.start_ns <= s.start_ns <= s.end_ns <= call.end_ns
    sent = mock.last_request
    assert sent is not None
    (rec,) = [r for r in mock.requests]
    expected = {
        A.OPERATION_NAME: "chat",
        A.PROVIDER_NAME: "openai",
        A.REQUEST_MODEL: "gpt-4o",
        A.REQUEST_MAX_TOKENS: 64,
        A.REQUEST_TEMPERATURE: 0.3,
        A.REQUEST_TOP_P: 0.9,
        A.REQUEST_STOP_SEQUENCES: ["END"],
        A.REQUEST_STREAM: False,
        A.RESPONSE_MODEL: response.model,
        A.RESPONSE_ID: response.id,
        A.UPSTREAM_REQUEST_ID: stats.upstream_request_id,
        A.RESPONSE_FINISH_REASONS: [response.finish_reason],
        A.USAGE_INPUT_TOKENS: stats.prompt_tokens,
        A.USAGE_OUTPUT_TOKENS: stats.completion_tokens,
        A.SERVER_ADDRESS: "127.0.0.1",
        A.SERVER_PORT: mock.port,
        A.REQUEST_ID: stats.request_id,
        A.COST_USD: stats.cost_usd,
        A.COST_STATUS: "ok",
        "aiscope.tag.feature": "greeting",
        "aiscope.tag.team": "growth",
    }
    assert call.attributes == expected
    assert rec.usage is not None and stats.prompt_tokens == rec.usage.input_tokens
    # The provider received the trace context of this call.
    traceparent = sent.headers["traceparent"]
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert (version, trace_id) == ("00", call.trace_id)
    assert int(flags, 16) & 1  # sampled
    (transport,) = [s for s in stages if s.name == "http_transport"]
    assert parent_id == transport.span_id


def test_streamed_call_has_time_to_first_chunk(receiver: OtlpReceiver, mock: MockProvider) -> None:
    tracer = Tracer(service_name="client-test", endpoint=receiver.endpoint)
    client = _client(mock, tracer, "anthropic")
    events = list(client.chat().user("Stream please").stream_sync())
    tracer.shutdown(timeout=5)
    spans = receiver.spans()
    (call,) = [s for s in spans if s.name == "chat claude-3-5-sonnet-latest"]
    a = call.attributes
    assert a[A.PROVIDER_NAME] == "anthropic" and a[A.REQUEST_STREAM] is True
    assert 0 < a[A.RESPONSE_TIME_TO_FIRST_CHUNK] <= (call.end_ns - call.start_ns) / 1e9
    assert a[A.USAGE_OUTPUT_TOKENS] == events[-1].stats.completion_tokens
    assert "http_transport" in {s.name for s in _children(spans, call)}
    assert mock.last_request is not None
    assert mock.last_request.headers["traceparent"].split("-")[1] == call.trace_id


def test_failed_call_span_has_error_type(receiver: OtlpReceiver, mock: MockProvider) -> None:
    tracer = Tracer(service_name="client-test", endpoint=receiver.endpoint)
    client = _client(mock, tracer)
    mock.fail_next(400, times=1)
    with pytest.raises(AiClientError) as info:
        client.chat().user("bad").execute_sync()
    tracer.shutdown(timeout=5)
    (call,) = [s for s in receiver.spans() if s.name == "chat gpt-4o"]
    assert call.attributes[A.ERROR_TYPE] == type(info.value).__name__
    assert call.status_code == 2  # ERROR


def test_retries_are_children_of_one_call_span(receiver: OtlpReceiver, mock: MockProvider) -> None:
    tracer = Tracer(service_name="client-test", endpoint=receiver.endpoint)
    client = _client(mock, tracer)
    mock.fail_next(500, times=1)
    client.chat().user("retry").execute_sync()
    tracer.shutdown(timeout=5)
    spans = receiver.spans()
    (call,) = [s for s in spans if s.name == "chat gpt-4o"]
    transports = [s for s in _children(spans, call) if s.name == "http_transport"]
    assert len(transports) == 2 and call.attributes[A.RETRY_COUNT] == 1
    parents = {r.headers["traceparent"].split("-")[2] for r in mock.requests}
    assert parents == {t.span_id for t in transports}


def test_content_capture_through_the_client(receiver: OtlpReceiver, mock: MockProvider) -> None:
    tracer = Tracer(service_name="client-test", endpoint=receiver.endpoint, capture_content=True)
    client = _client(mock, tracer)
    response = client.chat().system("be brief").user("Hello").execute_sync()
    tracer.shutdown(timeout=5)
    (call,) = [s for s in receiver.spans() if s.name == "chat gpt-4o"]
    assert json.loads(call.attributes[A.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello"}]}
    ]
    assert json.loads(call.attributes[A.SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "be brief"}
    ]
    (out,) = json.loads(call.attributes[A.OUTPUT_MESSAGES])
    assert out["parts"] == [{"type": "text", "content": response.text}]


def test_errored_call_reports_no_usage_and_says_why_it_has_no_cost(
    receiver: OtlpReceiver, mock: MockProvider
) -> None:
    from aiscope import CostTracker, InMemoryExporter, MetricsCollector
    from aiscope.record import CallRecord
    from aiscope.scope import Scope, use_scope

    kept: list[CallRecord] = []

    class Keep:
        def on_record(self, record: CallRecord) -> None:
            kept.append(record)

    mem = InMemoryExporter()
    tracer = Tracer(service_name="client-test", exporter=mem, batch=False)
    costs, metrics = CostTracker(), MetricsCollector()
    scope = Scope(tracer=tracer, cost_tracker=costs, metrics=metrics, sinks=[Keep()])
    client = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("sk-test")
        .base_url(mock.base_url("openai"))
        .build()
    )
    mock.fail_next(400, times=1)
    with use_scope(scope), pytest.raises(AiClientError):
        client.chat().user("bad").execute_sync()
    (record,) = kept
    assert record.status == "error" and not record.has_usage
    assert record.cost_usd is None and record.cost_status == "no_usage"
    (span,) = [s for s in mem.spans() if s.name == "chat gpt-4o"]
    attrs = dict(span.attributes or {})
    # no usage is not zero usage: the token counts and the cost are absent, not 0
    assert A.USAGE_INPUT_TOKENS not in attrs and A.USAGE_OUTPUT_TOKENS not in attrs
    assert A.COST_USD not in attrs and attrs[A.COST_STATUS] == "no_usage"
    # an errored call without usage is not an unpriced one (no price is missing)
    report = costs.get_report()
    assert report.error_count == 1 and report.unpriced_calls == 0
    assert "no_usage" not in metrics.export_prometheus()
    # the call that works after it is priced as usual
    with use_scope(scope):
        client.chat().user("good").execute_sync()
    assert kept[-1].has_usage and kept[-1].cost_status == "ok" and kept[-1].cost_usd
    tracer.shutdown(timeout=5)
