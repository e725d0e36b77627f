"""The mock LLM provider (aiscope.testing): real HTTP, each provider's wire format,
deterministic usage, the request log, and every injectable fault."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiscope.testing import (
    Behavior,
    Fault,
    MockProvider,
    ToolCall,
    count_output_tokens,
    default_reply,
    embedding_vector,
    expected_completion,
    message_tokens,
    prompt_tokens,
    serve,
    split_tokens,
    text_tokens,
)

OPENAI_AUTH = {"authorization": "Bearer sk-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": "gm-test"}
GEMINI = "/v1beta/models/gemini-2.5-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[MockProvider]:
    with MockProvider() as mock:
        yield mock


@pytest.fixture
def mock(server: MockProvider) -> Iterator[MockProvider]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(mock: MockProvider) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=mock.url, timeout=10) as c:
        yield c


def chat_body(text: str = "Hello there, how are you?", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def claude_body(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def gemini_body(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def sse_events(raw: str, eol: str = "\n") -> list[tuple[str | None, str]]:
    """(event, data) of each SSE frame in ``raw``."""
    events = []
    for block in raw.split(eol * 2):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split(eol):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((event, "\n".join(data)))
    return events


def sse_json(raw: str, eol: str = "\n") -> list[Any]:
    return [json.loads(d) for _, d in sse_events(raw, eol) if d != "[DONE]"]


# --------------------------------------------------------------------------- token rules


def test_token_rules_are_documented_values() -> None:
    assert split_tokens("Hello, world!") == ["Hello", ",", " world", "!"]
    assert count_output_tokens("") == 0
    assert count_output_tokens("a b  c\n") == 4  # trailing whitespace is one token
    assert text_tokens("") == 0 and text_tokens("abcd") == 1 and text_tokens("abcde") == 2
    assert message_tokens("abcde") == 5
    assert default_reply("  Hello\n there ") == "This is a mock reply to: Hello there"


@given(st.text())
def test_split_tokens_round_trips(text: str) -> None:
    assert "".join(split_tokens(text)) == text


def test_prompt_tokens_counts_every_message_system_and_tools() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ],
        "tools": [WEATHER_TOOL],
    }
    tools_json = json.dumps([WEATHER_TOOL], separators=(",", ":"), sort_keys=True)
    expected = message_tokens("Be brief.") + message_tokens("Hi") + message_tokens(tools_json)
    assert prompt_tokens("chat.completions", body) == expected
    claude = {"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]}
    assert prompt_tokens("anthropic", {**claude, "model": "c", "max_tokens": 1}) == 6 + 4
    gem = {"systemInstruction": {"parts": [{"text": "Be brief."}]}, **gemini_body("Hi")}
    assert prompt_tokens("gemini", gem) == 6 + 4
    assert prompt_tokens("responses", {"model": "m", "input": "Hi", "instructions": "x"}) == 4 + 4
    assert prompt_tokens("embeddings", {"input": ["abcde", "a"]}) == 3


# --------------------------------------------------------------------------- server basics


def test_base_urls_and_lifecycle() -> None:
    mock = MockProvider()
    assert not mock.running
    with mock:
        assert mock.url == f"http://127.0.0.1:{mock.port}"
        assert mock.base_url("openai") == mock.url + "/v1"
        assert mock.base_url("anthropic") == mock.url
        assert mock.base_url("gemini") == mock.url + "/v1beta"
        assert mock.base_url("groq") == mock.url + "/openai/v1"
        assert mock.base_url("openrouter") == mock.url + "/api/v1"
        with pytest.raises(ValueError, match="unknown provider"):
            mock.base_url("nope")
        with pytest.raises(RuntimeError):
            mock.start()
        port = mock.port
    assert not mock.running
    mock.stop()  # idempotent
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_keep_alive_reuses_one_connection(mock: MockProvider, client: httpx2.Client) -> None:
    for _ in range(5):
        assert client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH).is_success
    assert len({r.client for r in mock.requests}) == 1
    assert len(mock.requests) == 5


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1", "/api/v1", ""])
def test_openai_paths_match_any_prefix(client: httpx2.Client, prefix: str) -> None:
    r = client.post(f"{prefix}/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert r.status_code == 200
    assert r.json()["object"] == "chat.completion"


def test_unknown_path_and_bad_json(mock: MockProvider, client: httpx2.Client) -> None:
    r = client.post("/v1/nothing", json={}, headers=OPENAI_AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (POST /v1/nothing)"
    r = client.post(
        "/v1/chat/completions",
        content=b"{not json",
        headers={**OPENAI_AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.post(
        "/v1/chat/completions", json={"model": "m", "messages": []}, headers=OPENAI_AUTH
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert [x.status for x in mock.requests] == [404, 400, 400]


def test_models_endpoints_per_provider(client: httpx2.Client) -> None:
    r = client.get("/v1/models", headers=OPENAI_AUTH)
    assert r.json()["object"] == "list" and r.json()["data"][0]["object"] == "model"
    assert client.get("/v1/models/gpt-4o", headers=OPENAI_AUTH).json()["id"] == "gpt-4o"
    r = client.get("/v1/models", headers=ANTHROPIC_AUTH)
    assert r.json()["data"][0]["type"] == "model" and r.json()["has_more"] is False
    r = client.get("/v1beta/models", headers=GEMINI_AUTH)
    assert r.json()["models"][0]["name"].startswith("models/")
    assert client.get("/v1/models").status_code == 401


# --------------------------------------------------------------------------- auth


def test_openai_auth(mock: MockProvider, client: httpx2.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat_body())
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    mock.api_key = "sk-right"
    r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    ok = client.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": "Bearer sk-right"}
    )
    assert ok.status_code == 200


def test_anthropic_auth_and_version(mock: MockProvider, client: httpx2.Client) -> None:
    r = client.post("/v1/messages", json=claude_body(), headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
    }
    r = client.post("/v1/messages", json=claude_body(), headers={"x-api-key": "k"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    body = claude_body()
    del body["max_tokens"]
    r = client.post("/v1/messages", json=body, headers=ANTHROPIC_AUTH)
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    mock.api_key = "right"
    r = client.post("/v1/messages", json=claude_body(), headers=ANTHROPIC_AUTH)
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid x-api-key"


def test_gemini_auth(mock: MockProvider, client: httpx2.Client) -> None:
    url = f"{GEMINI}:generateContent"
    r = client.post(url, json=gemini_body())
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    assert client.post(url + "?key=abc", json=gemini_body()).status_code == 200
    mock.api_key = "right"
    r = client.post(url, json=gemini_body(), headers=GEMINI_AUTH)
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert client.post(url, json=gemini_body(), headers={"x-goog-api-key": "right"}).is_success


# --------------------------------------------------------------------------- OpenAI chat


def test_openai_chat_completion(mock: MockProvider, client: httpx2.Client) -> None:
    body = chat_body()
    r = client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH)
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    for name in ("requests", "tokens"):
        assert int(r.headers[f"x-ratelimit-limit-{name}"]) > 0
        assert int(r.headers[f"x-ratelimit-remaining-{name}"]) >= 0
        assert r.headers[f"x-ratelimit-reset-{name}"]
    data = r.json()
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert isinstance(data["created"], int) and data["model"] == "gpt-4o-mini"
    assert data["system_fingerprint"] and data["service_tier"] == "default"
    choice = data["choices"][0]
    reply = default_reply("Hello there, how are you?")
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": reply, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }
    prompt = prompt_tokens("chat.completions", body)
    assert prompt == message_tokens("Hello there, how are you?")
    assert data["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": count_output_tokens(reply),
        "total_tokens": prompt + count_output_tokens(reply),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    rec = mock.last_request
    assert rec is not None and rec.completed and rec.status == 200
    assert rec.provider == "openai" and rec.endpoint == "chat.completions" and not rec.stream
    assert rec.body == body and rec.headers["authorization"] == "Bearer sk-test"
    assert rec.wire_usage == data["usage"] and rec.reply_text == reply
    assert rec.usage is not None and rec.usage.input_tokens == prompt
    assert rec.response_id == data["id"]


def test_openai_chat_stream_with_usage(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="One two, three.", cache_read_tokens=2, reasoning_tokens=5)
    body = chat_body(stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", json=body, headers=OPENAI_AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        raw = r.read().decode()
    events = sse_events(raw)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == split_tokens("One two, three.")
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    prompt = prompt_tokens("chat.completions", body)
    assert last["usage"]["prompt_tokens"] == prompt
    assert last["usage"]["completion_tokens"] == 5 + 5  # 5 visible + 5 reasoning
    assert last["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    rec = mock.last_request
    assert rec is not None and rec.stream and rec.completed
    assert rec.wire_usage == last["usage"] and rec.frames_sent == len(events)
    assert rec.usage is not None
    assert (rec.usage.cache_read_tokens, rec.usage.reasoning_tokens) == (2, 5)


def test_openai_chat_stream_without_usage(mock: MockProvider, client: httpx2.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat_body(stream=True), headers=OPENAI_AUTH)
    chunks = sse_json(r.text)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    rec = mock.last_request
    assert rec is not None and rec.usage is None and rec.planned_usage is not None


def test_openai_max_tokens_truncates(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_tokens=50, reasoning_tokens=3)
    body = chat_body(max_completion_tokens=10)
    data = client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert count_output_tokens(data["choices"][0]["message"]["content"]) == 7
    assert data["usage"]["completion_tokens"] == 10
    data = client.post(
        "/v1/chat/completions", json=chat_body(max_tokens=4, stream=True), headers=OPENAI_AUTH
    )
    assert sse_json(data.text)[-1]["choices"][0]["finish_reason"] == "length"


def test_openai_stop_sequence(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="alpha beta STOP gamma")
    data = client.post(
        "/v1/chat/completions", json=chat_body(stop=["STOP"]), headers=OPENAI_AUTH
    ).json()
    assert data["choices"][0]["message"]["content"] == "alpha beta "
    assert data["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_call_by_marker(mock: MockProvider, client: httpx2.Client) -> None:
    body = chat_body('Weather? [[call:get_weather {"city": "Paris"}]]', tools=[WEATHER_TOOL])
    data = client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert data["usage"]["completion_tokens"] == count_output_tokens('{"city":"Paris"}')
    # After the tool result the mock answers with text.
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    data = client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH).json()
    assert data["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_call_stream(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(tool_call=ToolCall(arguments={"city": "Paris", "days": 3}))
    body = chat_body("Weather?", tools=[WEATHER_TOOL], stream=True)
    chunks = sse_json(client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH).text)
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    parts = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert len(parts) > 1 and all(p["index"] == 0 and "id" not in p for p in parts)
    arguments = "".join(p["function"]["arguments"] for p in parts)
    assert json.loads(arguments) == {"city": "Paris", "days": 3}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_no_tool_call_without_tools(client: httpx2.Client) -> None:
    data = client.post("/v1/chat/completions", json=chat_body("[[call]]"), headers=OPENAI_AUTH)
    assert data.json()["choices"][0]["finish_reason"] == "stop"


# --------------------------------------------------------------------------- OpenAI responses


def test_openai_responses(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reasoning_tokens=4, cache_read_tokens=1)
    body = {"model": "o4-mini", "input": "Say hi", "instructions": "Be kind"}
    data = client.post("/v1/responses", json=body, headers=OPENAI_AUTH).json()
    assert data["object"] == "response" and data["status"] == "completed"
    assert data["id"].startswith("resp_")
    reasoning, message = data["output"]
    assert reasoning["type"] == "reasoning"
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text"
    reply = message["content"][0]["text"]
    assert reply == default_reply("Say hi")
    prompt = prompt_tokens("responses", body)
    assert data["usage"] == {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 1},
        "output_tokens": count_output_tokens(reply) + 4,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": prompt + count_output_tokens(reply) + 4,
    }


def test_openai_responses_stream(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="Hi there friend")
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": "Hey"}], "stream": True}
    raw = client.post("/v1/responses", json=body, headers=OPENAI_AUTH).text
    events = sse_events(raw)
    types = [e for e, _ in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    payloads = [json.loads(d) for _, d in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert all(p["type"] == e for p, (e, _) in zip(payloads, events, strict=True))
    deltas = [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Hi there friend"
    final = payloads[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["output_tokens"] == 3
    rec = mock.last_request
    assert rec is not None and rec.wire_usage == final["usage"]


def test_openai_responses_incomplete_and_tool_call(
    mock: MockProvider, client: httpx2.Client
) -> None:
    mock.behave(reply_tokens=20)
    body = {"model": "gpt-4o", "input": "x", "max_output_tokens": 5, "stream": True}
    payloads = sse_json(client.post("/v1/responses", json=body, headers=OPENAI_AUTH).text)
    assert payloads[-1]["type"] == "response.incomplete"
    assert payloads[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    body = {"model": "gpt-4o", "input": 'go [[call {"q": "x"}]]', "tools": [tool]}
    data = client.post("/v1/responses", json=body, headers=OPENAI_AUTH).json()
    (item,) = data["output"]
    assert item["type"] == "function_call" and item["name"] == "lookup"
    assert item["call_id"].startswith("call_") and json.loads(item["arguments"]) == {"q": "x"}


# --------------------------------------------------------------------------- embeddings


def test_openai_embeddings_float_and_base64(mock: MockProvider, client: httpx2.Client) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello", "world!"], "dimensions": 16}
    floats = client.post("/v1/embeddings", json=body, headers=OPENAI_AUTH).json()
    assert floats["object"] == "list" and floats["model"] == "text-embedding-3-small"
    assert floats["usage"] == {"prompt_tokens": 2 + 2, "total_tokens": 4}
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["data"][0]["object"] == "embedding"
    assert floats["data"][0]["embedding"] == embedding_vector("hello", 16)
    b64 = client.post(
        "/v1/embeddings", json={**body, "encoding_format": "base64"}, headers=OPENAI_AUTH
    ).json()
    for as_float, as_b64 in zip(floats["data"], b64["data"], strict=True):
        decoded = list(struct.unpack("<16f", base64.b64decode(as_b64["embedding"])))
        assert decoded == as_float["embedding"]
    default = client.post(
        "/v1/embeddings", json={"model": "e", "input": "x"}, headers=OPENAI_AUTH
    ).json()
    assert len(default["data"][0]["embedding"]) == Behavior().embedding_dimensions
    rec = mock.last_request
    assert rec is not None and rec.usage is not None and rec.usage.input_tokens == 1


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_message(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(cache_read_tokens=3, cache_write_tokens=2)
    body = claude_body(system="You are terse.")
    r = client.post("/v1/messages", json=body, headers=ANTHROPIC_AUTH)
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
    assert r.headers["anthropic-ratelimit-requests-limit"]
    data = r.json()
    assert data["id"].startswith("msg_") and data["type"] == "message"
    assert data["role"] == "assistant" and data["model"] == "claude-haiku-4-5"
    reply = default_reply("Hello there")
    assert data["content"] == [{"type": "text", "text": reply}]
    assert data["stop_reason"] == "end_turn" and data["stop_sequence"] is None
    prompt = prompt_tokens("messages", body)
    usage = data["usage"]
    assert usage["input_tokens"] == prompt - 3 - 2  # excludes cache reads and writes
    assert usage["cache_read_input_tokens"] == 3
    assert usage["cache_creation_input_tokens"] == 2
    assert usage["output_tokens"] == count_output_tokens(reply)
    rec = mock.last_request
    assert rec is not None and rec.usage is not None
    assert rec.usage.input_tokens == prompt and rec.usage.cache_write_tokens == 2


def test_anthropic_stream(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="Fine, thanks.", reasoning_tokens=2)
    body = claude_body(stream=True)
    with client.stream("POST", "/v1/messages", json=body, headers=ANTHROPIC_AUTH) as r:
        raw = r.read().decode()
    events = sse_events(raw)
    names = [e for e, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    payloads = [json.loads(d) for _, d in events]
    assert all(p["type"] == e for p, (e, _) in zip(payloads, events, strict=True))
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == prompt_tokens("messages", body)
    assert start["usage"]["output_tokens"] == 1
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    texts = [p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta"]
    assert texts == split_tokens("Fine, thanks.")
    assert payloads[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[-2]["usage"] == {"output_tokens": 4 + 2}
    rec = mock.last_request
    assert rec is not None and rec.usage is not None and rec.usage.output_tokens == 6


def test_anthropic_tool_use_and_limits(mock: MockProvider, client: httpx2.Client) -> None:
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    body = claude_body('[[call {"city": "Oslo"}]]', tools=[tool])
    data = client.post("/v1/messages", json=body, headers=ANTHROPIC_AUTH).json()
    (block,) = data["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["name"] == "get_weather" and block["input"] == {"city": "Oslo"}
    assert data["stop_reason"] == "tool_use"
    payloads = sse_json(
        client.post("/v1/messages", json={**body, "stream": True}, headers=ANTHROPIC_AUTH).text
    )
    assert payloads[1]["content_block"]["type"] == "tool_use"
    assert payloads[1]["content_block"]["input"] == {}
    partial = [p["delta"]["partial_json"] for p in payloads if p["type"] == "content_block_delta"]
    assert json.loads("".join(partial)) == {"city": "Oslo"}
    mock.behave(reply_tokens=40)
    short = claude_body(max_tokens=5, stop_sequences=["never"])
    data = client.post("/v1/messages", json=short, headers=ANTHROPIC_AUTH).json()
    assert data["stop_reason"] == "max_tokens" and data["usage"]["output_tokens"] == 5
    mock.behave(reply_text="one two three")
    stop = claude_body(stop_sequences=["three"])
    data = client.post("/v1/messages", json=stop, headers=ANTHROPIC_AUTH).json()
    assert (data["stop_reason"], data["stop_sequence"]) == ("stop_sequence", "three")


def test_anthropic_count_tokens(client: httpx2.Client) -> None:
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}
    r = client.post("/v1/messages/count_tokens", json=body, headers=ANTHROPIC_AUTH)
    assert r.json() == {"input_tokens": message_tokens("Hi")}


# --------------------------------------------------------------------------- Gemini


def test_gemini_generate_content(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reasoning_tokens=7, cache_read_tokens=2)
    body = gemini_body(generationConfig={"temperature": 0.2})
    data = client.post(f"{GEMINI}:generateContent", json=body, headers=GEMINI_AUTH).json()
    reply = default_reply("Hello there")
    (candidate,) = data["candidates"]
    assert candidate == {
        "content": {"parts": [{"text": reply}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }
    prompt = prompt_tokens("gemini", body)
    meta = data["usageMetadata"]
    assert meta["promptTokenCount"] == prompt
    assert meta["candidatesTokenCount"] == count_output_tokens(reply)
    assert meta["thoughtsTokenCount"] == 7 and meta["cachedContentTokenCount"] == 2
    assert meta["totalTokenCount"] == prompt + count_output_tokens(reply) + 7
    assert data["modelVersion"] == "gemini-2.5-flash" and data["responseId"]
    rec = mock.last_request
    assert rec is not None and rec.usage is not None
    assert rec.usage.output_tokens == count_output_tokens(reply) + 7


def test_gemini_stream_sse(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="a b c d", tokens_per_chunk=2)
    url = f"{GEMINI}:streamGenerateContent?alt=sse"
    with client.stream("POST", url, json=gemini_body(), headers=GEMINI_AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert "[DONE]" not in raw and raw.endswith("\r\n\r\n")
    chunks = sse_json(raw, eol="\r\n")
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["a b", " c d"]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    prompt = prompt_tokens("gemini", gemini_body())
    assert chunks[0]["usageMetadata"]["promptTokenCount"] == prompt
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == prompt + 4
    rec = mock.last_request
    assert rec is not None and rec.stream and rec.wire_usage == chunks[-1]["usageMetadata"]


def test_gemini_stream_json_array_and_tools(mock: MockProvider, client: httpx2.Client) -> None:
    url = f"{GEMINI}:streamGenerateContent"
    r = client.post(
        url, json=gemini_body(generationConfig={"maxOutputTokens": 3}), headers=GEMINI_AUTH
    )
    chunks = r.json()  # the whole stream is one JSON array
    assert isinstance(chunks, list) and len(chunks) == 3
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    tools = [{"functionDeclarations": [{"name": "find", "parameters": {"type": "object"}}]}]
    body = gemini_body('[[call {"q": 1}]]', tools=tools)
    data = client.post(f"{GEMINI}:generateContent", json=body, headers=GEMINI_AUTH).json()
    assert data["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "find", "args": {"q": 1}}}
    ]
    counted = client.post(f"{GEMINI}:countTokens", json=gemini_body(), headers=GEMINI_AUTH)
    assert counted.json()["totalTokens"] == prompt_tokens("gemini", gemini_body())


# --------------------------------------------------------------------------- faults


def test_fail_next_queue_then_success(mock: MockProvider, client: httpx2.Client) -> None:
    mock.fail_next(429, retry_after=2, times=3)
    assert mock.pending_faults == 3
    statuses = []
    for _ in range(4):
        r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["retry-after"] == "2" and r.headers["retry-after-ms"] == "2000"
            err = r.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests"
            assert set(err) == {"message", "type", "param", "code"}
    assert statuses == [429, 429, 429, 200]
    assert mock.pending_faults == 0
    assert [r.fault is not None for r in mock.requests] == [True, True, True, False]
    assert all(r.usage is None for r in mock.requests[:3])


def test_health_checks_do_not_take_faults(mock: MockProvider, client: httpx2.Client) -> None:
    mock.fail_next(500)
    assert client.get("/v1/models", headers=OPENAI_AUTH).status_code == 200
    assert (
        client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH).status_code
        == 500
    )


@pytest.mark.parametrize(
    ("status", "openai", "anthropic", "gemini"),
    [
        (429, (429, "rate_limit_exceeded"), (429, "rate_limit_error"), (429, "RESOURCE_EXHAUSTED")),
        (500, (500, None), (500, "api_error"), (500, "INTERNAL")),
        (503, (503, None), (503, "api_error"), (503, "UNAVAILABLE")),
        (529, (503, None), (529, "overloaded_error"), (503, "UNAVAILABLE")),
    ],
)
def test_error_bodies_per_provider(
    mock: MockProvider,
    client: httpx2.Client,
    status: int,
    openai: tuple[int, str | None],
    anthropic: tuple[int, str],
    gemini: tuple[int, str],
) -> None:
    mock.fail_next(status, retry_after=1, times=3)
    r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert (r.status_code, r.json()["error"]["code"]) == openai
    assert r.json()["error"]["message"]
    r = client.post("/v1/messages", json=claude_body(), headers=ANTHROPIC_AUTH)
    assert r.json()["type"] == "error"
    assert (r.status_code, r.json()["error"]["type"]) == anthropic
    assert r.headers["retry-after"] == "1" and r.headers["request-id"]
    r = client.post(f"{GEMINI}:generateContent", json=gemini_body(), headers=GEMINI_AUTH)
    err = r.json()["error"]
    assert (r.status_code, err["status"]) == gemini and err["code"] == r.status_code


def test_overloaded(mock: MockProvider, client: httpx2.Client) -> None:
    mock.overloaded(times=2)
    r = client.post("/v1/messages", json=claude_body(), headers=ANTHROPIC_AUTH)
    assert r.status_code == 529
    assert r.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"


def test_custom_error_code(mock: MockProvider, client: httpx2.Client) -> None:
    mock.fail_next(429, code="insufficient_quota")
    r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert r.json()["error"]["type"] == "insufficient_quota"
    assert r.json()["error"]["code"] == "insufficient_quota"


def test_standing_fault(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(fault=Fault(status=503))
    mock.fail_next(429)
    codes = [
        client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH).status_code
        for _ in range(3)
    ]
    assert codes == [429, 503, 503]
    mock.behave(fault=None)
    assert client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH).is_success


def test_latency_and_slow_first_byte(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(latency_s=0.1)
    mock.slow_first_byte(0.3)
    started = time.perf_counter()
    client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    slow = time.perf_counter() - started
    started = time.perf_counter()
    client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    normal = time.perf_counter() - started
    assert slow >= 0.4 and 0.1 <= normal < 0.35


def test_first_token_and_chunk_delays(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="a b c d", first_token_delay_s=0.2, chunk_delay_s=0.05)
    body = chat_body(stream=True)
    arrivals: list[float] = []
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body, headers=OPENAI_AUTH) as r:
        headers_at = time.perf_counter() - started
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - started)
    assert headers_at < 0.15  # headers come at once
    assert arrivals[0] >= 0.2  # first frame after first_token_delay_s
    assert len(arrivals) == 7  # role, 4 deltas, finish, [DONE]
    assert arrivals[-1] - arrivals[0] >= 6 * 0.05 * 0.9


def test_drop_stream_after(mock: MockProvider, client: httpx2.Client) -> None:
    mock.drop_stream_after(3)
    body = chat_body(stream=True, stream_options={"include_usage": True})
    got: list[str] = []
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client.stream("POST", "/v1/chat/completions", json=body, headers=OPENAI_AUTH) as r,
    ):
        got.extend(line for line in r.iter_lines() if line.startswith("data: "))
    assert len(got) == 3 and "[DONE]" not in "".join(got)
    rec = mock.last_request
    assert rec is not None and rec.frames_sent == 3 and not rec.completed and rec.usage is None
    # The client can go on (on a new connection).
    assert client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH).is_success


def test_drop_whole_body(mock: MockProvider, client: httpx2.Client) -> None:
    mock.drop_stream_after(0)
    with pytest.raises(httpx2.RemoteProtocolError):
        client.post("/v1/messages", json=claude_body(), headers=ANTHROPIC_AUTH)


def test_malformed_frame(mock: MockProvider, client: httpx2.Client) -> None:
    mock.malformed_frame_at(2)
    body = claude_body(stream=True)
    raw = client.post("/v1/messages", json=body, headers=ANTHROPIC_AUTH).text
    events = sse_events(raw)
    bad = []
    for i, (_, data) in enumerate(events):
        try:
            json.loads(data)
        except ValueError:
            bad.append(i)
    assert bad == [2]
    assert events[-1][0] == "message_stop"  # the stream went on
    mock.malformed_frame_at(0)
    r = client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_error_mid_stream(mock: MockProvider, client: httpx2.Client, provider: str) -> None:
    mock.error_mid_stream(2)
    if provider == "openai":
        raw = client.post(
            "/v1/chat/completions", json=chat_body(stream=True), headers=OPENAI_AUTH
        ).text
        events = sse_events(raw)
        assert json.loads(events[-1][1])["error"]["type"] == "server_error"
    elif provider == "anthropic":
        raw = client.post(
            "/v1/messages", json=claude_body(stream=True), headers=ANTHROPIC_AUTH
        ).text
        events = sse_events(raw)
        assert events[-1][0] == "error"
        assert json.loads(events[-1][1])["error"]["type"] == "overloaded_error"
    else:
        url = f"{GEMINI}:streamGenerateContent?alt=sse"
        raw = client.post(url, json=gemini_body(), headers=GEMINI_AUTH).text
        events = sse_events(raw, "\r\n")
        assert json.loads(events[-1][1])["error"]["status"] == "UNAVAILABLE"
    assert len(events) == 3
    rec = mock.last_request
    assert rec is not None and rec.completed and rec.fault is not None


def test_reset_restores_everything(mock: MockProvider, client: httpx2.Client) -> None:
    mock.behave(reply_text="x")
    mock.fail_next(500, times=5)
    mock.api_key = "zzz"
    client.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
    mock.reset()
    assert mock.requests == [] and mock.pending_faults == 0
    assert mock.behavior == Behavior() and mock.api_key is None


def test_expected_completion_matches_the_wire(mock: MockProvider, client: httpx2.Client) -> None:
    behavior = Behavior(reply_tokens=30, reasoning_tokens=2, cache_read_tokens=1)
    mock.behavior = behavior
    body = chat_body(max_tokens=12)
    expected = expected_completion("chat.completions", body, behavior)
    data = client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH).json()
    assert data["choices"][0]["message"]["content"] == expected.text
    assert data["usage"]["completion_tokens"] == expected.output_tokens + expected.reasoning_tokens
    assert data["usage"]["prompt_tokens"] == expected.prompt_tokens
    assert expected.finish == "length"


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_requests(mock: MockProvider) -> None:
    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx2.AsyncClient(base_url=mock.url, timeout=30, limits=limits) as ac:

        async def one(i: int) -> str:
            body = chat_body(f"request {i}", stream=i % 2 == 0)
            r = await ac.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH)
            assert r.status_code == 200
            if i % 2 == 0:
                return "".join(
                    c["choices"][0]["delta"].get("content") or "" for c in sse_json(r.text)
                )
            return str(r.json()["choices"][0]["message"]["content"])

        replies = await asyncio.gather(*(one(i) for i in range(100)))
    assert replies == [default_reply(f"request {i}") for i in range(100)]
    records = mock.requests
    assert len(records) == 100 and all(r.completed for r in records)
    assert sorted(r.seq for r in records) == [r.seq for r in records]


async def test_200_connections_are_served_in_parallel(mock: MockProvider) -> None:
    mock.behave(latency_s=0.5)
    limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx2.AsyncClient(base_url=mock.url, timeout=30, limits=limits) as ac:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                ac.post("/v1/chat/completions", json=chat_body(), headers=OPENAI_AUTH)
                for _ in range(200)
            )
        )
        elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in results)
    assert elapsed < 20.0  # 200 x 0.5 s serially would be 100 s (margin for a loaded machine)
    assert len({r.client for r in mock.requests}) > 100


# --------------------------------------------------------------------------- serve()


def test_serve_prints_urls_and_stops() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=serve, kwargs={"out": out, "stop_event": stop}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while "Ctrl+C" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    text = out.getvalue()
    url = text.split("listening on ")[1].split()[0]
    assert f"base_url={url}/v1" in text and f"base_url={url}/v1beta" in text
    assert httpx2.get(url + "/v1/models", headers=OPENAI_AUTH).status_code == 200
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


# --------------------------------------------------------------------------- official SDKs


def test_openai_sdk_parses_everything(mock: MockProvider) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=mock.base_url("openai"), api_key="sk-test", max_retries=0)
    mock.behave(cache_read_tokens=1, reasoning_tokens=2)
    done = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )
    assert done.choices[0].message.content == default_reply("Hello")
    assert done.usage is not None and done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 1
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == default_reply("Hello")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8 + 2
    with sdk.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": 'go [[call:get_weather {"city": "Rome"}]]'}],
        tools=[WEATHER_TOOL],
    ) as helper:
        final = helper.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}
    # Embeddings: the SDK asks for base64 and decodes it.
    emb = sdk.embeddings.create(model="text-embedding-3-small", input=["hi"], dimensions=8)
    assert emb.data[0].embedding == pytest.approx(embedding_vector("hi", 8))
    assert mock.last_request is not None
    assert mock.last_request.body["encoding_format"] == "base64"
    response = sdk.responses.create(model="gpt-4o", input="Hi there")
    assert response.output_text == default_reply("Hi there")
    with sdk.responses.stream(model="gpt-4o", input="Hi there") as rstream:
        assert rstream.get_final_response().output_text == default_reply("Hi there")
    assert sdk.models.list().data[0].id
    mock.rate_limit(retry_after=0.01)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    # With retries the SDK honours retry-after and succeeds.
    retrying = openai.OpenAI(base_url=mock.base_url("openai"), api_key="sk-test", max_retries=2)
    mock.clear_requests()
    mock.fail_next(503, retry_after=0.01, times=2)
    ok = retrying.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].finish_reason == "stop"
    assert [r.status for r in mock.requests] == [503, 503, 200]


def test_anthropic_sdk_parses_everything(mock: MockProvider) -> None:
    anthropic = pytest.importorskip("anthropic")
    sdk = anthropic.Anthropic(base_url=mock.base_url("anthropic"), api_key="sk-ant", max_retries=0)
    mock.behave(cache_read_tokens=2)
    message = sdk.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.content[0].text == default_reply("Hello")
    assert message.usage.cache_read_input_tokens == 2
    assert message.usage.input_tokens == message_tokens("Hello") - 2
    with sdk.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == default_reply("Hello")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == count_output_tokens(streamed)
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    with sdk.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=100,
        tools=[tool],
        messages=[{"role": "user", "content": 'go [[call {"city": "Rome", "n": [1, 2]}]]'}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Rome", "n": [1, 2]}
    counted = sdk.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hello"}]
    )
    assert counted.input_tokens == message_tokens("Hello")
    mock.overloaded()
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        sdk.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert excinfo.value.status_code == 529
    mock.error_mid_stream(3)
    with (
        pytest.raises(anthropic.APIStatusError),
        sdk.messages.stream(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        list(stream)
