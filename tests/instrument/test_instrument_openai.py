"""The real openai SDK against the mock provider over loopback HTTP, instrumented."""

from __future__ import annotations

import asyncio
import gc
import time

import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.types.chat import ChatCompletion

import aiscope
from aiscope.scope import Scope, use_scope
from aiscope.testing import MockProvider
from tests.support.sdk_support import Records

MSG = [{"role": "user", "content": "Say something about observability."}]


def client(mock: MockProvider, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0, **kw)  # type: ignore[arg-type]


def aclient(mock: MockProvider, **kw: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0, **kw)  # type: ignore[arg-type]


def expected_cost(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    from genai_prices import Usage, calc_price

    price = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached),
        model_ref="gpt-4o",
        provider_id="openai",
    )
    return float(price.total_price)


def test_chat_records_what_the_server_sent(mock: MockProvider, records: Records) -> None:
    mock.behave(latency_s=0.05, cache_read_tokens=3, reasoning_tokens=2)
    t0 = time.perf_counter()
    resp = client(mock).chat.completions.create(model="gpt-4o", messages=MSG)
    wall = time.perf_counter() - t0
    assert type(resp) is ChatCompletion
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    r = records.one
    assert (r.provider, r.model, r.operation, r.status) == ("openai", "gpt-4o", "chat", "ok")
    assert r.usage.input_tokens == sent.usage.input_tokens == resp.usage.prompt_tokens  # type: ignore[union-attr]
    assert r.usage.output_tokens == sent.usage.output_tokens
    assert r.usage.cache_read_tokens == 3 and r.usage.reasoning_tokens == 2
    assert not r.usage.estimated and not r.streaming
    assert 0.05 <= r.latency_s <= wall
    assert r.cost_usd == pytest.approx(
        expected_cost(sent.usage.input_tokens, sent.usage.output_tokens, 3)
    )
    assert r.upstream_request_id == resp._request_id is not None
    assert r.response_model == resp.model and r.finish_reasons == ("stop",)
    assert (r.server_address, r.server_port) == ("127.0.0.1", mock.port)


def test_stream_usage_from_final_chunk_and_ttft(mock: MockProvider, records: Records) -> None:
    mock.behave(first_token_delay_s=0.05, chunk_delay_s=0.01)
    stream = client(mock).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sent = mock.last_request
    assert sent is not None and sent.usage is not None and text == sent.reply_text
    r = records.one
    assert r.streaming and not r.usage.estimated
    assert (r.usage.input_tokens, r.usage.output_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )
    assert r.time_to_first_token_s is not None
    assert 0.05 <= r.time_to_first_token_s < r.latency_s
    assert r.latency_s - r.time_to_first_token_s >= 0.01 * (sent.frames_sent - 2)


def test_stream_without_usage_is_estimated_and_request_unchanged(
    mock: MockProvider, records: Records
) -> None:
    with client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True) as s:
        chunks = list(s)
    sent = mock.last_request
    assert sent is not None and "stream_options" not in sent.body
    assert all(c.usage is None for c in chunks)
    r = records.one
    assert r.usage.estimated and r.usage.output_tokens > 0 and r.usage.input_tokens > 0


def test_stream_without_usage_estimates_tokens_from_its_own_text_near_the_real_count(
    mock: MockProvider, records: Records
) -> None:
    import math

    hello = [{"role": "user", "content": "Say hello"}]
    c = client(mock)
    # the same request with and without include_usage: the real counts, then the estimate
    for messages in (hello, MSG):
        list(
            c.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        real = records.items[-1].usage
        assert not real.estimated
        with c.chat.completions.create(model="gpt-4o", messages=messages, stream=True) as s:
            text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
        est = records.items[-1].usage
        assert est.estimated
        # about four bytes a token, counted on the text the stream really sent, and the
        # prompt's text plus its message's overhead: not the budget's upper bound
        assert est.output_tokens == math.ceil(len(text.encode()) / 4)
        assert est.input_tokens == real.input_tokens
        if messages is hello:  # "This is a mock reply to: Say hello": 9 tokens, not 16
            assert (est.output_tokens, real.output_tokens) == (9, 9)
        assert abs(est.output_tokens - real.output_tokens) <= 0.25 * real.output_tokens


def test_include_usage_injection_is_opt_in(mock: MockProvider, records: Records) -> None:
    aiscope.instrument(include_usage=True)
    list(client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    sent = mock.last_request
    assert sent is not None and sent.body["stream_options"] == {"include_usage": True}
    assert sent.usage is not None
    r = records.one
    assert not r.usage.estimated and r.usage.output_tokens == sent.usage.output_tokens
    # the application's own choice is kept
    list(
        client(mock).chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": False}
        )
    )
    assert mock.last_request.body["stream_options"] == {"include_usage": False}  # type: ignore[union-attr]


def test_early_break_in_with_block_emits_once_at_exit(mock: MockProvider, records: Records) -> None:
    mock.behave(reply_tokens=40)
    c = client(mock)
    with c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True) as s:
        for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert records.items == []
    r = records.one
    assert r.status == "ok" and r.streaming and r.usage.estimated
    assert 0 < r.usage.output_tokens < 40
    s.close()  # closing again does not emit again
    gc.collect()
    assert len(records.items) == 1


