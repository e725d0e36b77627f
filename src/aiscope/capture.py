"""Manual capture: record a call made with any client aiscope does not wrap.

::

    with aiscope.llm_call("gpt-4o", provider="openai", max_output_tokens=500,
                          prompt=text, feature="search") as call:
        resp = my_client.complete(text)          # refused before this line if over budget
        call.set_usage(input_tokens=resp.usage.in, output_tokens=resp.usage.out)

or, after the fact, ``aiscope.record_call("gpt-4o", "openai", input_tokens=..., ...)``.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiscope.record import CallRecord, CallStats, Usage
from aiscope.scope import PendingCall, Scope, current_scope
from aiscope.sink import REQUEST, RESPONSE

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "LLMCall",
    "approx_prompt_tokens",
    "approx_tokens",
    "estimate_tokens",
    "llm_call",
    "record_call",
]

F = TypeVar("F", bound=Callable[..., Any])


def estimate_tokens(text: str) -> int:
    """A deliberately generous token estimate for budget reservations.

    Byte-level BPE tokenizers average about four bytes a token on English and
    fewer on code and other scripts; three bytes a token over-estimates most
    text, which is the safe side for a budget.
    """
    if not isinstance(text, str):
        raise TypeError(f"prompt must be a str, got {type(text).__name__}")
    if not text:
        return 0
    size = len(text) if text.isascii() else len(text.encode("utf-8"))  # bytes, cheaply
    return math.ceil(size / 3) + 4


#: Tokens a chat message costs besides its text (its role and separators): the figure
#: OpenAI gives for its chat models.
MESSAGE_OVERHEAD_TOKENS = 3


def approx_tokens(text: str) -> int:
    """A best estimate of the tokens in ``text``, for usage a provider did not report
    (a stream without OpenAI's ``include_usage``): about four UTF-8 bytes a token, the
    usual rule for the byte-level BPE tokenizers of OpenAI, Anthropic and others.

    Unlike :func:`estimate_tokens`, an upper bound for budget reservations, it neither
    counts a token every three bytes nor adds a constant: a recorded count is the
    closest guess, not the safe side.
    """
    if not text:
        return 0
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return -(-size // 4)  # ceil(size / 4), in integers


def approx_prompt_tokens(text: str, messages: int = 1) -> int:
    """A best estimate of the input tokens of a prompt whose ``messages`` messages have
    the text ``text`` together: :func:`approx_tokens` plus each message's overhead."""
    return approx_tokens(text) + MESSAGE_OVERHEAD_TOKENS * max(0, messages)


#: The usage of a call that reported none (never mutated: set_usage replaces it).
_NO_USAGE = Usage()


class LLMCall:
    """One manually captured call: a ``with``/``async with`` block or a decorator."""

    # slots: a call sets some twenty attributes each time it starts
    __slots__ = (
        "_active_scope",
        "_clean",
        "_estimate_in",
        "_max_out",
        "_messages",
        "_pending",
        "_scope",
        "_start",
        "_t0",
        "_tags",
        "_ttft",
        "_usage",
        "_usage_from",
        "finish_reasons",
        "model",
        "operation",
        "provider",
        "record",
        "response_id",
        "response_model",
        "retry_count",
        "server_address",
        "server_port",
        "streaming",
        "upstream_request_id",
    )

    def __init__(
        self,
        model: str,
        provider: str = "unknown",
        operation: str = "chat",
        *,
        prompt: str | None = None,
        input_tokens: int = 0,
        max_output_tokens: int | None = None,
        scope: Scope | None = None,
        usage_from: Callable[[Any], Mapping[str, int] | Usage] | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **tags: str,
    ) -> None:
        if not (type(model) is str and model and type(provider) is str and provider) or not (
            type(operation) is str and operation
        ):
            for name, value in (
                ("model", model),
                ("provider", provider),
                ("operation", operation),
            ):
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{name} must be a non-empty str, got {value!r}")
        for key, value in tags.items():
            if not isinstance(value, str):
                raise TypeError(f"tag {key!r} must be a str, got {type(value).__name__} {value!r}")
        self.model = model
        self.provider = provider
        self.operation = operation
        self._estimate_in = input_tokens + (estimate_tokens(prompt) if prompt else 0)
        self._max_out = max_output_tokens
        self._scope = scope
        self._usage_from = usage_from
        self._messages = messages
        self._tags = tags
        self._reset()
        self._clean = True  # just reset: the first __enter__ need not reset again

    def _reset(self) -> None:
        self._usage = _NO_USAGE
        self._ttft: float | None = None
        self._t0 = 0.0
        self._start = 0.0
        self._pending: PendingCall | None = None
        self._active_scope: Scope | None = None
        self.response_model: str | None = None
        self.upstream_request_id: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: tuple[str, ...] = ()
        self.record: CallRecord | None = None
        self.retry_count = 0
        self.streaming = False
        self.server_address: str | None = None
        self.server_port: int | None = None

    # -- what the block reports ---------------------------------------------------------
    def set_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        estimated: bool = False,
    ) -> None:
        """The call's tokens (validated now, so a mistake points at this line)."""
        self._usage = Usage(
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            estimated,
        )

    def first_token(self) -> None:
        """Mark the arrival of the first streamed token (time to first token)."""
        if self._ttft is None:
            self._ttft = time.perf_counter() - self._t0
            self.streaming = True
            if self._pending is not None:
                self._pending.first_token(self._ttft)

    @property
    def captures_content(self) -> bool:
        """True when a sink of the call's scope records prompts and completions (a
        tracer with ``capture_content=True``): only then are they worth passing."""
        return self._pending is not None and self._pending.captures_content

    def set_input(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """The chat messages sent (``{"role": ..., "content": ...}``), recorded only
        when the scope captures content (redacted and cut as its tracer says)."""
        pending = self._pending
        if pending is not None and pending.captures_content and messages:
            pending.event(REQUEST, messages=list(messages))

    def set_output(self, text: str | None, finish_reason: str | None = None) -> None:
        """The answer's text, recorded only when the scope captures content."""
        pending = self._pending
        if pending is not None and pending.captures_content and text:
            pending.event(RESPONSE, text=text, finish_reason=finish_reason)

    def set_response(
        self,
        model: str | None = None,
        request_id: str | None = None,
        finish_reasons: tuple[str, ...] | list[str] = (),
        response_id: str | None = None,
    ) -> None:
        """What the provider answered with: model, its request id (from the HTTP
        headers), finish reasons, and the id of the response (completion) itself."""
        self.response_model = model
        self.upstream_request_id = request_id
        self.finish_reasons = tuple(finish_reasons)
        if response_id is not None:
            self.response_id = response_id

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> LLMCall:
        if not self._clean:
            self._reset()
        self._clean = False
        scope = self._scope or current_scope()
        # Attribution is taken where the call starts (by begin): a stream may end
        # elsewhere (a consumer task, a garbage-collector finaliser) with other tags.
        pending = self._pending = scope.begin(
            self.model,
            self.provider,
            self._estimate_in,
            self._max_out,
            self.operation,
            tags=self._tags,
        )
        self._active_scope = scope
        self._start = time.time()
        self._t0 = time.perf_counter()
        if self._messages is not None and pending.captures_content:
            self.set_input(self._messages)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        latency = time.perf_counter() - self._t0
        scope = self._active_scope
        assert scope is not None, "LLMCall exited without being entered"
        record = CallRecord(
            model=self.model,
            provider=self.provider,
            operation=self.operation,
            upstream_request_id=self.upstream_request_id,
            response_id=self.response_id,
            response_model=self.response_model,
            start_time=self._start,
            latency_s=latency,
            time_to_first_token_s=self._ttft,
            status="ok" if exc_type is None else "error",
            error_type=None if exc_type is None else exc_type.__name__,
            usage=self._usage,
            tags=dict(self._tags) if self._tags else {},
            retry_count=self.retry_count,
            streaming=self.streaming,
            finish_reasons=self.finish_reasons,
            server_address=self.server_address,
            server_port=self.server_port,
        )
        self.record = scope.emit(record, self._pending)

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def stats(self) -> CallStats:
        """The finished call's public stats."""
        if self.record is None:
            raise RuntimeError("the call has not finished yet")
        return self.record.stats()

    # -- decorator ------------------------------------------------------------------------
    def _fresh(self) -> LLMCall:
        call = LLMCall.__new__(LLMCall)
        for name in LLMCall.__slots__:
            if hasattr(self, name):
                setattr(call, name, getattr(self, name))
        call._reset()
        return call

    def _apply_usage(self, result: Any) -> None:
        if self._usage_from is None:
            return
        got = self._usage_from(result)
        if isinstance(got, Usage):
            self._usage = got
        else:
            self._usage = Usage(**dict(got))  # type: ignore[arg-type]

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                call = self._fresh()
                async with call:
                    result = await fn(*args, **kwargs)
                    call._apply_usage(result)
                return result

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._fresh()
            with call:
                result = fn(*args, **kwargs)
                call._apply_usage(result)
            return result

        return wrapper  # type: ignore[return-value]


def llm_call(
    model: str,
    provider: str = "unknown",
    operation: str = "chat",
    **kwargs: Any,
) -> LLMCall:
    """Capture one call made with any client (see :class:`LLMCall`)."""
    return LLMCall(model, provider, operation, **kwargs)


def _start_time(start_time: float | None, latency_s: object) -> float:
    if start_time is not None:
        return start_time
    now = time.time()
    if isinstance(latency_s, int | float) and math.isfinite(latency_s) and latency_s > 0:
        return now - latency_s
    return now  # a bad latency is reported by validation, under its own name


def record_call(
    model: str,
    provider: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    latency_s: float = 0.0,
    time_to_first_token_s: float | None = None,
    status: str = "ok",
    error_type: str | None = None,
    operation: str = "chat",
    start_time: float | None = None,
    response_model: str | None = None,
    upstream_request_id: str | None = None,
    cost_usd: float | None = None,
    tags: Mapping[str, str] | None = None,
    scope: Scope | None = None,
) -> CallStats:
    """Record a finished call after the fact; returns its stats.

    Bad input raises ``TypeError``/``ValueError`` naming the field; nothing is
    recorded then.
    """
    record = CallRecord(
        model=model,
        provider=provider,
        operation=operation,
        start_time=_start_time(start_time, latency_s),
        latency_s=latency_s,
        time_to_first_token_s=time_to_first_token_s,
        status=status,  # type: ignore[arg-type]
        error_type=error_type,
        usage=Usage(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        ),
        response_model=response_model,
        upstream_request_id=upstream_request_id,
        cost_usd=cost_usd,
        tags=dict(tags) if tags is not None else {},
    )
    return (scope or current_scope()).emit(record).stats()
