"""OpenAI's wire formats: Chat Completions, Responses, Embeddings, Models, errors.

Reference: https://platform.openai.com/docs/api-reference (chat/create,
chat/streaming, responses/create, responses-streaming, embeddings/create, models).
The field sets follow the response objects of the official ``openai`` SDK.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiscope.record import Usage
from aiscope.testing._frames import (
    Frame,
    Headers,
    Outcome,
    Rendered,
    dumps,
    json_frame,
    random_id,
)
from aiscope.testing.plan import Completion, Finish, PromptInfo, group
from aiscope.testing.tokens import text_tokens, tool_names

PROVIDER = "openai"
#: The ``system_fingerprint`` the mock reports.
SYSTEM_FINGERPRINT = "fp_mock0001"
#: The models ``GET /models`` lists.
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini", "text-embedding-3-small")
#: Values of the rate-limit headers.
RATE_LIMIT_REQUESTS = 10_000
RATE_LIMIT_TOKENS = 2_000_000

_FINISH: dict[Finish, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_call": "tool_calls",
}

# status -> (type, code, message)
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    408: ("server_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 10000, Used 10000, "
        "Requested 1. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}


# --------------------------------------------------------------------------- errors


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def response_headers(prompt_tokens: int = 0) -> Headers:
    """``x-request-id``, ``openai-*`` and the six ``x-ratelimit-*`` headers."""
    return [
        ("x-request-id", random_id("req_", 32)),
        ("openai-version", "2020-10-01"),
        ("openai-processing-ms", "1"),
        ("x-ratelimit-limit-requests", str(RATE_LIMIT_REQUESTS)),
        ("x-ratelimit-remaining-requests", str(RATE_LIMIT_REQUESTS - 1)),
        ("x-ratelimit-limit-tokens", str(RATE_LIMIT_TOKENS)),
        ("x-ratelimit-remaining-tokens", str(max(RATE_LIMIT_TOKENS - prompt_tokens, 0))),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", "0s"),
    ]


def retry_headers(retry_after: float | None) -> Headers:
    """``retry-after`` (seconds) and ``retry-after-ms``, or nothing."""
    if retry_after is None:
        return []
    seconds = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    return [("retry-after", seconds), ("retry-after-ms", str(round(retry_after * 1000)))]


def error_outcome(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
    param: str | None = None,
) -> Outcome:
    """An error response; status 529 (Anthropic's "overloaded") becomes 503."""
    if status == 529:
        status = 503
    default = ("server_error", None, "Server error.") if status >= 500 else None
    type_, default_code, default_message = _ERRORS.get(
        status, default or ("invalid_request_error", None, "Request failed.")
    )
    if code is not None:
        default_code = code
        if code == "insufficient_quota":
            type_ = "insufficient_quota"
            default_message = (
                "You exceeded your current quota, please check your plan and billing details."
            )
    body = error_body(message or default_message, type_, param=param, code=default_code)
    return Outcome(
        status,
        response_headers() + retry_headers(retry_after),
        dumps(body).encode(),
    )


def stream_error_frame(status: int, code: str | None, message: str | None) -> Frame:
    """The in-stream error: a ``data:`` frame holding an ``{"error": ...}`` object."""
    outcome = error_outcome(status, code=code, message=message)
    return Frame(outcome.body.decode())


def auth_error(headers: Mapping[str, str], api_key: str | None) -> Outcome | None:
    """401 unless ``Authorization: Bearer KEY`` is present (and equals ``api_key``, if set)."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return error_outcome(
            401,
            code=None,
            message="You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if api_key is not None and key != api_key:
        shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "****"
        return error_outcome(
            401,
            code="invalid_api_key",
            message=f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        )
    return None


def invalid(message: str, param: str | None = None) -> Outcome:
    """A 400 ``invalid_request_error``."""
    return error_outcome(400, message=message, param=param)


# --------------------------------------------------------------------------- reading


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stop(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(s for s in value if isinstance(s, str))
    return ()


def validate_chat(body: Any) -> Outcome | None:
    """A 400 for a body Chat Completions would refuse, else None."""
    if not isinstance(body, dict):
        return invalid("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return invalid("[] is too short - 'messages'", "messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return invalid("Invalid value for 'messages': each message needs a role.", "messages")
    return None


def chat_prompt_info(body: Mapping[str, Any]) -> PromptInfo:
    """Chat Completions: one text per message (content, plus tool calls' name and
    arguments), plus the tools' JSON."""
    texts: list[str] = []
    last_user = ""
    for m in body["messages"]:
        text = content_text(m.get("content"))
        for call in m.get("tool_calls") or ():
            function = (call.get("function") or {}) if isinstance(call, dict) else {}
            text += str(function.get("name", "")) + str(function.get("arguments", ""))
        texts.append(text)
        if m.get("role") == "user":
            last_user = text
    tools = body.get("tools")
    names = tool_names(tools, texts, _function_name)
    max_tokens = _int_or_none(body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = _int_or_none(body.get("max_tokens"))
    return PromptInfo(
        model=body["model"],
        texts=tuple(texts),
        last_user_text=last_user,
        after_tool_result=body["messages"][-1].get("role") in ("tool", "function"),
        tool_names=names,
        max_output_tokens=max_tokens,
        stop=_stop(body.get("stop")),
    )


def _responses_function_name(tool: dict[str, Any]) -> list[Any]:
    return [tool["name"]] if tool.get("type") == "function" and "name" in tool else []


def _function_name(tool: dict[str, Any]) -> list[Any]:
    fn = tool.get("function")
    return [fn["name"]] if isinstance(fn, dict) and "name" in fn else []


# --------------------------------------------------------------------------- chat completions


def chat_usage(c: Completion) -> tuple[dict[str, Any], Usage]:
    """The ``usage`` object of a chat completion, and the same as aiscope's Usage."""
    completion = c.output_tokens + c.reasoning_tokens
    wire = {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": c.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": c.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": c.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    usage = Usage(
        input_tokens=c.prompt_tokens,
        output_tokens=completion,
        cache_read_tokens=c.cache_read_tokens,
        reasoning_tokens=c.reasoning_tokens,
    )
    return wire, usage


def _tool_call_dict(c: Completion) -> dict[str, Any] | None:
    if c.tool_call is None:
        return None
    return {
        "id": random_id("call_"),
        "name": c.tool_call.name,
        "arguments": c.tool_call.arguments,
    }


def chat_completion(c: Completion) -> Rendered:
    """A whole ``chat.completion`` object."""
    response_id = random_id("chatcmpl-", 29)
    call = _tool_call_dict(c)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if call else c.text,
        "refusal": None,
        "annotations": [],
    }
    if call:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ]
    wire_usage, usage = chat_usage(c)
    finish = _FINISH[c.finish]
    body = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": c.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": wire_usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return Rendered(response_id, finish, usage, wire_usage, body=body, tool_call=call)


