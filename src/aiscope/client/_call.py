"""One AiClient call's bookkeeping, shared by the sync and async paths.

A :class:`Call` is made per request: the compiled request, the call's lifecycle in
the Scope (:class:`~aiscope.PendingCall`: budget reserved, span, events), the
:class:`~aiscope.record.CallRecord` and, for a stream, the SSE decoder and what
the stream has said so far. It sees the client only through a narrow
:class:`CallContext`. Retries, circuit-breaker outcomes, the mapping of frames
to events, time to first token and the one record at the end are decided here, so
that ``AiClient``'s sync and async methods differ only in their I/O (send, read
chunks, sleep, wait for the rate limiter)::

    with call, client.inflight.slot():        # the record is finished and emitted on exit
        while True:
            with call.attempt():              # breaker permit; a retryable error is swallowed
                return call.succeeded(send())
            time.sleep(call.delay)            # ... and the loop sleeps and tries again
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx2

from aiscope.capture import estimate_tokens
from aiscope.client._compile import CompiledRequest
from aiscope.client._parse import estimate_usage
from aiscope.client._sse import EventMapper, SSEDecoder, StreamState
from aiscope.client.errors import (
    ERROR_TYPES,
    AiClientError,
    ProviderError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    StreamInterruptedError,
    TransportError,
)
from aiscope.client.manifest import ProviderManifest
from aiscope.client.request import ChatRequest
from aiscope.client.response import ChatResponse
from aiscope.client.streaming import StreamEvent
from aiscope.record import CallRecord
from aiscope.resilience import (
    CircuitBreaker,
    CircuitPermit,
    ErrorRateWindow,
    RateLimiterLike,
    RetryPolicy,
)
from aiscope.scope import PendingCall, Scope
from aiscope.sink import RATE_LIMIT_WAIT, REQUEST, RESPONSE, RETRY

log = logging.getLogger("aiscope.client")

#: Errors after which another attempt (or a fallback model) may succeed.
RETRYABLE = (ProviderError, TransportError)

_TOKEN_EVENTS = ("text_delta", "tool_call_delta")

#: The output tokens a budget reserves for a request that sets no max_tokens.
DEFAULT_MAX_OUTPUT_ESTIMATE = 4096


def breaker_outcome(permit: CircuitPermit, exc: BaseException | None) -> None:
    """Tell the circuit breaker how an attempt went."""
    # Client errors (4xx other than 408/409/429) say nothing about the provider's health.
    if exc is None:
        permit.success()
    elif isinstance(exc, StreamError) or getattr(exc, "retryable", False):
        permit.failure()
    elif isinstance(exc, ProviderError):
        permit.success()
    else:
        permit.release()


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a :class:`Call` needs of its client (made once per client)."""

    model: str
    #: the provider id of the manifest (the client's ``provider``)
    provider: str
    manifest: ProviderManifest
    timeout: float
    retry: RetryPolicy
    breaker: CircuitBreaker
    rate_limiter: RateLimiterLike | None
    errors: ErrorRateWindow
    #: compiles a request (``stream``) with its stages in the call's lifecycle
    compile: Callable[[ChatRequest, bool, PendingCall], CompiledRequest]
    #: the host and port the client sends to
    server: Callable[[], tuple[str | None, int]]


