"""Every shipped provider manifest against the mock provider speaking its wire format,
over real HTTP on loopback: non-streaming and streaming, usage and cost as sent."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref

import pytest
from prometheus_client.parser import text_string_to_metric_families

import aiscope
from aiscope import CostTracker, MetricsCollector, Pricing
from aiscope.client import (
    AiClient,
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StreamProtocolError,
)
from aiscope.resilience import CircuitBreaker, CircuitOpenError, CircuitState, RetryPolicy
from aiscope.testing import MockProvider

# provider manifest id, model, the mock's base path key
PROVIDERS = [
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("deepseek", "deepseek-chat"),
    ("groq", "llama-3.3-70b-versatile"),
    ("mistral", "mistral-large-latest"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ("openrouter", "openai/gpt-4o"),
    ("ollama", "llama3.2"),
    ("vllm", "meta-llama/Llama-3.1-8B-Instruct"),
]
# Priced for the test so that unknown open models still get an exact cost check.
OVERRIDES = {
    "ollama/llama3.2": {"input_mtok": 0.1, "output_mtok": 0.2},
    "vllm/meta-llama/llama-3.1-8b-instruct": {"input_mtok": 0.1, "output_mtok": 0.2},
}


@pytest.fixture(autouse=True)
def _fresh(mock: MockProvider) -> None:
    mock.reset()


def _client(mock: MockProvider, provider: str, model: str, **kw: object) -> AiClient:
    tracker = CostTracker(pricing=Pricing(OVERRIDES))
    b = (
        AiClient.builder()
        .model(f"{provider}/{model}")
        .api_key("test-key-123456")
        .base_url(mock.base_url(provider))
        .metrics(MetricsCollector())
        .cost_tracker(tracker)
        .retry(RetryPolicy(max_retries=2, base_delay_s=0.001, max_delay_s=0.01))
    )
    for k, v in kw.items():
        getattr(b, k)(v)
    return b.build()


def _expected_cost(provider: str, model: str, usage: aiscope.Usage) -> float | None:
    client_provider = {"gemini": "google"}.get(provider, provider)
    return Pricing(OVERRIDES).cost(client_provider, model, usage)[0]


@pytest.mark.parametrize(("provider", "model"), PROVIDERS)
def test_non_streaming(mock: MockProvider, provider: str, model: str) -> None:
    mock.behave(cache_read_tokens=3, reasoning_tokens=2)
    client = _client(mock, provider, model)
    response, stats = (
        client.chat().system("Be brief.").user("What is observability?").execute_with_stats_sync()
    )
    sent = mock.last_request
    assert sent is not None and sent.usage is not None and sent.status == 200
    assert response.text == sent.reply_text
    assert (stats.prompt_tokens, stats.completion_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )
    assert stats.cached_tokens == sent.usage.cache_read_tokens
    # Anthropic's wire usage has no reasoning field (thinking is inside output_tokens).
    assert stats.reasoning_tokens == (0 if provider == "anthropic" else sent.usage.reasoning_tokens)
    assert not stats.usage_estimated
    assert stats.cost_usd == _expected_cost(provider, model, sent.usage)
    assert stats.cost_usd is not None and stats.cost_usd > 0
    assert stats.latency_ms > 0 and stats.request_id


@pytest.mark.parametrize(("provider", "model"), PROVIDERS)
def test_streaming(mock: MockProvider, provider: str, model: str) -> None:
    if provider == "mistral":
        mock.behave(stream_usage_always=True)  # Mistral sends usage in the last chunk unasked
    client = _client(mock, provider, model)
    events = list(client.chat().user("Tell me about streams").max_tokens(30).stream_sync())
    sent = mock.last_request
    assert sent is not None and sent.stream and sent.usage is not None
    text = "".join(e.text or "" for e in events if e.kind == "text_delta")
    assert text == sent.reply_text
    end = events[-1]
    assert end.kind == "end" and end.stats is not None and end.response is not None
    assert (end.stats.prompt_tokens, end.stats.completion_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )
    assert (
        end.stats.time_to_first_token_ms is not None
        and end.stats.time_to_first_token_ms <= end.stats.latency_ms
    )
    assert end.stats.cost_usd == _expected_cost(provider, model, sent.usage)
    assert not end.stats.usage_estimated


async def test_async_stream_and_seed_snippet(mock: MockProvider) -> None:
    metrics = MetricsCollector()
    client = await (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("k-1234567")
        .base_url(mock.base_url("openai"))
        .metrics(metrics)
        .build()
    )
    _response, stats = await client.chat().user("Hello").execute_with_stats()
    print(f"Model: {stats.model}")
    print(f"Provider: {stats.provider}")
    print(f"Prompt tokens: {stats.prompt_tokens}")
    print(f"Completion tokens: {stats.completion_tokens}")
    print(f"Total tokens: {stats.total_tokens}")
    print(f"Latency: {stats.latency_ms}ms")
    chunks = [ev async for ev in client.chat().user("Hi").stream()]
    assert chunks[-1].kind == "end"
    prometheus_text = metrics.export_prometheus()
    assert (
        'ai_lib_requests_total{feature="",model="gpt-4o",provider="openai",status="ok",team=""} 2.0'
        in prometheus_text
    )
    signals = client.signals_snapshot()
    print(f"Circuit: {signals.circuit_state}")
    print(f"Inflight: {signals.current_inflight}")
    assert str(signals.circuit_state) == "closed" and client.circuit_state() is CircuitState.CLOSED
    assert client.current_inflight() == 0 and signals.recent_requests == 2
    await client.aclose()


def test_inflight_is_visible_while_calls_run(mock: MockProvider) -> None:
    mock.behave(latency_s=0.3)
    client = _client(mock, "openai", "gpt-4o")

    async def main() -> int:
        task = asyncio.gather(*(client.chat().user("x").execute() for _ in range(3)))
        await asyncio.sleep(0.15)
        seen = client.current_inflight()
        await task
        return seen

    assert asyncio.run(main()) == 3
    assert client.current_inflight() == 0


def test_429_retry_after_honoured(mock: MockProvider) -> None:
    mock.rate_limit(times=1, retry_after=0.2)
    client = _client(mock, "openai", "gpt-4o")
    _, stats = client.chat().user("hi").execute_with_stats_sync()
    assert stats.retry_count == 1
    reqs = mock.requests
    assert [r.status for r in reqs] == [429, 200]
    assert reqs[1].received_at - reqs[0].received_at >= 0.2


def test_429_storm_gives_rate_limit_error_record(mock: MockProvider) -> None:
    mock.rate_limit(times=5, retry_after=0.0)
    client = _client(mock, "openai", "gpt-4o")
    with pytest.raises(RateLimitError) as info:
        client.chat().user("hi").execute_sync()
    assert info.value.status == 429
    report = client.scope.cost_tracker.get_report()  # type: ignore[union-attr]
    assert report.error_count == 1 and report.call_count == 1
    text = client.scope.metrics.export_prometheus()  # type: ignore[union-attr]
    assert 'error_type="RateLimitError"' in text and "ai_lib_retries_total{" in text


def _circuit_series(client: AiClient) -> dict[tuple[str, str], float]:
    text = client.scope.metrics.export_prometheus()  # type: ignore[union-attr]
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ai_lib_circuit_state":
            for sample in family.samples:
                out[(sample.labels["provider"], sample.labels["state"])] = sample.value
    return out


def test_a_new_clients_circuit_state_is_exported_closed_before_any_call(
    mock: MockProvider,
) -> None:
    """Issue 12 item 6: the gauge used to appear only at the first transition, so a
    healthy service had an empty "Provider circuit state" panel."""
    client = _client(mock, "openai", "gpt-4o")
    assert _circuit_series(client) == {
        ("openai", "closed"): 1.0,
        ("openai", "half_open"): 0.0,
        ("openai", "open"): 0.0,
    }


def test_circuit_state_series_follow_the_breaker_and_turn_half_open_at_scrape(
    mock: MockProvider,
) -> None:
    clock = [0.0]
    breaker = CircuitBreaker(
        "openai", failure_threshold=2, recovery_timeout_s=10.0, clock=lambda: clock[0]
    )
    client = _client(
        mock, "openai", "gpt-4o", retry=RetryPolicy(max_retries=0), circuit_breaker=breaker
    )
    mock.fail_next(status=500, times=2)
    for _ in range(2):
        with pytest.raises(ServerError):
            client.chat().user("hi").execute_sync()
    states = _circuit_series(client)
    assert states[("openai", "open")] == 1.0 and states[("openai", "closed")] == 0.0
    clock[0] += 10.0  # nobody calls: the scrape itself sees the breaker half-open
    states = _circuit_series(client)
    assert (states[("openai", "half_open")], states[("openai", "open")]) == (1.0, 0.0)


def test_metrics_do_not_keep_a_dropped_clients_breaker_alive(mock: MockProvider) -> None:
    metrics = MetricsCollector()
    client = AiClient(
        "openai/gpt-4o", api_key="test-key-123456", base_url=mock.base_url("openai"),
        metrics=metrics,
    )  # fmt: skip
    gone = weakref.ref(client.breaker)
    del client
    gc.collect()
    assert gone() is None
    assert 'ai_lib_circuit_state{provider="openai",state="closed"} 1.0' in (
        metrics.export_prometheus()
    )  # the last state read stays


def test_anthropic_overloaded_is_typed(mock: MockProvider) -> None:
    mock.overloaded(times=5)
    client = _client(mock, "anthropic", "claude-sonnet-4-5", retry=RetryPolicy(max_retries=0))
    with pytest.raises(OverloadedError):
        client.chat().user("hi").execute_sync()


def test_500_storm_opens_breaker_and_half_open_probe_closes_it(mock: MockProvider) -> None:
    clock = [0.0]
    breaker = CircuitBreaker(
        "openai", failure_threshold=3, recovery_timeout_s=10.0, clock=lambda: clock[0]
    )
    client = _client(
        mock, "openai", "gpt-4o", retry=RetryPolicy(max_retries=0), circuit_breaker=breaker
    )
    mock.fail_next(status=500, times=3)
    for _ in range(3):
        with pytest.raises(ServerError):
            client.chat().user("hi").execute_sync()
    assert client.circuit_state() is CircuitState.OPEN
    n = len(mock.requests)
    with pytest.raises(CircuitOpenError):
        client.chat().user("hi").execute_sync()
    assert len(mock.requests) == n  # refused without a request
    clock[0] += 10.0
    assert client.circuit_state() is CircuitState.HALF_OPEN
    _, stats = client.chat().user("probe").execute_with_stats_sync()
    assert stats.status == "ok" and client.circuit_state() is CircuitState.CLOSED
    text = client.scope.metrics.export_prometheus()  # type: ignore[union-attr]
    name = "ai_lib_circuit_transitions_total"
    assert f'{name}{{from_state="closed",provider="openai",to_state="open"}} 1.0' in text
    assert f'{name}{{from_state="half_open",provider="openai",to_state="closed"}} 1.0' in text
    assert 'error_type="CircuitOpenError"' in text


def test_stream_cut_half_way(mock: MockProvider) -> None:
    mock.drop_stream_after(3)
    client = _client(mock, "anthropic", "claude-sonnet-4-5")
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError):
        for ev in client.chat().user("tell me a long story").stream_sync():
            if ev.kind == "text_delta":
                seen.append(ev.text or "")
    report = client.scope.cost_tracker.get_report()  # type: ignore[union-attr]
    assert report.error_count == 1
    text = client.scope.metrics.export_prometheus()  # type: ignore[union-attr]
    assert 'error_type="StreamInterruptedError"' in text


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_malformed_frame(mock: MockProvider, provider: str) -> None:
    mock.malformed_frame_at(2)
    model = dict(PROVIDERS)[provider]
    client = _client(mock, provider, model)
    with pytest.raises(StreamProtocolError, match="malformed"):
        list(client.chat().user("hello").stream_sync())
    assert 'error_type="StreamProtocolError"' in client.scope.metrics.export_prometheus()  # type: ignore[union-attr]


def test_early_break_records_once(mock: MockProvider) -> None:
    client = _client(mock, "openai", "gpt-4o")
    mock.behave(reply_tokens=200)
    gen = client.chat().user("long").stream_sync()
    for ev in gen:
        if ev.kind == "text_delta":
            break
    gen.close()  # type: ignore[attr-defined]
    report = client.scope.cost_tracker.get_report()  # type: ignore[union-attr]
    assert report.call_count == 1


def test_fallback_to_another_model(mock: MockProvider) -> None:
    mock.fail_next(status=500, times=1)
    client = _client(mock, "openai", "gpt-4o", retry=RetryPolicy(max_retries=0))
    client.fallbacks = [_client(mock, "anthropic", "claude-sonnet-4-5")]
    # the fallback has its own scope; share the primary's so both records land together
    client.fallbacks[0]._scope = client.scope
    response, stats = asyncio.run(client.chat().user("hi").execute_with_stats())
    assert stats.provider == "anthropic" and response.text
    assert client.scope.cost_tracker.get_report().error_count == 1  # type: ignore[union-attr]


def test_tools_roundtrip_openai_and_anthropic(mock: MockProvider) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "w",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    from aiscope.testing import ToolCall as MockToolCall

    mock.behave(tool_call=MockToolCall("get_weather", {"city": "Paris"}))
    for provider in ("openai", "anthropic", "gemini"):
        client = _client(mock, provider, dict(PROVIDERS)[provider])
        response = client.chat().user("weather?").tools([tool]).execute_sync()
        assert [t.name for t in response.tool_calls] == ["get_weather"], provider
        assert json.loads(response.tool_calls[0].arguments) == {"city": "Paris"}
        events = list(client.chat().user("weather?").tools([tool]).stream_sync())
        end = events[-1].response
        assert end is not None and end.tool_calls and end.tool_calls[0].name == "get_weather", (
            provider
        )
        assert json.loads(end.tool_calls[0].arguments) == {"city": "Paris"}


def test_rate_limiter_waits_are_counted(mock: MockProvider) -> None:
    from aiscope.resilience import RateLimiter

    # One request per 0.5 s: far longer than a call takes, even on a loaded machine, so the
    # 2nd and 3rd calls must wait for the bucket.
    limiter = RateLimiter(requests_per_minute=120, request_capacity=1)
    client = _client(mock, "openai", "gpt-4o", circuit_breaker=CircuitBreaker("openai"))
    client.rate_limiter = limiter
    import time

    t0 = time.perf_counter()
    for _ in range(3):
        client.chat().user("hi").execute_sync()
    assert time.perf_counter() - t0 >= 0.9  # the 2nd and 3rd waited ~0.5 s each
    text = client.scope.metrics.export_prometheus()  # type: ignore[union-attr]
    assert 'ai_lib_rate_limit_waits_total{provider="openai"} 2.0' in text
    assert client.signals_snapshot().rate_limiter is not None


def test_rate_limit_default_burst_is_one_second_and_shown_in_signals_snapshot(
    mock: MockProvider,
) -> None:
    # rpm=240: a burst of 4 (one second's worth), then one call every 0.25 s. With a
    # minute's burst (240) all six calls went out at once.
    client = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("test-key-123456")
        .base_url(mock.base_url("openai"))
        .rate_limit(requests_per_minute=240)
        .build()
    )
    limiter = client.signals_snapshot().as_dict()["rate_limiter"]
    assert limiter["request_capacity"] == 4.0 and limiter["available_requests"] == 4.0
    import time

    t0 = time.perf_counter()
    for _ in range(6):
        client.chat().user("hi").execute_sync()
    assert time.perf_counter() - t0 >= 0.45  # the 5th and 6th waited ~0.25 s each
    explicit = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("test-key-123456")
        .base_url(mock.base_url("openai"))
        .rate_limit(requests_per_minute=240, request_capacity=240)
        .build()
    )
    snap = explicit.signals_snapshot().rate_limiter
    assert snap is not None and snap.request_capacity == 240.0


def test_max_inflight_limits_concurrency(mock: MockProvider) -> None:
    mock.behave(latency_s=0.1)
    client = _client(mock, "openai", "gpt-4o", max_inflight=2)

    async def main() -> None:
        await asyncio.gather(*(client.chat().user("x").execute() for _ in range(6)))

    import time

    t0 = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - t0 >= 0.3  # 6 calls, 2 at a time, 0.1 s each