def chat_stream(c: Completion, *, include_usage: bool, tokens_per_chunk: int) -> Rendered:
    """``chat.completion.chunk`` frames: role, deltas, finish, [usage], ``[DONE]``."""
    response_id = random_id("chatcmpl-", 29)
    created = int(time.time())
    call = _tool_call_dict(c)
    finish = _FINISH[c.finish]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> Frame:
        obj: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": c.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            obj["usage"] = None
        return json_frame(obj)

    frames: list[Frame] = []
    if call and c.tool_call:
        first_call = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        frames.append(
            chunk(
                {"role": "assistant", "content": None, "tool_calls": [first_call], "refusal": None}
            )
        )
        for piece in group(c.tool_call.pieces, tokens_per_chunk):
            frames.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        frames.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in group(c.pieces, tokens_per_chunk):
            frames.append(chunk({"content": piece}))
    frames.append(chunk({}, finish))
    wire_usage, usage = chat_usage(c)
    if include_usage:
        obj = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": c.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": wire_usage,
        }
        frames.append(json_frame(obj, usage=usage, wire_usage=wire_usage))
    frames.append(Frame("[DONE]"))
    return Rendered(response_id, finish, usage, wire_usage, frames=frames, tool_call=call)


# --------------------------------------------------------------------------- responses API


