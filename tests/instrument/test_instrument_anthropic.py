"""The real anthropic SDK against the mock provider over loopback HTTP, instrumented."""

from __future__ import annotations

import gc

import anthropic
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream
from anthropic.resources.messages import Messages
from anthropic.types import Message

import aiscope
from aiscope.scope import Scope, use_scope
from aiscope.testing import MockProvider
from tests.support.sdk_support import Records

MODEL = "claude-haiku-4-5"
MSG = [{"role": "user", "content": "Tell me about budgets."}]


def client(mock: MockProvider, **kw: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=mock.base_url("anthropic"), api_key="k", max_retries=0, **kw
    )  # type: ignore[arg-type]


def aclient(mock: MockProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=mock.base_url("anthropic"), api_key="k", max_retries=0)


def test_create_with_cache_tokens(mock: MockProvider, records: Records) -> None:
    mock.behave(cache_read_tokens=4, cache_write_tokens=2)
    msg = client(mock).messages.create(model=MODEL, max_tokens=200, messages=MSG)
    assert type(msg) is Message
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    r = records.one
    assert (r.provider, r.model, r.status) == ("anthropic", MODEL, "ok")
    # aiscope's input count includes the cache reads and writes Anthropic reports apart
    assert r.usage.input_tokens == msg.usage.input_tokens + 4 + 2 == sent.usage.input_tokens
    assert (r.usage.cache_read_tokens, r.usage.cache_write_tokens) == (4, 2)
    assert r.usage.output_tokens == msg.usage.output_tokens == sent.usage.output_tokens
    assert r.cost_usd is not None and r.cost_usd > 0
    assert r.finish_reasons == ("end_turn",) and r.upstream_request_id == msg._request_id


def test_create_stream(mock: MockProvider, records: Records) -> None:
    stream = client(mock).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
    assert isinstance(stream, anthropic.Stream)
    with stream:
        events = list(stream)
    assert events[-1].type == "message_stop"
    sent = mock.last_request
    assert sent is not None and sent.usage is not None
    r = records.one
    assert r.streaming and not r.usage.estimated and r.time_to_first_token_s is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (
        sent.usage.input_tokens,
        sent.usage.output_tokens,
    )


def test_with_streaming_response_and_raw_response(mock: MockProvider, records: Records) -> None:
    c = client(mock)
    with c.messages.with_streaming_response.create(
        model=MODEL, max_tokens=200, messages=MSG
    ) as raw:
        msg = raw.parse()
    with c.messages.with_streaming_response.create(
        model=MODEL, max_tokens=200, messages=MSG, stream=True
    ) as raw_stream:
        events = list(raw_stream.parse())
    legacy = c.messages.with_raw_response.create(model=MODEL, max_tokens=200, messages=MSG)
    assert type(msg) is Message and events[-1].type == "message_stop"
    assert type(legacy.parse()) is Message
    first, streamed, third = records.items
    assert first.usage.output_tokens == msg.usage.output_tokens and first.cost_usd
    assert streamed.streaming and not streamed.usage.estimated and streamed.usage.output_tokens
    assert third.usage.output_tokens == legacy.parse().usage.output_tokens


def test_messages_stream_helper(mock: MockProvider, records: Records) -> None:
    with client(mock).messages.stream(model=MODEL, max_tokens=200, messages=MSG) as s:
        assert type(s) is MessageStream
        final = s.get_final_message()
    r = records.one
    assert r.usage.output_tokens == final.usage.output_tokens and r.streaming
    assert r.response_model == final.model


def test_messages_stream_early_break(mock: MockProvider, records: Records) -> None:
    mock.behave(reply_tokens=30)
    with client(mock).messages.stream(model=MODEL, max_tokens=200, messages=MSG) as s:
        for _text in s.text_stream:
            break
    r = records.one
    assert r.usage.estimated and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    gc.collect()
    assert len(records.items) == 1


def test_abandoned_raw_stream(mock: MockProvider, records: Records) -> None:
    s = client(mock).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
    next(iter(s))
    del s
    gc.collect()
    assert len(records.items) == 1


def test_errors(mock: MockProvider, records: Records) -> None:
    mock.overloaded()
    with pytest.raises(anthropic.InternalServerError) as exc:
        client(mock).messages.create(model=MODEL, max_tokens=200, messages=MSG)
    assert exc.value.status_code == 529
    mock.rate_limit()
    with (
        pytest.raises(anthropic.RateLimitError),
        client(mock).messages.stream(model=MODEL, max_tokens=200, messages=MSG),
    ):
        pass
    assert [r.error_type for r in records.items] == ["OverloadedError", "RateLimitError"]


async def test_async_create_and_stream(mock: MockProvider, records: Records) -> None:
    c = aclient(mock)
    msg = await c.messages.create(model=MODEL, max_tokens=200, messages=MSG)
    async with c.messages.stream(model=MODEL, max_tokens=200, messages=MSG) as s:
        assert type(s) is AsyncMessageStream
        text = await s.get_final_text()
    assert text
    first, second = records.items
    assert first.usage.output_tokens == msg.usage.output_tokens
    assert second.streaming and not second.usage.estimated
    await c.close()


def test_budget_refuses_stream_before_sending(mock: MockProvider) -> None:
    mock.reset()
    aiscope.instrument()
    try:
        scope = Scope(cost_tracker=aiscope.CostTracker(budget_usd=0.000001))
        stream = client(mock).messages.stream(model=MODEL, max_tokens=500, messages=MSG)
        with use_scope(scope), pytest.raises(aiscope.BudgetExceededError), stream:
            pass
    finally:
        aiscope.uninstrument()
    assert mock.requests == []


def test_uninstrument_restores(mock: MockProvider) -> None:
    create, stream = Messages.create, Messages.stream
    aiscope.instrument(openai=False)
    assert Messages.create is not create
    aiscope.uninstrument(openai=False)
    assert (Messages.create, Messages.stream) == (create, stream)
