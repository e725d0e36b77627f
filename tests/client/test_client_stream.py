"""AiClient streams, sync and async, over real HTTP to the mock provider: usage from the
final chunk, time to first token, a cut stream, a malformed frame, an early break, a
retry before the first byte, and exactly one record per stream in every case."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from aiscope import CallRecord, CostTracker, MetricsCollector, PendingCall, SinkBase
from aiscope.client import AiClient, StreamInterruptedError, StreamProtocolError
from aiscope.client.streaming import StreamEvent
from aiscope.resilience import CircuitState, RetryPolicy
from aiscope.sink import STAGE_START
from aiscope.testing import MockProvider

MODES = ["sync", "async"]


class Records:
    """A sink that keeps every record it is given."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_record(self, record: CallRecord) -> None:
        self.records.append(record)

    @property
    def only(self) -> CallRecord:
        assert len(self.records) == 1, self.records
        return self.records[0]


@pytest.fixture(autouse=True)
def _fresh(mock: MockProvider) -> None:
    mock.reset()


def _client(mock: MockProvider, sink: Records, provider: str = "openai") -> AiClient:
    model = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5"}[provider]
    return (
        AiClient.builder()
        .model(f"{provider}/{model}")
        .api_key("test-key-123456")
        .base_url(mock.base_url(provider))
        .metrics(MetricsCollector())
        .cost_tracker(CostTracker())
        .feedback(sink)
        .retry(RetryPolicy(max_retries=2, base_delay_s=0.001, max_delay_s=0.05))
        .build()
    )


def _stream(client: AiClient, mode: str, stop_at: str | None = None) -> list[StreamEvent]:
    """The events of one stream, consumed synchronously or on an event loop; with
    ``stop_at``, the consumer stops at the first event of that kind."""
    chat = client.chat().user("Tell me about streams")
    seen: list[StreamEvent] = []
    if mode == "sync":
        gen = chat.stream_sync()
        try:
            for ev in gen:
                seen.append(ev)
                if ev.kind == stop_at:
                    break
        finally:
            gen.close()  # type: ignore[attr-defined]
        return seen

    async def run() -> list[StreamEvent]:
        agen = chat.stream()
        try:
            async for ev in agen:
                seen.append(ev)
                if ev.kind == stop_at:
                    break
        finally:
            await agen.aclose()  # type: ignore[attr-defined]
            await client.aclose()
        return seen

    return asyncio.run(run())


@pytest.mark.parametrize("mode", MODES)
def test_usage_from_final_chunk_and_time_to_first_token(mock: MockProvider, mode: str) -> None:
    mock.behave(first_token_delay_s=0.05, reply_tokens=12)
    sink = Records()
    events = _stream(_client(mock, sink), mode)
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    assert "".join(e.text or "" for e in events if e.kind == "text_delta") == sent.reply_text
    assert [e.kind for e in events[-2:]] == ["usage", "end"]
    end = events[-1]
    assert end.stats is not None and end.response is not None
    assert (end.stats.prompt_tokens, end.stats.completion_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )
    assert not end.stats.usage_estimated and end.stats.status == "ok"
    ttft = end.stats.time_to_first_token_ms
    assert ttft is not None and 50 <= ttft <= end.stats.latency_ms
    record = sink.only
    assert record.streaming and record.status == "ok" and record.cost_usd is not None
    assert record.usage.output_tokens == sent.usage.output_tokens


@pytest.mark.parametrize("mode", MODES)
def test_cut_stream(mock: MockProvider, mode: str) -> None:
    mock.drop_stream_after(3)
    sink = Records()
    client = _client(mock, sink, "anthropic")
    with pytest.raises(StreamInterruptedError):
        _stream(client, mode)
    record = sink.only
    assert (record.status, record.error_type) == ("error", "StreamInterruptedError")
    assert record.usage.input_tokens > 0  # what the stream said before it was cut
    assert client.breaker.failure_count == 1 and client.current_inflight() == 0