def validate_responses(body: Any) -> Outcome | None:
    """A 400 for a body the Responses API would refuse, else None."""
    if not isinstance(body, dict):
        return invalid("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("Missing required parameter: 'model'.", "model")
    if not isinstance(body.get("input"), str | list):
        return invalid("Missing required parameter: 'input'.", "input")
    return None


def responses_prompt_info(body: Mapping[str, Any]) -> PromptInfo:
    """Responses API: ``instructions`` is one message; ``input`` is one message (a
    string) or one per item (message content, function call name + arguments,
    function call output); plus the tools' JSON."""
    texts: list[str] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        texts.append(instructions)
    last_user = ""
    after_tool = False
    items = body["input"]
    if isinstance(items, str):
        texts.append(items)
        last_user = items
    else:
        for item in items:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "function_call_output":
                output = item.get("output")
                text = output if isinstance(output, str) else content_text(output)
            elif kind == "function_call":
                text = str(item.get("name", "")) + str(item.get("arguments", ""))
            else:
                text = content_text(item.get("content"))
                if item.get("role") == "user":
                    last_user = text
            texts.append(text)
            after_tool = kind == "function_call_output"
    tools = body.get("tools")
    names = tool_names(
        tools, texts, lambda t: [t["name"]] if t.get("type") == "function" and "name" in t else []
    )
    return PromptInfo(
        model=body["model"],
        texts=tuple(texts),
        last_user_text=last_user,
        after_tool_result=after_tool,
        tool_names=names,
        max_output_tokens=_int_or_none(body.get("max_output_tokens")),
    )


def responses_usage(c: Completion) -> tuple[dict[str, Any], Usage]:
    """The ``usage`` object of a Responses API response, and aiscope's Usage."""
    output = c.output_tokens + c.reasoning_tokens
    wire = {
        "input_tokens": c.prompt_tokens,
        "input_tokens_details": {"cached_tokens": c.cache_read_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
        "total_tokens": c.prompt_tokens + output,
    }
    usage = Usage(
        input_tokens=c.prompt_tokens,
        output_tokens=output,
        cache_read_tokens=c.cache_read_tokens,
        reasoning_tokens=c.reasoning_tokens,
    )
    return wire, usage


class _ResponsesBuilder:
    """Builds the items and envelopes of one Responses API answer."""

    def __init__(self, body: Mapping[str, Any], c: Completion) -> None:
        self.body = body
        self.c = c
        self.id = "resp_" + random.getrandbits(200).to_bytes(25, "big").hex()
        self.created = int(time.time())
        self.complete = c.finish != "length"
        self.reasoning_id = random_id("rs_", 40) if c.reasoning_tokens else None
        self.item_id = random_id("fc_" if c.tool_call else "msg_", 40)
        self.call_id = random_id("call_") if c.tool_call else None

    @property
    def status(self) -> str:
        return "completed" if self.complete else "incomplete"

    def reasoning_item(self) -> dict[str, Any]:
        return {"id": self.reasoning_id, "type": "reasoning", "summary": []}

    def text_part(self, text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def main_item(self, done: bool) -> dict[str, Any]:
        status = self.status if done else "in_progress"
        if self.c.tool_call is not None:
            return {
                "id": self.item_id,
                "type": "function_call",
                "status": status,
                "arguments": self.c.tool_call.arguments if done else "",
                "call_id": self.call_id,
                "name": self.c.tool_call.name,
            }
        return {
            "id": self.item_id,
            "type": "message",
            "status": status,
            "content": [self.text_part(self.c.text)] if done else [],
            "role": "assistant",
        }

    def output(self) -> list[dict[str, Any]]:
        items = [self.reasoning_item()] if self.reasoning_id else []
        return [*items, self.main_item(done=True)]

    def envelope(self, *, final: bool, usage: Mapping[str, Any] | None) -> dict[str, Any]:
        b = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": self.status if final else "in_progress",
            "background": False,
            "error": None,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if final and not self.complete else None
            ),
            "instructions": b.get("instructions"),
            "max_output_tokens": b.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.c.model,
            "output": self.output() if final else [],
            "parallel_tool_calls": b.get("parallel_tool_calls", True),
            "previous_response_id": b.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": b.get("store", True),
            "temperature": b.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": b.get("tool_choice", "auto"),
            "tools": b.get("tools", []),
            "top_logprobs": 0,
            "top_p": b.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": b.get("metadata") or {},
        }

    def tool_call(self) -> dict[str, Any] | None:
        if self.c.tool_call is None:
            return None
        return {
            "id": self.call_id,
            "name": self.c.tool_call.name,
            "arguments": self.c.tool_call.arguments,
        }


def responses_response(body: Mapping[str, Any], c: Completion) -> Rendered:
    """A whole ``response`` object."""
    r = _ResponsesBuilder(body, c)
    wire_usage, usage = responses_usage(c)
    return Rendered(
        r.id,
        r.status,
        usage,
        wire_usage,
        body=r.envelope(final=True, usage=wire_usage),
        tool_call=r.tool_call(),
    )


def responses_stream(body: Mapping[str, Any], c: Completion, *, tokens_per_chunk: int) -> Rendered:
    """The typed events: ``response.created`` … ``response.output_text.delta`` …
    ``response.completed`` (``response.incomplete`` when cut by max_output_tokens)."""
    r = _ResponsesBuilder(body, c)
    frames: list[Frame] = []

    def event(type_: str, *, usage: Usage | None = None, **fields: Any) -> None:
        obj = {"type": type_, "sequence_number": len(frames), **fields}
        wire = obj["response"]["usage"] if usage is not None else None
        frames.append(json_frame(obj, type_, usage=usage, wire_usage=wire))

    event("response.created", response=r.envelope(final=False, usage=None))
    event("response.in_progress", response=r.envelope(final=False, usage=None))
    index = 0
    if r.reasoning_id:
        event("response.output_item.added", output_index=0, item=r.reasoning_item())
        event("response.output_item.done", output_index=0, item=r.reasoning_item())
        index = 1
    event("response.output_item.added", output_index=index, item=r.main_item(done=False))
    if c.tool_call is not None:
        for piece in group(c.tool_call.pieces, tokens_per_chunk):
            event(
                "response.function_call_arguments.delta",
                item_id=r.item_id,
                output_index=index,
                delta=piece,
            )
        event(
            "response.function_call_arguments.done",
            item_id=r.item_id,
            output_index=index,
            name=c.tool_call.name,
            arguments=c.tool_call.arguments,
        )
    else:
        where: dict[str, Any] = {"item_id": r.item_id, "output_index": index, "content_index": 0}
        event("response.content_part.added", **where, part=r.text_part(""))
        for piece in group(c.pieces, tokens_per_chunk):
            event("response.output_text.delta", **where, delta=piece, logprobs=[])
        event("response.output_text.done", **where, text=c.text, logprobs=[])
        event("response.content_part.done", **where, part=r.text_part(c.text))
    event("response.output_item.done", output_index=index, item=r.main_item(done=True))
    wire_usage, usage = responses_usage(c)
    final = "response.completed" if r.complete else "response.incomplete"
    event(final, usage=usage, response=r.envelope(final=True, usage=wire_usage))
    return Rendered(r.id, r.status, usage, wire_usage, frames=frames, tool_call=r.tool_call())


# --------------------------------------------------------------------------- embeddings


def validate_embeddings(body: Any) -> Outcome | None:
    """A 400 for a body the Embeddings API would refuse, else None."""
    if not isinstance(body, dict):
        return invalid("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("you must provide a model parameter")
    inputs = embedding_inputs(body)
    if not inputs:
        return invalid("'$.input' is invalid. Please check the API reference.", "input")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return invalid("encoding_format must be 'float' or 'base64'.", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (_int_or_none(dims) is None or dims < 1):
        return invalid("dimensions must be a positive integer.", "dimensions")
    return None


def embedding_inputs(body: Mapping[str, Any]) -> list[str | list[int]]:
    """The inputs of an embeddings request: strings, or token-id arrays."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(v, int) for v in value):
        return [list(value)]
    return [v for v in value if isinstance(v, str | list)]


def embedding_vector(text: str | Sequence[int], dimensions: int) -> list[float]:
    """The mock's deterministic unit vector for ``text`` (values exact in float32)."""
    key = text if isinstance(text, str) else ",".join(str(t) for t in text)
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embedding_tokens(item: str | Sequence[int]) -> int:
    """Input tokens of one embedding input: ``ceil(chars/4)``, or a token array's length."""
    return text_tokens(item) if isinstance(item, str) else len(item)


def embeddings_response(body: Mapping[str, Any], dimensions: int, model: str) -> Rendered:
    """A ``list`` of ``embedding`` objects (base64 little-endian float32 on request)."""
    dims = _int_or_none(body.get("dimensions")) or dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for i, item in enumerate(embedding_inputs(body)):
        vector = embedding_vector(item, dims)
        tokens += embedding_tokens(item)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    wire_usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    result = {"object": "list", "data": data, "model": model, "usage": wire_usage}
    return Rendered("", "", Usage(input_tokens=tokens), wire_usage, body=result)


# --------------------------------------------------------------------------- models


def model_object(model_id: str) -> dict[str, Any]:
    """One ``model`` object."""
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "aiscope-mock"}


def models_list() -> dict[str, Any]:
    """``GET /models``: a ``list`` of :data:`MODELS`."""
    return {"object": "list", "data": [model_object(m) for m in MODELS]}
