"""What the mock provider does: its standing :class:`Behavior` and one-shot :class:`Fault`\\ s.

A :class:`Behavior` holds for every request until it is changed
(``MockProvider.behave(...)``); a :class:`Fault` describes one misbehaviour and is
either queued for the next requests (``MockProvider.fail_next(...)`` and friends,
each fault used by exactly one request) or made standing through
``Behavior.fault``. Both are frozen; change them with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the mock makes instead of answering with text.

    ``name`` None calls the first tool the request declares. The mock calls a tool
    only when the request declares tools and its last message is not a tool result.
    """

    name: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fault:
    """One misbehaviour, applied to one model request (or to all, via ``Behavior.fault``).

    Fields combine: e.g. ``Fault(first_byte_delay_s=2, status=503)`` answers 503
    after two seconds.

    * ``status`` — answer with this HTTP status and the provider's own error body
      (529 is Anthropic's "overloaded"; the OpenAI and Gemini formats answer 503,
      their "overloaded" status, instead).
    * ``retry_after`` — seconds sent in ``retry-after`` (and, for OpenAI,
      ``retry-after-ms``) with an error status.
    * ``code`` — the provider's error code/type instead of the status's default,
      e.g. ``"insufficient_quota"`` (OpenAI), ``"overloaded_error"`` (Anthropic),
      ``"RESOURCE_EXHAUSTED"`` (Gemini).
    * ``message`` — the error message instead of the default.
    * ``first_byte_delay_s`` — sleep before the first byte of the response.
    * ``chunk_delay_s`` — sleep between stream frames (instead of the behaviour's).
    * ``drop_after_chunks`` — send this many stream frames, then close the connection
      without the rest (no final frames, no terminating zero-length chunk). A
      non-streaming response is cut after half of its body.
    * ``malformed_at`` — stream frame number ``n`` (0-based, counting every SSE
      event including pings) carries invalid JSON (its data cut in half). A
      non-streaming response gets a body of invalid JSON with status 200.
    * ``stream_error_after`` — after this many frames, send the provider's in-stream
      error event (status from ``status`` or the provider's "overloaded") and end
      the stream.
    """

    status: int | None = None
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    first_byte_delay_s: float = 0.0
    chunk_delay_s: float | None = None
    drop_after_chunks: int | None = None
    malformed_at: int | None = None
    stream_error_after: int | None = None


@dataclass(frozen=True, slots=True)
class Behavior:
    """The mock's standing behaviour.

    * ``reply_text`` — the reply; None derives one from the prompt
      (:func:`aiscope.testing.default_reply`).
    * ``reply_tokens`` — if set (and ``reply_text`` is None), reply with a generated
      text of exactly this many output tokens (for long streams).
    * ``tokens_per_chunk`` — output tokens per streamed delta.
    * ``latency_s`` — sleep before the response's first byte (every request).
    * ``first_token_delay_s`` — streams: sleep after the headers, before the first frame.
    * ``chunk_delay_s`` — streams: sleep between frames.
    * ``cache_read_tokens`` — prompt tokens reported as read from the prompt cache
      (at most the prompt's tokens).
    * ``cache_write_tokens`` — prompt tokens reported as written to the cache
      (Anthropic's ``cache_creation_input_tokens``; other formats have no field for it).
    * ``reasoning_tokens`` — extra output tokens reported as reasoning/thinking; they
      count against the request's output-token limit first.
    * ``tool_call`` — call this tool whenever the request declares tools.
    * ``model`` — the model name reported; None echoes the requested one.
    * ``embedding_dimensions`` — vector size when the request gives no ``dimensions``.
    * ``fault`` — a fault applied to every model request that has no queued fault.
    * ``stream_usage_always`` — Chat Completions streams end with a usage chunk even
      without ``stream_options.include_usage`` (as Mistral and Together do).
    """

    reply_text: str | None = None
    reply_tokens: int | None = None
    tokens_per_chunk: int = 1
    latency_s: float = 0.0
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    tool_call: ToolCall | None = None
    model: str | None = None
    embedding_dimensions: int = 64
    fault: Fault | None = None
    stream_usage_always: bool = False

    def __post_init__(self) -> None:
        if self.tokens_per_chunk < 1:
            raise ValueError("tokens_per_chunk must be >= 1")
        for name in ("latency_s", "first_token_delay_s", "chunk_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.reply_tokens is not None and self.reply_tokens < 0:
            raise ValueError("reply_tokens must be >= 0")
        if self.embedding_dimensions < 1:
            raise ValueError("embedding_dimensions must be >= 1")


class BehaviorChanges(TypedDict, total=False):
    """Keyword arguments of ``MockProvider.behave``: any field of :class:`Behavior`."""

    reply_text: str | None
    reply_tokens: int | None
    tokens_per_chunk: int
    latency_s: float
    first_token_delay_s: float
    chunk_delay_s: float
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    tool_call: ToolCall | None
    model: str | None
    embedding_dimensions: int
    fault: Fault | None
    stream_usage_always: bool


__all__ = [
    "Behavior",
    "BehaviorChanges",
    "Fault",
    "ToolCall",
]