def test_abandoned_stream_emits_once_when_collected(mock: MockProvider, records: Records) -> None:
    mock.behave(reply_tokens=40)
    s = client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    next(iter(s))
    assert records.items == []
    del s
    gc.collect()
    assert len(records.items) == 1 and records.one.streaming


def test_errors_recorded_and_reraised_unchanged(mock: MockProvider, records: Records) -> None:
    c = client(mock)
    mock.rate_limit(retry_after=0.1)
    with pytest.raises(openai.RateLimitError) as e429:
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert e429.value.status_code == 429
    mock.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    mock.slow_first_byte(2.0)
    with pytest.raises(openai.APITimeoutError):
        client(mock, timeout=0.2).chat.completions.create(model="gpt-4o", messages=MSG)
    got = [(r.status, r.error_type) for r in records.items]
    assert got == [
        ("error", "RateLimitError"),
        ("error", "InternalServerError"),
        ("error", "APITimeoutError"),
    ]
    assert records.items[2].latency_s >= 0.2
    assert all(r.usage.total_tokens == 0 for r in records.items)
    # no usage came back: not priced at $0 "ok", but said to have no usage
    assert all(not r.has_usage for r in records.items)
    assert {(r.cost_usd, r.cost_status) for r in records.items} == {(None, "no_usage")}


def test_error_mid_stream_is_recorded_and_reraised(mock: MockProvider, records: Records) -> None:
    mock.error_mid_stream(3)
    s = client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    with pytest.raises(openai.APIError):
        for _ in s:
            pass
    r = records.one
    assert (r.status, r.error_type) == ("error", "APIError")


def test_same_exception_types_without_instrumentation(mock: MockProvider) -> None:
    aiscope.uninstrument()
    mock.reset()
    mock.rate_limit()
    with pytest.raises(openai.RateLimitError):
        client(mock).chat.completions.create(model="gpt-4o", messages=MSG)


async def test_async_chat_and_stream(mock: MockProvider, records: Records) -> None:
    c = aclient(mock)
    resp = await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert type(resp) is ChatCompletion
    stream = await c.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    async with stream:
        n = len([c async for c in stream])
    assert n > 2
    first, second = records.items
    assert first.usage.output_tokens == resp.usage.completion_tokens  # type: ignore[union-attr]
    assert second.streaming and not second.usage.estimated and second.time_to_first_token_s
    await c.close()


async def test_async_early_break_then_close(mock: MockProvider, records: Records) -> None:
    c = aclient(mock)
    s = await c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    async for _ in s:
        break
    await s.close()
    assert len(records.items) == 1
    await c.close()


async def test_async_errors(mock: MockProvider, records: Records) -> None:
    mock.rate_limit()
    with pytest.raises(openai.RateLimitError):
        await aclient(mock).chat.completions.create(model="gpt-4o", messages=MSG)
    assert records.one.error_type == "RateLimitError"


def test_responses_and_embeddings(mock: MockProvider, records: Records) -> None:
    c = client(mock)
    resp = c.responses.create(model="gpt-4o", input="Describe a histogram.")
    emb = c.embeddings.create(model="text-embedding-3-small", input=["a", "b c"])
    with c.responses.create(model="gpt-4o", input="Describe a span.", stream=True) as s:
        list(s)
    r1, r2, r3 = records.items
    assert (r1.operation, r1.usage.input_tokens, r1.usage.output_tokens) == (
        "responses",
        resp.usage.input_tokens,  # type: ignore[union-attr]
        resp.usage.output_tokens,  # type: ignore[union-attr]
    )
    assert (r2.operation, r2.usage.input_tokens) == ("embeddings", emb.usage.prompt_tokens)
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    assert r3.streaming and r3.usage.output_tokens == sent.usage.output_tokens
    assert r3.time_to_first_token_s is not None