class Call:
    """One request from compilation to its emitted record (see the module docstring).

    Used as a context manager around the whole call: on exit it settles a stream's
    breaker permit and finishes and emits the record once, whatever happened.
    """

    __slots__ = (
        "attempts",
        "compiled",
        "ctx",
        "decoder",
        "delay",
        "finished",
        "mapper",
        "pending",
        "permit",
        "prompt",
        "record",
        "req",
        "response",
        "state",
        "t0",
    )

    def __init__(
        self,
        ctx: CallContext,
        scope: Scope,
        req: ChatRequest,
        tags: dict[str, str],
        *,
        stream: bool,
    ) -> None:
        self.ctx = ctx
        self.req = req = ChatRequest(**{k: getattr(req, k) for k in req.__slots__})
        req.model = ctx.model
        self.prompt = req.prompt_text()
        manifest = ctx.manifest
        max_out = (
            req.max_tokens or manifest.defaults.get("max_tokens") or DEFAULT_MAX_OUTPUT_ESTIMATE
        )
        # Reserve the budget first: a refused call sends nothing and records nothing.
        self.pending: PendingCall = scope.begin(
            ctx.model,
            manifest.pricing_id,
            estimate_tokens(self.prompt),
            int(max_out),
            tags=tags,
        )
        self.finished = False
        pending = self.pending
        try:
            if pending.listens(REQUEST):
                pending.event(
                    REQUEST,
                    max_tokens=req.max_tokens,
                    temperature=req.temperature,
                    top_p=req.top_p,
                    stop_sequences=req.stop,
                    messages=req.messages if pending.captures_content else None,
                )
            # compiled under the call's span (when traced), so it is a stage of it
            with pending.activate():
                self.compiled: CompiledRequest = ctx.compile(req, stream, pending)
        except BaseException:
            pending.abandon()
            raise
        host, port = ctx.server()
        self.record: CallRecord = CallRecord(
            model=ctx.model,
            provider=manifest.pricing_id,
            operation="chat",
            tags=dict(tags),
            streaming=stream,
            server_address=host,
            server_port=port,
        )
        self.response: ChatResponse | None = None
        self.permit: CircuitPermit | None = None  # a stream's, held until its end
        self.attempts = 0
        self.delay = 0.0
        self.state: StreamState | None = None
        if stream:
            self.state = StreamState()
            self.mapper = EventMapper(manifest)
            self.decoder = SSEDecoder()
        self.t0 = time.perf_counter()

    # -- attempts -------------------------------------------------------------------------
    def attempt(self) -> Attempt:
        """A context manager around one attempt (see :class:`Attempt`)."""
        return Attempt(self)

    def succeeded(self, response: ChatResponse) -> tuple[ChatResponse, CallRecord]:
        """A non-streaming call's result (the record is emitted when the call exits)."""
        self.response = response
        return response, self.record

    def limiter_tokens(self) -> int:
        """Tokens the rate limiter takes up front: the prompt's estimate plus max_tokens."""
        return estimate_tokens(self.prompt) + (self.req.max_tokens or 0)

    def waited(self, seconds: float) -> None:
        """The call waited ``seconds`` for the rate limiter (reported when > 0)."""
        if seconds > 0:
            self.pending.event(RATE_LIMIT_WAIT, seconds=seconds)

    def stage(self, name: str) -> Any:
        """A named pipeline stage of the call (see :meth:`PendingCall.stage`)."""
        return self.pending.stage(name)

    def outgoing(self, headers: dict[str, str]) -> MutableMapping[str, str]:
        """The request headers, with the W3C ``traceparent`` when the call is traced."""
        if self.pending.span is None:
            return headers
        return self.pending.inject(dict(headers))

    def retry_delay(self, exc: AiClientError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        ctx = self.ctx
        status = getattr(exc, "status", None)
        if not getattr(exc, "retryable", False) or not ctx.retry.should_retry(
            self.attempts, status=status, exc=exc if status is None else None
        ):
            return None
        delay = ctx.retry.delay_s(self.attempts, getattr(exc, "retry_after_s", None))
        self.record.retry_count += 1
        self.pending.event(
            RETRY, reason=type(exc).__name__, attempt=self.attempts + 1, delay_s=delay
        )
        log.info(
            "retrying %s/%s after %s in %.2fs (attempt %d)",
            ctx.provider,
            ctx.model,
            type(exc).__name__,
            delay,
            self.attempts + 1,
        )
        return delay

    # -- streams --------------------------------------------------------------------------
    def events(self, chunk: bytes) -> Iterator[StreamEvent]:
        """The unified events of a chunk of the response body."""
        for frame in self.decoder.feed(chunk):
            yield from self._map(frame)

    def flush(self) -> Iterator[StreamEvent]:
        """The events of what the body left undecoded at its end."""
        for frame in self.decoder.flush():
            yield from self._map(frame)

    def reading(self) -> HttpErrors:
        """Around the reading of a stream's body: a broken connection is a cut stream."""
        return HttpErrors(self.ctx.provider, self.ctx.timeout, body=True)

    def _map(self, frame: Any) -> list[StreamEvent]:
        state = self.state
        assert state is not None
        events = self.mapper.frame(frame, state)
        if state.error is not None:
            err = state.error
            message = err.get("message") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
            manifest = self.ctx.manifest
            cls = ERROR_TYPES.get(manifest.errors_by_code.get(str(kind), ""), ServerError)
            raise cls(
                f"error in stream: {message}",
                provider=self.ctx.provider,
                code=str(kind) if kind else None,
            )
        if state.first_token_at is None:
            for ev in events:
                if ev.kind in _TOKEN_EVENTS:
                    state.first_token_at = time.perf_counter()
                    ttft = state.first_token_at - self.t0
                    self.record.time_to_first_token_s = ttft
                    self.pending.first_token(ttft)
                    break
        return events

    def end(self) -> list[StreamEvent]:
        """A complete stream's last events, ``usage`` and ``end`` (with the emitted stats);
        a stream that stopped without its end signal raises StreamInterruptedError."""
        state, ctx = self.state, self.ctx
        assert state is not None
        manifest = ctx.manifest
        has_end_signal = manifest.done_data is not None or any(
            r.emit == "end" for r in manifest.events
        )
        if not (state.done if has_end_signal else state.finish_reason is not None):
            raise StreamInterruptedError(
                f"stream ended after {state.frames} frames without its end signal",
                provider=ctx.provider,
            )
        if self.permit is not None:
            breaker_outcome(self.permit, None)
            self.permit = None
        response = state.response(manifest, self.prompt, len(self.req.messages))
        response.request_id = self.record.upstream_request_id
        self._record(response, None)
        return [
            StreamEvent("usage", usage=response.usage),
            StreamEvent(
                "end",
                response=response,
                stats=self.record.stats(),
                finish_reason=response.finish_reason,
            ),
        ]

    # -- the record -----------------------------------------------------------------------
    def __enter__(self) -> Call:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if self.permit is not None:  # a stream's body failed or was abandoned
            breaker_outcome(self.permit, exc)
            self.permit = None
        if self.finished:  # already recorded (a stream's end)
            return
        response = self.response
        state = self.state
        if state is not None:
            n = len(self.req.messages)
            if isinstance(exc, GeneratorExit):
                # The consumer stopped early: record what was seen, as a call that worked.
                exc = None
                response = state.response(self.ctx.manifest, self.prompt, n)
                if not state.usage_values:
                    response.usage = estimate_usage(self.prompt, response.text, n)
                response.finish_reason = response.finish_reason or "abandoned"
            elif exc is not None and state.frames:
                response = state.response(self.ctx.manifest, self.prompt, n)
        self._record(response, exc)

    def _record(self, response: ChatResponse | None, exc: BaseException | None) -> None:
        record, ctx, pending = self.record, self.ctx, self.pending
        self.finished = True
        record.latency_s = time.perf_counter() - self.t0
        if response is not None:
            record.usage = response.usage
            record.response_model = response.model
            record.upstream_request_id = response.request_id or response.id
            record.response_id = response.id or None
            if response.finish_reason:
                record.finish_reasons = (response.finish_reason,)
        if exc is not None:
            record.status = "error"
            record.error_type = type(exc).__name__
        elif response is not None and ctx.rate_limiter is not None:
            # The limiter took an estimate up front; correct it with what was really used.
            ctx.rate_limiter.adjust(self.limiter_tokens(), response.usage.total_tokens)
        ctx.errors.record(exc is None)
        if response is not None and response.text and pending.captures_content:
            pending.event(RESPONSE, text=response.text, finish_reason=response.finish_reason)
        try:
            pending.finish(record)
        except (TypeError, ValueError):  # a malformed provider report must not break the call
            log.exception("could not record call %s", record.request_id)


class Attempt:
    """One attempt of a call: takes a circuit-breaker permit on entry and, on exit,
    tells the breaker how it went. A retryable error within the retry policy is
    swallowed, with ``call.delay`` set to the wait before the next attempt; any other
    error goes on. A stream that connected keeps its permit until the stream ends."""

    __slots__ = ("call", "permit")

    def __init__(self, call: Call) -> None:
        self.call = call

    def __enter__(self) -> Attempt:
        self.permit = self.call.ctx.breaker.acquire()
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> bool:
        call = self.call
        if exc is None and call.state is not None:
            call.permit = self.permit  # a stream's health is judged at its end
            return False
        breaker_outcome(self.permit, exc)
        if not isinstance(exc, RETRYABLE):
            return False
        delay = call.retry_delay(exc)
        if delay is None:
            return False
        call.attempts += 1
        call.delay = delay
        return True


class HttpErrors:
    """Turns httpx2's errors into the client's typed ones: a timeout or a failed connection
    while sending, and a broken connection while reading a stream's body (a cut stream)."""

    __slots__ = ("body", "provider", "timeout")

    def __init__(self, provider: str, timeout: float, *, body: bool = False) -> None:
        self.provider = provider
        self.timeout = timeout
        self.body = body

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if not isinstance(exc, httpx2.TransportError):
            return
        name = type(exc).__name__
        if self.body:
            raise StreamInterruptedError(
                f"stream cut: {name}: {exc}", provider=self.provider
            ) from None
        if isinstance(exc, httpx2.TimeoutException):
            raise RequestTimeoutError(
                f"no answer within {self.timeout}s ({exc})", provider=self.provider
            ) from None
        raise TransportError(f"{name}: {exc}", provider=self.provider) from None
