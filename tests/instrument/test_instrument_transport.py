"""The SDKs' own mock-transport hook (``http_client=httpx2.Client(transport=MockTransport)``):
the same records as over a socket, with no socket."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest

from aiscope.testing import MockProvider
from tests.support.sdk_support import Records, instrumented, mock_transport

MSG = [{"role": "user", "content": "Count the tokens of this."}]


@pytest.fixture
def setup() -> Iterator[tuple[MockProvider, Records]]:
    with instrumented() as sink:
        yield MockProvider(), sink  # never started: answered in process


def test_openai_sync_and_stream(setup: tuple[MockProvider, Records]) -> None:
    mock, sink = setup
    c = openai.OpenAI(
        base_url="http://mock/v1",
        api_key="k",
        http_client=httpx2.Client(transport=mock_transport(mock)),
    )
    resp = c.chat.completions.create(model="gpt-4o", messages=MSG)
    list(
        c.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    first, second = sink.items
    assert first.usage.output_tokens == resp.usage.completion_tokens  # type: ignore[union-attr]
    assert first.usage.input_tokens == mock.requests[0].usage.input_tokens  # type: ignore[union-attr]
    assert second.usage.output_tokens == mock.requests[1].usage.output_tokens  # type: ignore[union-attr]
    assert first.server_address == "mock" and first.cost_usd is not None


async def test_openai_async(setup: tuple[MockProvider, Records]) -> None:
    mock, sink = setup
    c = openai.AsyncOpenAI(
        base_url="http://mock/v1",
        api_key="k",
        http_client=httpx2.AsyncClient(transport=mock_transport(mock)),
    )
    resp = await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert sink.one.usage.output_tokens == resp.usage.completion_tokens  # type: ignore[union-attr]


def test_anthropic_sync_and_stream(setup: tuple[MockProvider, Records]) -> None:
    mock, sink = setup
    c = anthropic.Anthropic(
        base_url="http://mock",
        api_key="k",
        http_client=httpx2.Client(transport=mock_transport(mock)),
    )
    msg = c.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MSG)
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=MSG) as s:
        final = s.get_final_message()
    first, second = sink.items
    assert first.usage.output_tokens == msg.usage.output_tokens
    assert second.usage.output_tokens == final.usage.output_tokens and second.streaming