def test_with_raw_response_keeps_its_type(mock: MockProvider, records: Records) -> None:
    raw = client(mock).chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert type(raw).__name__ == "LegacyAPIResponse"
    parsed = raw.parse()
    assert type(parsed) is ChatCompletion
    assert records.one.usage.output_tokens == parsed.usage.completion_tokens  # type: ignore[union-attr]
    assert records.one.upstream_request_id == raw.headers["x-request-id"]


def test_with_streaming_response_parsed_body_is_read(mock: MockProvider, records: Records) -> None:
    c = client(mock)
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG) as raw:
        assert type(raw) is openai.APIResponse and records.items == []  # body not read yet
        parsed = raw.parse()
        assert type(parsed) is ChatCompletion and raw.parse() is parsed  # the SDK's cache
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    r = records.one
    assert (r.usage.input_tokens, r.usage.output_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )
    assert r.upstream_request_id == raw.headers["x-request-id"] and r.cost_usd
    assert r.response_model == parsed.model and r.finish_reasons == ("stop",)


def test_with_streaming_response_stream_is_watched_to_its_end(
    mock: MockProvider, records: Records
) -> None:
    mock.behave(first_token_delay_s=0.03)
    c = client(mock)
    with c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    ) as raw:
        stream = raw.parse()
        assert isinstance(stream, openai.Stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    sent = mock.last_request
    assert sent is not None and sent.usage is not None and text == sent.reply_text
    r = records.one
    assert r.streaming and not r.usage.estimated
    assert r.usage.output_tokens == sent.usage.output_tokens
    assert r.time_to_first_token_s is not None and r.time_to_first_token_s >= 0.03


def test_with_streaming_response_read_raw_is_recorded_at_close(
    mock: MockProvider, records: Records
) -> None:
    mock.behave(latency_s=0.02)
    c = client(mock)
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG) as raw:
        lines = list(raw.iter_lines())
        assert records.items == []
    assert lines and '"usage"' in "".join(lines)  # the application got the body untouched
    r = records.one
    assert r.status == "ok" and r.usage.output_tokens == 0 and r.latency_s >= 0.02
    assert r.upstream_request_id == raw.headers["x-request-id"]


def test_with_streaming_response_left_unread_is_recorded_when_collected(
    mock: MockProvider, records: Records
) -> None:
    c = client(mock)
    raw = c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG)
    response = raw.__enter__()
    assert records.items == []
    del raw, response
    gc.collect()
    assert records.one.status == "ok"


async def test_async_with_streaming_response(mock: MockProvider, records: Records) -> None:
    c = aclient(mock)
    async with c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG
    ) as raw:
        parsed = await raw.parse()
    async with c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    ) as raw_stream:
        n = len([ch async for ch in await raw_stream.parse()])
    assert n > 2
    first, second = records.items
    assert first.usage.output_tokens == parsed.usage.completion_tokens  # type: ignore[union-attr]
    assert second.streaming and not second.usage.estimated
    await c.close()


def test_budget_refuses_before_sending(mock: MockProvider) -> None:
    mock.reset()
    sink = Records()
    scope = Scope(cost_tracker=aiscope.CostTracker(budget_usd=0.000001), sinks=[sink])
    aiscope.instrument()
    try:
        with use_scope(scope), pytest.raises(aiscope.BudgetExceededError):
            client(mock).chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=100)
    finally:
        aiscope.uninstrument()
    assert mock.requests == [] and sink.items == []


def test_uninstrument_restores_the_sdk(mock: MockProvider) -> None:
    originals = (Completions.create, AsyncCompletions.create)
    aiscope.instrument()
    aiscope.instrument()  # idempotent
    wrapped = Completions.create
    assert wrapped is not originals[0] and aiscope.is_instrumented()
    assert wrapped.__aiscope_original__ is originals[0]
    aiscope.uninstrument()
    aiscope.uninstrument()  # safe twice
    assert (Completions.create, AsyncCompletions.create) == originals
    assert not aiscope.is_instrumented()
    sink = Records()
    with use_scope(Scope(sinks=[sink])):
        client(mock).chat.completions.create(model="gpt-4o", messages=MSG)
    assert sink.items == []


