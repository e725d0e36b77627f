"""Token-bucket rate limiting of requests per minute and (LLM) tokens per minute.

Each limit is a bucket holding up to ``capacity`` units (its burst) that refills
continuously at the per-minute rate. The default burst is one second's worth of the rate
(:data:`DEFAULT_BURST_S`), at least one unit: ``requests_per_minute=60`` lets one request
through at once and spaces the next ones a second apart, ``requests_per_minute=600``
lets 10 through at once. (A burst of a full minute would let a quiet client fire its
whole minute's quota in a few milliseconds, which providers that enforce their limits
per second answer with 429s.) Pass ``request_capacity`` / ``token_capacity`` for another
burst; :meth:`RateLimiter.snapshot` (and so ``AiClient.signals_snapshot()``) shows it.

Reservations, not waiting under a lock. :meth:`RateLimiter.reserve` takes a caller's
share *at once*, under a lock held for a few float operations, and returns how long
the caller must wait before using it. The bucket may go negative: that is debt that
later callers wait for, in the order they reserved. The waiting itself
(:meth:`~RateLimiter.acquire`: ``time.sleep``; :meth:`~RateLimiter.acquire_async`:
``asyncio.sleep``) happens after the lock is released, so any number of threads and
tasks wait concurrently and the event loop is never blocked.

Requests larger than the bucket. A request of ``n > capacity`` tokens could never
find that many in the bucket. It waits only until the bucket would be full (or not
at all if it is full), then goes into debt by ``n - capacity``, which the callers
after it pay off. Nothing deadlocks, and the long-run rate still holds. (Providers
usually reject such a request anyway.)

Waiting or refusing. By default a caller waits as long as its reservation needs.
With ``max_wait_s`` a caller that would have to wait longer is refused at once with
:class:`~aiscope.resilience.RateLimitExceededError` (``max_wait_s=0``: never wait),
and nothing is taken from the buckets.

Shared limits. :class:`RateLimiterLike` is what :class:`~aiscope.AiClient` (and the
SDK instrumentation) need of a limiter; this in-process one and
:class:`~aiscope.resilience.RedisRateLimiter`, whose buckets live in Redis and are
shared by every process, both satisfy it.

Token counts are estimates made before the call; :meth:`~RateLimiter.adjust` corrects
the bucket once the real usage is known, :meth:`~RateLimiter.refund` gives tokens back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from aiscope._fork import fork_safe_lock
from aiscope.resilience._limits import (
    DEFAULT_BURST_S,
    ReservingLimiter,
    check_limits,
    check_max_wait,
    check_tokens,
)
from aiscope.resilience._util import header
from aiscope.resilience.errors import RateLimitExceededError

__all__ = ["DEFAULT_BURST_S", "RateLimiter", "RateLimiterLike", "RateLimiterSnapshot"]

_REMAINING_REQUESTS = ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")
_REMAINING_TOKENS = ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining")


@dataclass(frozen=True, slots=True)
class RateLimiterSnapshot:
    """A rate limiter's state at one moment.

    ``available_*`` is what the bucket holds now (negative: debt that waiting callers
    will pay off); it is None, like the matching rate and capacity, for a limit that
    is not set. ``request_capacity`` / ``token_capacity`` are the bursts: how many
    requests (tokens) an idle limiter lets through at once. ``waiting`` counts callers
    sleeping in ``acquire()`` / ``acquire_async()`` now.
    """

    requests_per_minute: float | None
    tokens_per_minute: float | None
    available_requests: float | None
    available_tokens: float | None
    request_capacity: float | None
    token_capacity: float | None
    waiting: int

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


@runtime_checkable
class RateLimiterLike(Protocol):
    """What a rate limiter gives :class:`~aiscope.AiClient` and the SDK instrumentation.

    :class:`RateLimiter` (in this process) and
    :class:`~aiscope.resilience.RedisRateLimiter` (shared through Redis) both
    satisfy it.
    """

    def acquire(self, tokens: int = 0) -> float:
        """Take one request and ``tokens`` tokens, sleeping as long as the limit needs;
        the seconds waited. Raises RateLimitExceededError to refuse."""
        ...

    async def acquire_async(self, tokens: int = 0) -> float:
        """:meth:`acquire` for asyncio (never blocks the event loop)."""
        ...

    def adjust(self, estimated: int, actual: int) -> None:
        """Correct a reservation of ``estimated`` tokens to the ``actual`` usage."""
        ...

    def snapshot(self) -> RateLimiterSnapshot:
        """The limiter's state now (for ``signals_snapshot()``)."""
        ...


