"""Google Gemini's wire format: generateContent, streamGenerateContent, countTokens, models.

Reference: https://ai.google.dev/api/generate-content and
https://ai.google.dev/gemini-api/docs/troubleshooting (errors). A stream with
``?alt=sse`` is Server-Sent Events (``data:`` lines ended by CRLF, as Google's
servers send them; no ``[DONE]``); without it, a JSON array written piece by
piece. ``candidatesTokenCount`` excludes ``thoughtsTokenCount``;
``promptTokenCount`` includes ``cachedContentTokenCount``.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from typing import Any

from aiscope.record import Usage
from aiscope.testing._frames import Frame, Headers, Outcome, Rendered, dumps, random_id
from aiscope.testing.plan import Completion, Finish, PromptInfo, group
from aiscope.testing.tokens import tool_names

PROVIDER = "gemini"
#: The models ``GET /v1beta/models`` lists.
MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")

_FINISH: dict[Finish, str] = {
    "stop": "STOP",
    "stop_sequence": "STOP",
    "length": "MAX_TOKENS",
    "tool_call": "STOP",
}

# status -> (status name, message)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


def response_headers() -> Headers:
    """The headers of every Gemini response."""
    return [("x-goog-request-id", random_id("", 16)), ("server-timing", "gfet4t7; dur=1")]


def _error_parts(status: int, code: str | None, message: str | None) -> tuple[int, str, str]:
    if status == 529:
        status = 503
    default = ("INTERNAL", "Internal error.") if status >= 500 else None
    name, default_message = _ERRORS.get(status, default or ("FAILED_PRECONDITION", "Error."))
    return status, code or name, message or default_message


def error_body(status: int, name: str, message: str) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": status, "message": message, "status": name}}


def error_outcome(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Outcome:
    """An error response; status 529 (Anthropic's "overloaded") becomes 503 UNAVAILABLE."""
    status, name, text = _error_parts(status, code, message)
    body = error_body(status, name, text)
    if details is not None:
        body["error"]["details"] = details
    headers = response_headers()
    if retry_after is not None:
        seconds = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        headers.append(("retry-after", seconds))
        if status == 429:
            body["error"]["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}
            ]
    return Outcome(status, headers, dumps(body).encode())


def stream_error_frame(
    status: int, code: str | None, message: str | None, *, sse: bool = True, first: bool = False
) -> Frame:
    """An ``{"error": ...}`` object as the next stream frame (``first``: of a JSON array)."""
    status, name, text = _error_parts(status, code, message)
    data = dumps(error_body(status, name, text))
    if sse:
        return Frame(data, crlf=True)
    return Frame(("[" if first else ",\r\n") + data, sse=False)


def auth_error(
    headers: Mapping[str, str], query: Mapping[str, str], api_key: str | None
) -> Outcome | None:
    """403 without ``x-goog-api-key`` / ``?key=`` / Bearer token; 400 for a wrong key."""
    key = headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip()
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return error_outcome(
            403,
            message="Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if api_key is not None and key != api_key:
        return error_outcome(
            400,
            message="API key not valid. Please pass a valid API key.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        )
    return None


def invalid(message: str) -> Outcome:
    """A 400 ``INVALID_ARGUMENT``."""
    return error_outcome(400, message=message)


# --------------------------------------------------------------------------- reading


def parts_text(content: Any) -> str:
    """The text of a ``Content`` (or a bare string): text parts, function calls'
    name + args JSON, function responses' name + response JSON."""
    if isinstance(content, str):
        return content
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    out: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            out.append(part["text"])
        for key, inner in (("functionCall", "args"), ("functionResponse", "response")):
            call = part.get(key)
            if isinstance(call, dict):
                out.append(str(call.get("name", "")) + json.dumps(call.get(inner, {})))
    return "".join(out)


def validate(body: Any) -> Outcome | None:
    """A 400 for a body generateContent would refuse, else None."""
    if not isinstance(body, dict):
        return invalid("Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return invalid("* GenerateContentRequest.contents: contents is not specified\n")
    if not all(isinstance(c, dict) and isinstance(c.get("parts"), list) for c in contents):
        return invalid("* GenerateContentRequest.contents: parts must be a list\n")
    return None


def _declared_names(tool: dict[str, Any]) -> list[Any]:
    decls = tool.get("functionDeclarations") or tool.get("function_declarations") or ()
    return [d["name"] for d in decls if isinstance(d, dict) and "name" in d]


def prompt_info(body: Mapping[str, Any], model: str) -> PromptInfo:
    """generateContent: ``systemInstruction`` is one message; each of ``contents`` is
    one (see :func:`parts_text`); plus the tools' JSON."""
    texts: list[str] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if system:
        texts.append(parts_text(system))
    last_user = ""
    contents = body["contents"]
    for content in contents:
        text = parts_text(content)
        texts.append(text)
        if content.get("role", "user") == "user" and any(
            isinstance(p, dict) and "text" in p for p in content["parts"]
        ):
            last_user = text
    tools = body.get("tools")
    names = tool_names(tools, texts, _declared_names)
    after_tool = any(isinstance(p, dict) and "functionResponse" in p for p in contents[-1]["parts"])
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    stop = config.get("stopSequences", config.get("stop_sequences"))
    return PromptInfo(
        model=model,
        texts=tuple(texts),
        last_user_text=last_user,
        after_tool_result=after_tool,
        tool_names=names,
        max_output_tokens=max_tokens if isinstance(max_tokens, int) else None,
        stop=tuple(s for s in stop if isinstance(s, str)) if isinstance(stop, list) else (),
    )


# --------------------------------------------------------------------------- writing


def usage_metadata(c: Completion, *, final: bool = True) -> dict[str, Any]:
    """``usageMetadata``: the complete one, or (``final`` False) the prompt-only one
    that intermediate stream chunks carry."""
    meta: dict[str, Any] = {"promptTokenCount": c.prompt_tokens}
    if final:
        meta["candidatesTokenCount"] = c.output_tokens
    meta["totalTokenCount"] = c.prompt_tokens + (
        c.output_tokens + c.reasoning_tokens if final else 0
    )
    if c.cache_read_tokens:
        meta["cachedContentTokenCount"] = c.cache_read_tokens
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": c.prompt_tokens}]
    if final and c.reasoning_tokens:
        meta["thoughtsTokenCount"] = c.reasoning_tokens
    return meta


def sent_usage(c: Completion) -> Usage:
    """aiscope's view of the usage: output includes the thoughts."""
    return Usage(
        input_tokens=c.prompt_tokens,
        output_tokens=c.output_tokens + c.reasoning_tokens,
        cache_read_tokens=c.cache_read_tokens,
        reasoning_tokens=c.reasoning_tokens,
    )


def _response_id() -> str:
    raw = random.getrandbits(128).to_bytes(16, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")[:22]


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


def _tool_call(c: Completion) -> dict[str, Any] | None:
    if c.tool_call is None:
        return None
    return {
        "name": c.tool_call.name,
        "arguments": c.tool_call.arguments,
        "args": c.tool_call.arguments_dict(),
    }


def generate_content(c: Completion) -> Rendered:
    """A whole ``GenerateContentResponse``."""
    response_id = _response_id()
    call = _tool_call(c)
    part = (
        {"functionCall": {"name": call["name"], "args": call["args"]}}
        if call is not None
        else {"text": c.text}
    )
    finish = _FINISH[c.finish]
    meta = usage_metadata(c)
    body = {
        "candidates": [_candidate([part], finish)],
        "usageMetadata": meta,
        "modelVersion": c.model,
        "responseId": response_id,
    }
    return Rendered(response_id, finish, sent_usage(c), meta, body=body, tool_call=call)


def stream_generate_content(c: Completion, *, sse: bool, tokens_per_chunk: int) -> Rendered:
    """Stream chunks, each a ``GenerateContentResponse`` with a text part; the last
    one carries ``finishReason`` and the complete ``usageMetadata``."""
    response_id = _response_id()
    call = _tool_call(c)
    finish = _FINISH[c.finish]
    parts_list: list[list[dict[str, Any]]]
    if call is not None:
        parts_list = [[{"functionCall": {"name": call["name"], "args": call["args"]}}]]
    else:
        texts = group(c.pieces, tokens_per_chunk) or [""]
        parts_list = [[{"text": t}] for t in texts]
    usage = sent_usage(c)
    frames: list[Frame] = []
    for i, parts in enumerate(parts_list):
        last = i == len(parts_list) - 1
        meta = usage_metadata(c, final=last)
        obj = {
            "candidates": [_candidate(parts, finish if last else None)],
            "usageMetadata": meta,
            "modelVersion": c.model,
            "responseId": response_id,
        }
        data = dumps(obj)
        extra: dict[str, Any] = {"usage": usage, "wire_usage": meta} if last else {}
        if sse:
            frames.append(Frame(data, crlf=True, **extra))
        else:
            frames.append(Frame(("[" if i == 0 else ",\r\n") + data, sse=False, **extra))
    if not sse:
        frames.append(Frame("]", sse=False))
    return Rendered(response_id, finish, usage, usage_metadata(c), frames=frames, tool_call=call)


def count_tokens(c: Completion) -> dict[str, Any]:
    """``:countTokens``: ``{"totalTokens": N}``."""
    return {
        "totalTokens": c.prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": c.prompt_tokens}],
    }


def model_object(name: str) -> dict[str, Any]:
    """One ``Model`` resource."""
    model_id = name.removeprefix("models/")
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": model_id,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def models_list() -> dict[str, Any]:
    """``GET /v1beta/models``."""
    return {"models": [model_object(m) for m in MODELS]}
