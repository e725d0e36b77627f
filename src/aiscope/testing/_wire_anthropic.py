"""Anthropic's wire format: the Messages API (whole and streamed), count_tokens, models.

Reference: https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/streaming and
https://docs.anthropic.com/en/api/errors. Anthropic's ``input_tokens`` excludes the
tokens read from or written to the prompt cache, which have their own fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiscope.record import Usage
from aiscope.testing._frames import Frame, Headers, Outcome, Rendered, dumps, json_frame, random_id
from aiscope.testing.plan import Completion, Finish, PromptInfo, group
from aiscope.testing.tokens import tool_names

PROVIDER = "anthropic"
#: The models ``GET /v1/models`` lists.
MODELS = ("claude-haiku-4-5", "claude-opus-4-6", "claude-opus-4-1")
RATE_LIMIT_REQUESTS = 4_000
RATE_LIMIT_TOKENS = 2_000_000

_STOP_REASON: dict[Finish, str] = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_call": "tool_use",
}

# status -> (error type, message)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def response_headers(prompt_tokens: int = 0) -> Headers:
    """``request-id`` and the ``anthropic-ratelimit-*`` headers."""
    reset = "2030-01-01T00:00:00Z"
    return [
        ("request-id", random_id("req_011C", 20)),
        ("anthropic-ratelimit-requests-limit", str(RATE_LIMIT_REQUESTS)),
        ("anthropic-ratelimit-requests-remaining", str(RATE_LIMIT_REQUESTS - 1)),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-tokens-limit", str(RATE_LIMIT_TOKENS)),
        ("anthropic-ratelimit-tokens-remaining", str(max(RATE_LIMIT_TOKENS - prompt_tokens, 0))),
        ("anthropic-ratelimit-tokens-reset", reset),
    ]


def _error_parts(status: int, code: str | None, message: str | None) -> tuple[str, str]:
    default = ("api_error", "Internal server error") if status >= 500 else None
    type_, default_message = _ERRORS.get(status, default or ("invalid_request_error", "Error"))
    return code or type_, message or default_message


def error_body(type_: str, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": type_, "message": message}}


def error_outcome(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> Outcome:
    """An error response in Anthropic's format (``retry-after`` in seconds if given)."""
    type_, text = _error_parts(status, code, message)
    headers = response_headers()
    if retry_after is not None:
        seconds = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        headers.append(("retry-after", seconds))
    if status >= 500 or status == 429:
        headers.append(("x-should-retry", "true"))
    return Outcome(status, headers, dumps(error_body(type_, text)).encode())


def stream_error_frame(status: int, code: str | None, message: str | None) -> Frame:
    """The in-stream ``event: error`` frame."""
    type_, text = _error_parts(status, code, message)
    return json_frame(error_body(type_, text), "error")


def invalid(message: str) -> Outcome:
    """A 400 ``invalid_request_error``."""
    return error_outcome(400, message=message)


def auth_error(headers: Mapping[str, str], api_key: str | None) -> Outcome | None:
    """401 without ``x-api-key`` (or a Bearer token); 400 without ``anthropic-version``."""
    key = headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return error_outcome(401, message="x-api-key header is required")
    if api_key is not None and key != api_key:
        return error_outcome(401, message="invalid x-api-key")
    if not headers.get("anthropic-version"):
        return invalid("anthropic-version: header is required")
    return None


# --------------------------------------------------------------------------- reading


def block_text(content: Any) -> str:
    """The text of a ``content`` (string or blocks): text blocks' ``text``, tool_use
    blocks' name + input JSON, tool_result blocks' content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    out: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append(block["text"])
        elif kind == "tool_use":
            out.append(str(block.get("name", "")) + json.dumps(block.get("input", {})))
        elif kind == "tool_result":
            out.append(block_text(block.get("content")))
    return "".join(out)


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def validate(body: Any) -> Outcome | None:
    """A 400 for a body the Messages API would refuse, else None."""
    if not isinstance(body, dict):
        return invalid("Request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return invalid("max_tokens: Field required")
    if max_tokens < 1:
        return invalid("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return invalid("messages: Field required")
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        return invalid("messages: each message needs a role of 'user' or 'assistant'")
    return None


def validate_count(body: Any) -> Outcome | None:
    """A 400 for a count_tokens body (as :func:`validate`, without max_tokens)."""
    if isinstance(body, dict) and "max_tokens" not in body:
        body = {**body, "max_tokens": 1}
    return validate(body)


def prompt_info(body: Mapping[str, Any]) -> PromptInfo:
    """Messages API: ``system`` is one message; each message's blocks (see
    :func:`block_text`) are one; plus the tools' JSON."""
    texts: list[str] = []
    system = body.get("system")
    if system:
        texts.append(block_text(system))
    messages = body["messages"]
    last_user = ""
    for m in messages:
        texts.append(block_text(m.get("content")))
        if m.get("role") == "user":
            last_user = _user_text(m.get("content"))
    tools = body.get("tools")
    names = tool_names(tools, texts, lambda t: [t["name"]] if "name" in t else [])
    last = messages[-1].get("content")
    after_tool = (
        messages[-1].get("role") == "user"
        and isinstance(last, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last)
    )
    stop = body.get("stop_sequences")
    return PromptInfo(
        model=body["model"],
        texts=tuple(texts),
        last_user_text=last_user,
        after_tool_result=after_tool,
        tool_names=names,
        max_output_tokens=body["max_tokens"],
        stop=tuple(s for s in stop if isinstance(s, str)) if isinstance(stop, list) else (),
    )


