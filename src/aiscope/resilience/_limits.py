"""What the in-process and the Redis rate limiters share: argument checks, default
bursts, and acquire()/acquire_async() over a reservation."""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable

#: The default burst of a bucket, in seconds of its rate: a bucket holds this many
#: seconds' worth of requests (tokens), but never less than one.
DEFAULT_BURST_S = 1.0


def check_rate(name: str, value: object, *, zero_ok: bool = False) -> None:
    """A ValueError naming ``name`` unless ``value`` is None or a finite number > 0
    (>= 0 with ``zero_ok``)."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero_ok)
    ):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound} or None, got {value!r}")


def check_max_wait(value: object) -> float | None:
    """``max_wait_s`` checked: None, or a finite number of seconds >= 0."""
    check_rate("max_wait_s", value, zero_ok=True)
    return None if value is None else float(value)  # type: ignore[arg-type]


def default_burst(per_minute: float) -> float:
    """One :data:`DEFAULT_BURST_S` worth of ``per_minute``, at least one unit."""
    burst = per_minute * DEFAULT_BURST_S / 60.0
    return burst if burst > 1.0 else 1.0


def check_tokens(name: str, value: object) -> int:
    """``value`` if it is an int >= 0, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def check_limits(
    requests_per_minute: float | None,
    tokens_per_minute: float | None,
    request_capacity: float | None,
    token_capacity: float | None,
) -> tuple[float | None, float | None]:
    """The four limit arguments checked; the bursts of the request and token buckets
    (None for a limit that is not set; the default burst for a capacity not given)."""
    check_rate("requests_per_minute", requests_per_minute)
    check_rate("tokens_per_minute", tokens_per_minute)
    check_rate("request_capacity", request_capacity)
    check_rate("token_capacity", token_capacity)
    if request_capacity is not None and requests_per_minute is None:
        raise ValueError("request_capacity needs requests_per_minute")
    if token_capacity is not None and tokens_per_minute is None:
        raise ValueError("token_capacity needs tokens_per_minute")
    caps: list[float | None] = []
    for rate, cap in ((requests_per_minute, request_capacity), (tokens_per_minute, token_capacity)):
        caps.append(None if rate is None else float(default_burst(rate) if cap is None else cap))
    return caps[0], caps[1]


class ReservingLimiter:
    """:meth:`acquire` and :meth:`acquire_async` over a limiter's ``reserve`` /
    ``reserve_async``: the wait is slept after the reservation, outside any lock, and
    an interrupted (cancelled) wait gives the reservation back.

    A subclass sets ``_sleep``, ``_async_sleep``, ``_waiting = 0`` and
    ``_waiting_lock``, and implements ``reserve``, ``reserve_async``, ``_give_back``
    (now) and ``_give_back_soon`` (from an event loop, without blocking it).
    """

    _sleep: Callable[[float], None]
    _async_sleep: Callable[[float], Awaitable[None]]
    _waiting: int
    _waiting_lock: threading.Lock

    def reserve(self, tokens: int = 0) -> float:
        raise NotImplementedError

    async def reserve_async(self, tokens: int = 0) -> float:
        raise NotImplementedError

    def _give_back(self, tokens: int) -> None:
        raise NotImplementedError

    def _give_back_soon(self, tokens: int) -> None:
        self._give_back(tokens)

    def acquire(self, tokens: int = 0) -> float:
        """Reserve (see :meth:`reserve`) and sleep the wait outside the lock; the seconds waited.

        If the sleep is interrupted (an exception), the reservation is given back.
        """
        wait = self.reserve(tokens)
        if wait > 0:
            self._waiters(1)
            try:
                self._sleep(wait)
            except BaseException:
                self._give_back(tokens)
                raise
            finally:
                self._waiters(-1)
        return wait

    async def acquire_async(self, tokens: int = 0) -> float:
        """Like :meth:`acquire`, sleeping with ``asyncio.sleep``; a cancelled wait gives back
        the reservation."""
        wait = await self.reserve_async(tokens)
        if wait > 0:
            self._waiters(1)
            try:
                await self._async_sleep(wait)
            except BaseException:
                self._give_back_soon(tokens)
                raise
            finally:
                self._waiters(-1)
        return wait

    def _waiters(self, delta: int) -> None:
        with self._waiting_lock:
            self._waiting += delta
