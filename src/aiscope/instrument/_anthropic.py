"""The anthropic SDK (2.x): ``messages.create`` (streaming or not) and ``messages.stream``.

Anthropic's ``input_tokens`` excludes cache reads and writes; aiscope's input
count includes them (as OpenAI's does), so they are added. A stream reports
input usage in ``message_start`` and the running output count in ``message_delta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiscope.capture import LLMCall, approx_tokens
from aiscope.instrument._calls import request_id_of, set_counts, set_estimated
from aiscope.instrument._endpoint import Endpoint, chat_messages, count, messages_text, text_of
from aiscope.instrument._patch import Target

PROVIDER = "anthropic"


def _input_counts(usage: Any) -> tuple[int, int, int]:
    cr = count(getattr(usage, "cache_read_input_tokens", 0))
    cw = count(getattr(usage, "cache_creation_input_tokens", 0))
    return count(getattr(usage, "input_tokens", 0)) + cr + cw, cr, cw


def set_usage(
    call: LLMCall, usage: Any, output_tokens: Any = None, estimated: bool = False
) -> None:
    """Anthropic usage onto ``call`` (cache tokens folded into the input count)."""
    i, cr, cw = _input_counts(usage)
    out = getattr(usage, "output_tokens", 0) if output_tokens is None else output_tokens
    set_counts(call, i, out, cr, cw, estimated=estimated)


def _prompt(kwargs: Mapping[str, Any]) -> str:
    return text_of(kwargs.get("system")) + "\n" + messages_text(kwargs.get("messages"))


def _read_message(call: LLMCall, msg: Any) -> None:
    usage = getattr(msg, "usage", None)
    if usage is not None:
        set_usage(call, usage)
    reason = getattr(msg, "stop_reason", None)
    call.set_response(
        getattr(msg, "model", None),
        request_id_of(msg),
        [reason] if isinstance(reason, str) else [],
        getattr(msg, "id", None),
    )
    if call.captures_content:
        texts = [b.text for b in getattr(msg, "content", None) or () if _is_text(b)]
        call.set_output("".join(texts), reason if isinstance(reason, str) else None)


def _is_text(block: Any) -> bool:
    return getattr(block, "type", None) == "text" and isinstance(getattr(block, "text", None), str)


def _messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return chat_messages(kwargs, "system")


class MessageEvents:
    """Reads raw message stream events: usage, first text delta, stop reason."""

    __slots__ = ("_est_in", "_id", "_model", "_out", "_reason", "_seen", "_start_usage", "_text")

    def __init__(self, est_in: int) -> None:
        self._est_in = est_in
        self._seen = False
        self._text: list[str] = []
        self._start_usage: Any = None
        self._out: Any = None
        self._model: str | None = None
        self._id: str | None = None
        self._reason: str | None = None

    def on_item(self, call: LLMCall, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":
            if not self._seen:
                self._seen = True
                call.first_token()
            text = getattr(event.delta, "text", None)
            if isinstance(text, str):
                self._text.append(text)
        elif kind == "message_start":
            self._start_usage = event.message.usage
            self._model = event.message.model
            self._id = getattr(event.message, "id", None)
        elif kind == "message_delta":
            self._out = event.usage.output_tokens  # cumulative
            reason = getattr(event.delta, "stop_reason", None)
            if isinstance(reason, str):
                self._reason = reason

    def on_end(self, call: LLMCall) -> None:
        call.set_response(
            self._model,
            call.upstream_request_id,
            [self._reason] if self._reason else [],
            self._id,
        )
        if self._text and call.captures_content:
            call.set_output("".join(self._text), self._reason)
        if self._start_usage is not None and self._out is not None:
            set_usage(call, self._start_usage, self._out)
        else:
            if self._start_usage is not None:
                out = approx_tokens("".join(self._text)) if self._text else 0
                set_usage(call, self._start_usage, out, estimated=True)
            else:
                set_estimated(call, self._est_in, self._text)


MESSAGES = Endpoint(
    PROVIDER,
    "chat",
    _read_message,
    _prompt,
    MessageEvents,
    request_id_header="request-id",
    input_messages=_messages,
)


def targets() -> list[Target]:
    """The anthropic SDK's methods to wrap (empty if anthropic is not installed)."""
    try:
        from anthropic.resources.messages import AsyncMessages, Messages
    except ImportError:
        return []
    return [
        Target(Messages, "create", MESSAGES, False),
        Target(AsyncMessages, "create", MESSAGES, True),
        Target(Messages, "stream", MESSAGES, False, "stream_manager"),
        Target(AsyncMessages, "stream", MESSAGES, True, "stream_manager"),
    ]


CLIENT_PATHS = {"Messages": ("messages",)}