def test_wrap_one_client_only(mock: MockProvider) -> None:
    sink = Records()
    other = Scope(sinks=[sink])
    mock.reset()
    wrapped = aiscope.wrap(client(mock), scope=other)
    assert aiscope.wrap(wrapped, scope=other) is wrapped  # twice: wrapped once
    plain = client(mock)
    wrapped.chat.completions.create(model="gpt-4o", messages=MSG)
    plain.chat.completions.create(model="gpt-4o", messages=MSG)
    assert len(sink.items) == 1
    aiscope.instrument()  # globally too: still one record per call
    try:
        with use_scope(other):
            wrapped.chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        aiscope.uninstrument()
    assert len(sink.items) == 2
    with pytest.raises(TypeError, match="openai or anthropic client"):
        aiscope.wrap(object())


def test_tags_and_observe_reach_the_record(mock: MockProvider, records: Records) -> None:
    c = client(mock)

    @aiscope.observe("answer", feature="search")
    def answer() -> None:
        c.chat.completions.create(model="gpt-4o", messages=MSG)

    with aiscope.tags(team="growth", user="u1"):
        answer()

    @aiscope.observe(feature="async")
    async def aanswer() -> None:
        await aclient(mock).chat.completions.create(model="gpt-4o", messages=MSG)

    asyncio.run(aanswer())
    r1, r2 = records.items
    assert r1.tags == {"team": "growth", "user": "u1", "feature": "search"}
    assert r1.operations == ("answer",)
    assert r2.tags == {"feature": "async"}
    with pytest.raises(TypeError, match="tag 'team'"):
        aiscope.observe(team=3)  # type: ignore[arg-type]


def test_stream_tags_are_those_at_the_call(mock: MockProvider, records: Records) -> None:
    with aiscope.tags(feature="chat"):
        s = client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    list(s)
    assert records.one.tags == {"feature": "chat"}


def test_metrics_see_sdk_calls(mock: MockProvider) -> None:
    metrics = aiscope.MetricsCollector()
    aiscope.instrument()
    try:
        with use_scope(Scope(metrics=metrics)):
            client(mock).chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        aiscope.uninstrument()
    text = metrics.export_prometheus()
    assert 'model="gpt-4o"' in text and 'provider="openai"' in text


def test_failing_sink_never_reaches_the_application(mock: MockProvider) -> None:
    class Broken:
        def on_record(self, record: object) -> None:
            raise RuntimeError("sink down")

    scope = Scope(sinks=[Broken()])
    aiscope.instrument()
    try:
        with use_scope(scope):
            resp = client(mock).chat.completions.create(model="gpt-4o", messages=MSG)
            chunks = list(
                client(mock).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
            )
    finally:
        aiscope.uninstrument()
    assert type(resp) is ChatCompletion and chunks
    assert scope.sink_errors == {"Broken": 2}


def test_instrumented_sdk_calls_get_genai_spans(mock: MockProvider) -> None:
    # the SDK adapter only talks to Scope.begin/emit; the scope's tracer turns that
    # into a GenAI client span with the usage the server sent
    from aiscope import InMemoryExporter, Tracer

    mock.reset()
    mock.behave(cache_read_tokens=3)
    memory = InMemoryExporter()
    tracer = Tracer(service_name="sdk-test", exporter=memory)
    scope = Scope(tracer=tracer, metrics=aiscope.MetricsCollector())
    aiscope.instrument(openai=True, anthropic=False)
    try:
        with use_scope(scope):
            resp = client(mock).chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        aiscope.uninstrument()
    tracer.flush(timeout=5)
    spans = memory.spans()
    assert [s.name for s in spans] == ["chat gpt-4o"]
    attrs = spans[0].attributes
    assert resp.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == resp.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == resp.usage.completion_tokens
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.response.id"] == resp.id
    tracer.shutdown(timeout=2)


def test_cost_report_and_metrics_key_a_call_by_the_model_asked_for(mock: MockProvider) -> None:
    # OpenAI answers "gpt-4o" with a dated snapshot name; joins by model must hold
    mock.reset()
    mock.behave(model="gpt-4o-2024-08-06")
    metrics = aiscope.MetricsCollector()
    tracker = aiscope.CostTracker()
    sink = Records()
    aiscope.instrument()
    try:
        with use_scope(Scope(metrics=metrics, cost_tracker=tracker, sinks=[sink])):
            client(mock).chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
    finally:
        aiscope.uninstrument()
        mock.behave(model=None)
    (record,) = sink.items
    assert (record.model, record.response_model) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert set(tracker.get_report().by_model) == {"gpt-4o"}
    assert metrics.latency_percentiles("gpt-4o") is not None
    assert 'model="gpt-4o"' in metrics.export_prometheus()