# --------------------------------------------------------------------------- writing


def usage_of(c: Completion, *, output_tokens: int | None = None) -> dict[str, Any]:
    """The ``usage`` object: ``input_tokens`` excludes cache reads and writes."""
    return {
        "input_tokens": c.prompt_tokens - c.cache_read_tokens - c.cache_write_tokens,
        "cache_creation_input_tokens": c.cache_write_tokens,
        "cache_read_input_tokens": c.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": c.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": (
            c.output_tokens + c.reasoning_tokens if output_tokens is None else output_tokens
        ),
        "service_tier": "standard",
    }


def sent_usage(c: Completion) -> Usage:
    """aiscope's view of the usage: input includes cache reads and writes."""
    return Usage(
        input_tokens=c.prompt_tokens,
        output_tokens=c.output_tokens + c.reasoning_tokens,
        cache_read_tokens=c.cache_read_tokens,
        cache_write_tokens=c.cache_write_tokens,
        reasoning_tokens=c.reasoning_tokens,
    )


def _tool_call(c: Completion) -> dict[str, Any] | None:
    if c.tool_call is None:
        return None
    return {
        "id": random_id("toolu_01", 22),
        "name": c.tool_call.name,
        "arguments": c.tool_call.arguments,
        "input": c.tool_call.arguments_dict(),
    }


def _message(c: Completion, response_id: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": response_id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": None,
    }


def message(c: Completion) -> Rendered:
    """A whole ``message`` object."""
    response_id = random_id("msg_01", 22)
    call = _tool_call(c)
    if call is not None:
        block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]}
    else:
        block = {"type": "text", "text": c.text}
    body = _message(c, response_id, [block])
    stop_reason = _STOP_REASON[c.finish]
    wire_usage = usage_of(c)
    body.update(stop_reason=stop_reason, stop_sequence=c.stop_sequence, usage=wire_usage)
    return Rendered(response_id, stop_reason, sent_usage(c), wire_usage, body=body, tool_call=call)


def message_stream(c: Completion, *, tokens_per_chunk: int) -> Rendered:
    """The event stream: message_start, content_block_start, ping, content_block_delta…,
    content_block_stop, message_delta (stop_reason, output_tokens), message_stop."""
    response_id = random_id("msg_01", 22)
    call = _tool_call(c)
    stop_reason = _STOP_REASON[c.finish]
    start = _message(c, response_id, [])
    start["usage"] = usage_of(c, output_tokens=1)
    frames = [json_frame({"type": "message_start", "message": start}, "message_start")]
    if call is not None and c.tool_call is not None:
        block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p}
            for p in group(c.tool_call.pieces, tokens_per_chunk)
        ]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in group(c.pieces, tokens_per_chunk)]
    frames.append(
        json_frame(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        )
    )
    frames.append(json_frame({"type": "ping"}, "ping"))
    for delta in deltas:
        frames.append(
            json_frame(
                {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
            )
        )
    frames.append(json_frame({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    output = c.output_tokens + c.reasoning_tokens
    wire_usage = usage_of(c)
    delta_event = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": c.stop_sequence},
        "usage": {"output_tokens": output},
    }
    usage = sent_usage(c)
    frames.append(json_frame(delta_event, "message_delta", usage=usage, wire_usage=wire_usage))
    frames.append(json_frame({"type": "message_stop"}, "message_stop"))
    return Rendered(response_id, stop_reason, usage, wire_usage, frames=frames, tool_call=call)


def count_tokens(c: Completion) -> dict[str, Any]:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` (all prompt tokens)."""
    return {"input_tokens": c.prompt_tokens}


def models_list() -> dict[str, Any]:
    """``GET /v1/models`` in Anthropic's paginated format."""
    data = [model_object(m) for m in MODELS]
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


def model_object(model_id: str) -> dict[str, Any]:
    """One ``model`` object."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id.replace("-", " ").title(),
        "created_at": "2025-01-01T00:00:00Z",
    }
