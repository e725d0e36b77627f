"""The openai SDK (3.x; 2.x has the same classes): what each method's calls look like.

Chat Completions, Responses and Embeddings, sync and async, streaming and not.
A stream reports usage only in its final chunk, and only when the request asks
for it (``stream_options={"include_usage": True}``); without it, aiscope
estimates the tokens from the text it saw and marks the usage as estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiscope.capture import LLMCall
from aiscope.instrument._calls import request_id_of, set_counts, set_estimated
from aiscope.instrument._endpoint import Endpoint, chat_messages, messages_text, text_of
from aiscope.instrument._patch import Target

PROVIDER = "openai"


def _details(obj: Any, name: str, field: str) -> Any:
    details = getattr(obj, name, None)
    return getattr(details, field, 0) if details is not None else 0


def _set_usage(call: LLMCall, usage: Any, input_name: str, output_name: str) -> None:
    """Usage whose ``input_name`` counts cached tokens and ``output_name`` reasoning ones,
    with their ``*_details`` (the Chat Completions and Responses shapes)."""
    set_counts(
        call,
        getattr(usage, input_name, 0),
        getattr(usage, output_name, 0),
        _details(usage, input_name + "_details", "cached_tokens"),
        0,
        _details(usage, output_name + "_details", "reasoning_tokens"),
    )


def set_chat_usage(call: LLMCall, usage: Any) -> None:
    """Chat Completions / Embeddings usage (``prompt_tokens`` counts cached ones)."""
    _set_usage(call, usage, "prompt_tokens", "completion_tokens")


def set_responses_usage(call: LLMCall, usage: Any) -> None:
    """Responses API usage (``input_tokens`` counts cached ones)."""
    _set_usage(call, usage, "input_tokens", "output_tokens")


# -- Chat Completions -----------------------------------------------------------------------
def _chat_prompt(kwargs: Mapping[str, Any]) -> str:
    return messages_text(kwargs.get("messages"))


def _read_chat(call: LLMCall, resp: Any) -> None:
    usage = getattr(resp, "usage", None)
    if usage is not None:
        set_chat_usage(call, usage)
    choices = getattr(resp, "choices", None) or ()
    reasons = [c.finish_reason for c in choices if c.finish_reason]
    call.set_response(
        getattr(resp, "model", None), request_id_of(resp), reasons, getattr(resp, "id", None)
    )
    if choices and call.captures_content:
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        call.set_output(text if isinstance(text, str) else None, reasons[0] if reasons else None)


class ChatChunks:
    """Reads ``ChatCompletionChunk``\\ s: first content, finish reasons, final usage."""

    __slots__ = ("_est_in", "_id", "_model", "_reasons", "_seen", "_text", "_usage")

    def __init__(self, est_in: int) -> None:
        self._est_in = est_in
        self._seen = False
        self._text: list[str] = []
        self._reasons: list[str] = []
        self._usage: Any = None
        self._model: str | None = None
        self._id: str | None = None

    def on_item(self, call: LLMCall, chunk: Any) -> None:
        choices = chunk.choices
        if choices:
            if not self._seen:
                self._seen = True
                call.first_token()
                self._model = chunk.model
            for choice in choices:
                delta = choice.delta
                if delta is not None and delta.content:
                    self._text.append(delta.content)
                if choice.finish_reason:
                    self._reasons.append(choice.finish_reason)
        self._id = getattr(chunk, "id", None) or self._id
        if chunk.usage is not None:
            self._usage = chunk.usage
            self._model = chunk.model

    def on_end(self, call: LLMCall) -> None:
        call.set_response(self._model, call.upstream_request_id, self._reasons, self._id)
        if self._text and call.captures_content:
            call.set_output("".join(self._text), self._reasons[0] if self._reasons else None)
        if self._usage is not None:
            set_chat_usage(call, self._usage)
        else:
            set_estimated(call, self._est_in, self._text)


CHAT = Endpoint(
    PROVIDER,
    "chat",
    _read_chat,
    _chat_prompt,
    ChatChunks,
    max_output_keys=("max_completion_tokens", "max_tokens"),
    usage_option=True,
    input_messages=chat_messages,
)


# -- Responses ------------------------------------------------------------------------------
def _responses_prompt(kwargs: Mapping[str, Any]) -> str:
    given = kwargs.get("input")
    parts = [text_of(kwargs.get("instructions"))]
    if isinstance(given, str):
        parts.append(given)
    else:
        parts.append(messages_text(given))
    return "\n".join(parts)


def _responses_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    instructions = text_of(kwargs.get("instructions"))
    if instructions:
        out.append({"role": "system", "content": instructions})
    given = kwargs.get("input")
    if isinstance(given, str):
        out.append({"role": "user", "content": given})
    elif isinstance(given, list | tuple):
        out.extend(dict(m) for m in given if isinstance(m, Mapping) and "content" in m)
    return out


def _read_response(call: LLMCall, resp: Any) -> None:
    usage = getattr(resp, "usage", None)
    if usage is not None:
        set_responses_usage(call, usage)
    status = getattr(resp, "status", None)
    call.set_response(
        getattr(resp, "model", None),
        request_id_of(resp),
        [status] if isinstance(status, str) else [],
    )
    if call.captures_content:
        text = getattr(resp, "output_text", None)
        call.set_output(text if isinstance(text, str) else None)


class ResponseEvents:
    """Reads Responses API stream events: the first text delta, the final response."""

    __slots__ = ("_est_in", "_final", "_seen", "_text")

    def __init__(self, est_in: int) -> None:
        self._est_in = est_in
        self._seen = False
        self._text: list[str] = []
        self._final: Any = None

    def on_item(self, call: LLMCall, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            if not self._seen:
                self._seen = True
                call.first_token()
            self._text.append(event.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final = event.response

    def on_end(self, call: LLMCall) -> None:
        final = self._final
        if final is not None and getattr(final, "usage", None) is not None:
            rid = call.upstream_request_id
            _read_response(call, final)
            call.upstream_request_id = rid
        else:
            if self._text and call.captures_content:
                call.set_output("".join(self._text))
            set_estimated(call, self._est_in, self._text)


RESPONSES = Endpoint(
    PROVIDER,
    "responses",
    _read_response,
    _responses_prompt,
    ResponseEvents,
    max_output_keys=("max_output_tokens",),
    input_messages=_responses_messages,
)


# -- Embeddings -----------------------------------------------------------------------------
def _embedding_prompt(kwargs: Mapping[str, Any]) -> str:
    given = kwargs.get("input")
    if isinstance(given, str):
        return given
    if isinstance(given, list):
        return "\n".join(x for x in given if isinstance(x, str))
    return ""


def _read_embeddings(call: LLMCall, resp: Any) -> None:
    usage = getattr(resp, "usage", None)
    if usage is not None:
        set_counts(call, getattr(usage, "prompt_tokens", 0), 0)
    call.set_response(getattr(resp, "model", None), request_id_of(resp))


EMBEDDINGS = Endpoint(
    PROVIDER, "embeddings", _read_embeddings, _embedding_prompt, None, max_output_keys=()
)


def targets() -> list[Target]:
    """The openai SDK's methods to wrap (empty if openai is not installed)."""
    try:
        from openai.resources.chat.completions import AsyncCompletions, Completions
        from openai.resources.embeddings import AsyncEmbeddings, Embeddings
        from openai.resources.responses import AsyncResponses, Responses
    except ImportError:
        return []
    return [
        Target(Completions, "create", CHAT, False),
        Target(AsyncCompletions, "create", CHAT, True),
        Target(Responses, "create", RESPONSES, False),
        Target(AsyncResponses, "create", RESPONSES, True),
        Target(Embeddings, "create", EMBEDDINGS, False),
        Target(AsyncEmbeddings, "create", EMBEDDINGS, True),
    ]


#: Where each target's resource hangs on a client: ``client.chat.completions`` ...
CLIENT_PATHS = {
    "Completions": ("chat", "completions"),
    "Responses": ("responses",),
    "Embeddings": ("embeddings",),
}