@pytest.mark.parametrize("mode", MODES)
def test_malformed_frame(mock: MockProvider, mode: str) -> None:
    mock.malformed_frame_at(2)
    sink = Records()
    client = _client(mock, sink)
    with pytest.raises(StreamProtocolError, match="malformed"):
        _stream(client, mode)
    record = sink.only
    assert (record.status, record.error_type) == ("error", "StreamProtocolError")
    assert client.breaker.failure_count == 1 and client.current_inflight() == 0


@pytest.mark.parametrize("mode", MODES)
def test_early_break_records_once(mock: MockProvider, mode: str) -> None:
    mock.behave(reply_tokens=200)
    sink = Records()
    client = _client(mock, sink)
    events = _stream(client, mode, stop_at="text_delta")
    assert events[-1].kind == "text_delta"
    record = sink.only
    assert record.status == "ok" and record.finish_reasons == ("abandoned",)
    assert record.usage.estimated and record.usage.output_tokens > 0
    assert client.current_inflight() == 0
    assert client.circuit_state() is CircuitState.CLOSED and client.breaker.failure_count == 0
    # The abandoned response was closed: the client streams again.
    assert _stream(client, mode)[-1].kind == "end"
    assert len(sink.records) == 2


@pytest.mark.parametrize("mode", MODES)
def test_retry_before_the_first_byte(mock: MockProvider, mode: str) -> None:
    mock.rate_limit(times=1, retry_after=0.01)
    sink = Records()
    events = _stream(_client(mock, sink), mode)
    assert events[-1].kind == "end"
    assert [r.status for r in mock.requests] == [429, 200]
    record = sink.only
    assert record.status == "ok" and record.retry_count == 1


def test_sync_stream_keeps_one_connection_and_needs_no_event_loop(mock: MockProvider) -> None:
    sink = Records()
    client = _client(mock, sink)
    for _ in range(3):
        assert _stream(client, "sync")[-1].kind == "end"

    async def inside_a_running_loop() -> list[StreamEvent]:
        # A blocking stream called from async code: it must not try to run a loop of its own.
        return _stream(client, "sync")

    assert asyncio.run(inside_a_running_loop())[-1].kind == "end"
    assert len({r.client for r in mock.requests}) == 1  # keep-alive on the client's httpx2.Client
    assert client._async_http is None
    assert [r.status for r in sink.records] == ["ok"] * 4


class SpanNames(SinkBase):
    """A sink that takes the STAGE_START events the client's stages report."""

    events = frozenset((STAGE_START,))

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        self.names.append(data["name"])

    def on_record(self, record: CallRecord) -> None:
        self.names.append("record")


def test_stages_open_spans_when_a_tracer_is_set(mock: MockProvider) -> None:
    tracer = SpanNames()
    client = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("test-key-123456")
        .base_url(mock.base_url("openai"))
        .tracer(tracer)
        .build()
    )
    client.chat().user("hi").execute_sync()
    assert tracer.names == [
        "request_compilation",
        "http_transport",
        "pipeline_processing",
        "event_mapping",
        "record",
    ]
    tracer.names.clear()
    assert _stream(client, "sync")[-1].kind == "end"
    assert tracer.names == ["request_compilation", "http_transport", "record"]


def test_abandoned_stream_estimates_tokens_from_its_text_and_prompt_like_the_instrumentation(
    mock: MockProvider,
) -> None:
    import math

    mock.behave(reply_tokens=200)
    sink = Records()
    client = _client(mock, sink)
    seen: list[str] = []
    for ev in client.chat().system("Be brief.").user("Say hello").stream_sync():
        if ev.kind == "text_delta":
            seen.append(ev.text or "")
            if len(seen) == 5:
                break
    sent = mock.last_request
    # what the mock would have billed (planned: a cut stream may never send its usage)
    assert sent is not None and sent.planned_usage is not None
    record = sink.only
    assert record.usage.estimated and record.finish_reasons == ("abandoned",)
    # the text seen at about four bytes a token; the prompt the same way, 3 more a message
    assert record.usage.output_tokens == math.ceil(len("".join(seen).encode()) / 4)
    assert record.usage.input_tokens == math.ceil(len("Be brief.\nSay hello") / 4) + 2 * 3
    assert abs(record.usage.input_tokens - sent.planned_usage.input_tokens) <= 1
