"""AiClient over httpx2's in-process MockTransport: the pipeline without a network."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest

import aiscope
from aiscope import CostTracker, MetricsCollector
from aiscope.client import AiClient, ConfigurationError, RateLimitError, StreamProtocolError

Handler = Callable[[httpx2.Request], httpx2.Response]

OPENAI_OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there"},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def _client(handler: Handler, **kw: object) -> AiClient:
    b = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("sk-test-123456789")
        .transport(httpx2.MockTransport(handler))
        .metrics(kw.pop("metrics", MetricsCollector()))  # type: ignore[arg-type]
        .cost_tracker(kw.pop("cost_tracker", CostTracker()))  # type: ignore[arg-type]
    )
    for k, v in kw.items():
        getattr(b, k)(v)
    return b.build()


def test_sync_execute_with_stats_and_request_shape() -> None:
    seen: list[httpx2.Request] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        seen.append(req)
        return httpx2.Response(200, json=OPENAI_OK, headers={"x-request-id": "req_abc"})

    client = _client(handler)
    resp, stats = (
        client.chat()
        .system("be brief")
        .user("Hello")
        .temperature(0.2)
        .max_tokens(50)
        .tags(feature="search", team="growth")
        .execute_with_stats_sync()
    )
    assert resp.text == "Hi there" and resp.finish_reason == "stop"
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (1000, 500, 1500)
    assert (
        stats.cached_tokens == 800
        and stats.model == "gpt-4o-2024-08-06"
        and stats.provider == "openai"
    )
    assert stats.cost_usd == 0.0065 and stats.upstream_request_id == "req_abc"
    body = json.loads(seen[0].content)
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["max_completion_tokens"] == 50 and body["temperature"] == 0.2
    assert seen[0].headers["authorization"] == "Bearer sk-test-123456789"
    report = client.scope.cost_tracker.get_report()  # type: ignore[union-attr]
    assert report.by_feature == {"search": 0.0065}


async def test_async_seed_shape() -> None:
    client = await _client(lambda r: httpx2.Response(200, json=OPENAI_OK))
    _response, stats = await client.chat().user("Hello").execute_with_stats()
    assert stats.latency_ms > 0 and stats.request_id and stats.retry_count == 0
    await client.aclose()


def test_429_with_retry_after_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", lambda s: slept.append(s))

    def handler(req: httpx2.Request) -> httpx2.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx2.Response(
                429,
                headers={"retry-after": "3"},
                json={
                    "error": {
                        "message": "slow down",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
            )
        return httpx2.Response(200, json=OPENAI_OK)

    client = _client(handler)
    _, stats = client.chat().user("hi").execute_with_stats_sync()
    assert stats.retry_count == 1 and slept and slept[0] >= 3.0
    assert "ai_lib_retries_total{" in client.scope.metrics.export_prometheus()  # type: ignore[union-attr]


def test_429_exhausted_raises_rate_limit_error_and_records_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    client = _client(
        lambda r: httpx2.Response(
            429, json={"error": {"message": "no", "code": "rate_limit_exceeded"}}
        )
    )
    with pytest.raises(RateLimitError) as info:
        client.chat().user("hi").execute_sync()
    assert info.value.status == 429
    report = client.scope.cost_tracker.get_report()  # type: ignore[union-attr]
    assert report.error_count == 1
    assert 'error_type="RateLimitError"' in client.scope.metrics.export_prometheus()  # type: ignore[union-attr]


def test_stream_usage_from_final_chunk() -> None:
    frames = [
        {
            "id": "c1",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
            "usage": None,
        },
        {
            "id": "c1",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": "Hel"}}],
            "usage": None,
        },
        {
            "id": "c1",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
            "usage": None,
        },
        {
            "id": "c1",
            "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        },
    ]
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"

    def handler(req: httpx2.Request) -> httpx2.Response:
        assert json.loads(req.content)["stream_options"] == {"include_usage": True}
        return httpx2.Response(
            200, content=body.encode(), headers={"content-type": "text/event-stream"}
        )

    client = _client(handler)
    events = list(client.chat().user("hi").stream_sync())
    kinds = [e.kind for e in events]
    assert kinds.count("text_delta") == 2 and kinds[-1] == "end"
    end = events[-1]
    assert end.response is not None and end.response.text == "Hello"
    assert (
        end.stats is not None and end.stats.prompt_tokens == 12 and end.stats.completion_tokens == 2
    )
    assert end.stats.time_to_first_token_ms is not None and not end.stats.usage_estimated


def test_malformed_frame_raises_and_records() -> None:
    body = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {not json\n\n'
    client = _client(
        lambda r: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    with pytest.raises(StreamProtocolError):
        list(client.chat().user("hi").stream_sync())
    assert client.scope.cost_tracker.get_report().error_count == 1  # type: ignore[union-attr]


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        AiClient.from_model("openai/gpt-4o")
    with pytest.raises(ConfigurationError, match="provider/model"):
        AiClient.from_model("gpt-4o")
    with pytest.raises(ConfigurationError, match="unknown provider"):
        AiClient.from_model("nope/x", api_key="k")


def test_budget_refusal_sends_no_request() -> None:
    sent: list[httpx2.Request] = []
    tracker = CostTracker(budget_usd=0.001)

    def handler(req: httpx2.Request) -> httpx2.Response:
        sent.append(req)
        return httpx2.Response(200, json=OPENAI_OK)

    client = _client(handler, cost_tracker=tracker)
    with pytest.raises(aiscope.BudgetExceededError):
        client.chat().user("hi").max_tokens(1000).execute_sync()
    assert sent == []
