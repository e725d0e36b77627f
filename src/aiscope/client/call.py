"""One AiClient call's bookkeeping, shared by the sync and async paths.

A :class:`Call` is made per request: the compiled request, the budget reservation,
the :class:`~aiscope.record.CallRecord` and, for a stream, the SSE decoder and what
the stream has said so far. Retries, circuit-breaker outcomes, the mapping of frames
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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

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
from aiscope.client.request import ChatRequest, CompiledRequest
from aiscope.client.response import ChatResponse, estimate_usage
from aiscope.client.streaming import EventMapper, SSEDecoder, StreamEvent, StreamState
from aiscope.record import CallRecord
from aiscope.resilience import CircuitPermit
from aiscope.scope import PendingCall

if TYPE_CHECKING:
    from aiscope.client.client import AiClient

log = logging.getLogger("aiscope.client")

#: Errors after which another attempt (or a fallback model) may succeed.
RETRYABLE = (ProviderError, TransportError)

_TOKEN_EVENTS = ("text_delta", "tool_call_delta")


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


class Call:
    """One request from compilation to its emitted record (see the module docstring).

    Used as a context manager around the whole call: on exit it settles a stream's
    breaker permit and finishes and emits the record once, whatever happened.
    """

    __slots__ = (
        "attempts",
        "client",
        "compiled",
        "decoder",
        "delay",
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
        self, client: AiClient, req: ChatRequest, tags: dict[str, str], *, stream: bool
    ) -> None:
        self.client = client
        self.req = req = ChatRequest(**{k: getattr(req, k) for k in req.__slots__})
        req.model = client.model
        self.prompt = req.prompt_text()
        # Reserve the budget first: a refused call sends nothing and records nothing.
        self.pending: PendingCall | None = client._begin(req, self.prompt, tags)
        try:  # compiled under the call's span (when traced), so it is a stage of it
            with client._traced(self.pending):
                self.compiled: CompiledRequest = client._compile(req, stream=stream)
        except BaseException:
            client.scope.abandon(self.pending)
            raise
        self.record: CallRecord = client._new_record(tags, stream)
        self.response: ChatResponse | None = None
        self.permit: CircuitPermit | None = None  # a stream's, held until its end
        self.attempts = 0
        self.delay = 0.0
        self.state: StreamState | None = None
        if stream:
            self.state = StreamState()
            self.mapper = EventMapper(client.manifest)
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
        return self.client._estimate(self.prompt) + (self.req.max_tokens or 0)

    def retry_delay(self, exc: AiClientError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        client = self.client
        status = getattr(exc, "status", None)
        if not getattr(exc, "retryable", False) or not client.retry.should_retry(
            self.attempts, status=status, exc=exc if status is None else None
        ):
            return None
        delay = client.retry.delay_s(self.attempts, getattr(exc, "retry_after_s", None))
        self.record.retry_count += 1
        metrics = client.scope.metrics
        if metrics is not None:
            metrics.count_retry(client.model, client.manifest.pricing_id, type(exc).__name__)
        log.info(
            "retrying %s/%s after %s in %.2fs (attempt %d)",
            client.provider,
            client.model,
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
        return HttpErrors(self.client.provider, self.client.timeout, body=True)

    def _map(self, frame: Any) -> list[StreamEvent]:
        state = self.state
        assert state is not None
        events = self.mapper.frame(frame, state)
        if state.error is not None:
            err = state.error
            message = err.get("message") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
            manifest = self.client.manifest
            cls = ERROR_TYPES.get(manifest.errors_by_code.get(str(kind), ""), ServerError)
            raise cls(
                f"error in stream: {message}",
                provider=self.client.provider,
                code=str(kind) if kind else None,
            )
        if state.first_token_at is None:
            for ev in events:
                if ev.kind in _TOKEN_EVENTS:
                    state.first_token_at = time.perf_counter()
                    self.record.time_to_first_token_s = state.first_token_at - self.t0
                    break
        return events

    def end(self) -> list[StreamEvent]:
        """A complete stream's last events, ``usage`` and ``end`` (with the emitted stats);
        a stream that stopped without its end signal raises StreamInterruptedError."""
        state, client = self.state, self.client
        assert state is not None
        manifest = client.manifest
        has_end_signal = manifest.done_data is not None or any(
            r.emit == "end" for r in manifest.events
        )
        if not (state.done if has_end_signal else state.finish_reason is not None):
            raise StreamInterruptedError(
                f"stream ended after {state.frames} frames without its end signal",
                provider=client.provider,
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
        if self.pending is None:  # already recorded (a stream's end)
            return
        response = self.response
        state = self.state
        if state is not None:
            n = len(self.req.messages)
            if isinstance(exc, GeneratorExit):
                # The consumer stopped early: record what was seen, as a call that worked.
                exc = None
                response = state.response(self.client.manifest, self.prompt, n)
                if not state.usage_values:
                    response.usage = estimate_usage(self.prompt, response.text, n)
                response.finish_reason = response.finish_reason or "abandoned"
            elif exc is not None and state.frames:
                response = state.response(self.client.manifest, self.prompt, n)
        self._record(response, exc)

    def _record(self, response: ChatResponse | None, exc: BaseException | None) -> None:
        record, client, pending = self.record, self.client, self.pending
        self.pending = None
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
        elif response is not None and client.rate_limiter is not None:
            # The limiter took an estimate up front; correct it with what was really used.
            client.rate_limiter.adjust(self.limiter_tokens(), response.usage.total_tokens)
        client.errors.record(exc is None)
        if pending is not None and pending.span is not None and response is not None:
            client._trace_response(pending, response)
        client._emit(record, pending)


class Attempt:
    """One attempt of a call: takes a circuit-breaker permit on entry and, on exit,
    tells the breaker how it went. A retryable error within the retry policy is
    swallowed, with ``call.delay`` set to the wait before the next attempt; any other
    error goes on. A stream that connected keeps its permit until the stream ends."""

    __slots__ = ("call", "permit")

    def __init__(self, call: Call) -> None:
        self.call = call

    def __enter__(self) -> Attempt:
        self.permit = self.call.client.breaker.acquire()
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
    """Turns httpx's errors into the client's typed ones: a timeout or a failed connection
    while sending, and a broken connection while reading a stream's body (a cut stream)."""

    __slots__ = ("body", "provider", "timeout")

    def __init__(self, provider: str, timeout: float, *, body: bool = False) -> None:
        self.provider = provider
        self.timeout = timeout
        self.body = body

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if not isinstance(exc, httpx.TransportError):
            return
        name = type(exc).__name__
        if self.body:
            raise StreamInterruptedError(
                f"stream cut: {name}: {exc}", provider=self.provider
            ) from None
        if isinstance(exc, httpx.TimeoutException):
            raise RequestTimeoutError(
                f"no answer within {self.timeout}s ({exc})", provider=self.provider
            ) from None
        raise TransportError(f"{name}: {exc}", provider=self.provider) from None