class _Bucket:
    """One token bucket. Not thread-safe: the limiter's lock guards it."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, capacity: float, now: float) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.capacity = capacity
        self.level = capacity
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            level = self.level + elapsed * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.updated = now

    def wait_for(self, n: float) -> float:
        """The seconds until the bucket could pay for ``n`` units (capped at its capacity)."""
        need = n if n < self.capacity else self.capacity
        level = self.level
        if need <= level:
            return 0.0
        return (need - level) / self.rate

    def take(self, n: float) -> float:
        """Take ``n`` units; the seconds until the bucket has paid for them."""
        wait = self.wait_for(n)
        self.level -= n
        return wait

    def give(self, n: float) -> None:
        level = self.level + n
        self.level = level if level < self.capacity else self.capacity


class RateLimiter(ReservingLimiter):
    """Requests-per-minute and tokens-per-minute limits, shared by threads and event loops.

    Args:
        requests_per_minute: request rate (None: no request limit).
        tokens_per_minute: token rate (None: no token limit).
        clock: monotonic clock in seconds (inject a fake one in tests).
        request_capacity: burst size of the request bucket (default one second's
            worth, ``max(1, requests_per_minute / 60)``; 1 spaces requests evenly).
        token_capacity: burst size of the token bucket (default one second's worth,
            ``max(1, tokens_per_minute / 60)``).
        sleep: what :meth:`acquire` sleeps with (default ``time.sleep``).
        async_sleep: what :meth:`acquire_async` sleeps with (default ``asyncio.sleep``).
        max_wait_s: refuse (:class:`~aiscope.resilience.RateLimitExceededError`) a
            caller that would wait longer than this (None: always wait; 0: never).
        name: names the limiter in its refusals.

    See the module doc for the reservation model and oversized requests.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        request_capacity: float | None = None,
        token_capacity: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait_s: float | None = None,
        name: str = "rate_limiter",
    ) -> None:
        self.max_wait_s = check_max_wait(max_wait_s)
        self.name = name
        request_cap, token_cap = check_limits(
            requests_per_minute, tokens_per_minute, request_capacity, token_capacity
        )
        for name, fn in (("clock", clock), ("sleep", sleep), ("async_sleep", async_sleep)):
            if not callable(fn):
                raise ValueError(f"{name} must be callable, got {fn!r}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = fork_safe_lock()
        self._waiting_lock = self._lock
        self._waiting = 0
        now = clock()
        self._requests: _Bucket | None = None
        self._tokens: _Bucket | None = None
        if requests_per_minute is not None and request_cap is not None:
            self._requests = _Bucket(requests_per_minute, request_cap, now)
        if tokens_per_minute is not None and token_cap is not None:
            self._tokens = _Bucket(tokens_per_minute, token_cap, now)
        self._unlimited = self._requests is None and self._tokens is None

    # -- reservation ----------------------------------------------------------------------
    def reserve(self, tokens: int = 0) -> float:
        """Reserve one request and ``tokens`` tokens now; the seconds to wait before sending.

        The share is taken at once (possibly into debt) and the lock is released before
        returning: the caller waits on its own, or gives the share back with
        :meth:`refund` if it gives up. A token-less reservation (``tokens=0``) does not
        wait for the token bucket. With ``max_wait_s`` set, a wait longer than that
        raises RateLimitExceededError and takes nothing.
        """
        if tokens:
            check_tokens("tokens", tokens)
        if self._unlimited:
            return 0.0
        wait = 0.0
        with self._lock:
            now = self._clock()
            req, tok = self._requests, self._tokens
            if tok is not None and not tokens:
                tok = None
            if req is not None:
                req.refill(now)
                wait = req.wait_for(1)
            if tok is not None:
                tok.refill(now)
                w = tok.wait_for(tokens)
                if w > wait:
                    wait = w
            if self.max_wait_s is not None and wait > self.max_wait_s:
                raise RateLimitExceededError(self.name, wait)
            if req is not None:
                req.level -= 1
            if tok is not None:
                tok.level -= tokens
        return wait

    async def reserve_async(self, tokens: int = 0) -> float:
        """:meth:`reserve` (no I/O: it never blocks the event loop)."""
        return self.reserve(tokens)

    def _give_back(self, tokens: int) -> None:
        with self._lock:
            now = self._clock()
            if self._requests is not None:
                self._requests.refill(now)
                self._requests.give(1)
            if self._tokens is not None and tokens:
                self._tokens.refill(now)
                self._tokens.give(tokens)

    # -- corrections ----------------------------------------------------------------------
    def refund(self, tokens: int, *, requests: int = 0) -> None:
        """Give back ``tokens`` tokens (and ``requests`` requests) that were not used.

        The bucket never exceeds its capacity.
        """
        check_tokens("tokens", tokens)
        check_tokens("requests", requests)
        with self._lock:
            now = self._clock()
            if self._tokens is not None and tokens:
                self._tokens.refill(now)
                self._tokens.give(tokens)
            if self._requests is not None and requests:
                self._requests.refill(now)
                self._requests.give(requests)

    def adjust(self, estimated: int, actual: int) -> None:
        """Correct a reservation of ``estimated`` tokens to the ``actual`` usage.

        Using more than estimated takes the difference (possibly into debt, which
        later callers wait for); using less refunds it.
        """
        check_tokens("estimated", estimated)
        check_tokens("actual", actual)
        delta = actual - estimated
        if delta == 0 or self._tokens is None:
            return
        with self._lock:
            self._tokens.refill(self._clock())
            if delta > 0:
                self._tokens.take(delta)
            else:
                self._tokens.give(-delta)

    def update_from_headers(self, headers: Mapping[str, str]) -> bool:
        """Adopt the provider's view of what is left, when it is lower than ours.

        Reads ``x-ratelimit-remaining-requests`` / ``x-ratelimit-remaining-tokens``
        (OpenAI and compatibles) and ``anthropic-ratelimit-{requests,tokens}-remaining``
        (case-insensitive). A bucket is only ever lowered to the provider's number (other
        clients may share the key), never raised: responses arrive out of order, and
        our own in-flight reservations are already subtracted locally. True if a bucket
        was lowered.
        """
        changed = False
        for names, bucket in (
            (_REMAINING_REQUESTS, self._requests),
            (_REMAINING_TOKENS, self._tokens),
        ):
            if bucket is None:
                continue
            remaining = _first_number(headers, names)
            if remaining is None:
                continue
            with self._lock:
                bucket.refill(self._clock())
                if remaining < bucket.level:
                    bucket.level = remaining
                    changed = True
        return changed

    # -- observation ----------------------------------------------------------------------
    def snapshot(self) -> RateLimiterSnapshot:
        """The buckets' levels and capacities and the number of waiting callers now."""
        with self._lock:
            now = self._clock()
            req, tok = self._requests, self._tokens
            if req is not None:
                req.refill(now)
            if tok is not None:
                tok.refill(now)
            return RateLimiterSnapshot(
                requests_per_minute=self.requests_per_minute,
                tokens_per_minute=self.tokens_per_minute,
                available_requests=None if req is None else req.level,
                available_tokens=None if tok is None else tok.level,
                request_capacity=None if req is None else req.capacity,
                token_capacity=None if tok is None else tok.capacity,
                waiting=self._waiting,
            )

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r})"
        )


def _first_number(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    for name in names:
        text = header(headers, name)
        if text is None:
            continue
        try:
            value = float(text.strip())
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None
