"""What aiscope needs to know about one SDK method to record its calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiscope.capture import LLMCall
from aiscope.instrument._streams import ChunkReader


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instrumented SDK method (e.g. openai ``chat.completions.create``).

    ``read_response`` copies usage, model, ids and finish reasons from a whole
    response onto the call; ``new_reader`` makes a :class:`ChunkReader` for a
    stream (None: the method never streams); ``prompt_text`` gives the text a
    budget estimate counts; ``max_output_keys`` name the request's output cap.
    With content capture on, a call's input comes from ``input_messages``, and
    ``read_response``/the reader pass the answer's text to ``LLMCall.set_output``.
    """

    provider: str
    operation: str
    read_response: Callable[[LLMCall, Any], None]
    prompt_text: Callable[[Mapping[str, Any]], str]
    new_reader: Callable[[int], ChunkReader] | None = None
    max_output_keys: tuple[str, ...] = ("max_tokens",)
    #: the request's chat messages (role, content), for content capture
    input_messages: Callable[[Mapping[str, Any]], list[dict[str, Any]]] | None = None
    #: the request option that asks an OpenAI stream for a final usage chunk
    usage_option: bool = False
    request_id_header: str = "x-request-id"


def text_of(content: Any) -> str:
    """The text inside a message's ``content``: a str, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""


def messages_text(messages: Any) -> str:
    """The text of a list of chat messages (dicts with ``content``)."""
    if not isinstance(messages, list | tuple):
        return ""
    return "\n".join([text_of(m.get("content")) for m in messages if isinstance(m, Mapping)])


def chat_messages(kwargs: Mapping[str, Any], system_key: str | None = None) -> list[dict[str, Any]]:
    """A request's ``messages`` (and its ``system_key`` prompt, first) as chat messages."""
    out: list[dict[str, Any]] = []
    if system_key is not None:
        system = text_of(kwargs.get(system_key))
        if system:
            out.append({"role": "system", "content": system})
    given = kwargs.get("messages")
    if isinstance(given, list | tuple):
        out.extend(dict(m) for m in given if isinstance(m, Mapping))
    return out


def count(value: Any) -> int:
    """A token count from an SDK usage field (None or absent: 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
