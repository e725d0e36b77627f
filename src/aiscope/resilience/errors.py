"""Exceptions raised by the resilience primitives."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiscope.resilience.circuit import CircuitState

__all__ = [
    "CircuitOpenError",
    "InflightLimitError",
    "RateLimitExceededError",
    "ResilienceError",
]


class ResilienceError(Exception):
    """Base class of every error raised by :mod:`aiscope.resilience`."""


class CircuitOpenError(ResilienceError):
    """A circuit breaker refused a call.

    ``retry_in_s`` is how long until the breaker admits a probe: the rest of the
    recovery timeout when it is open, ``0.0`` when it is half-open and all its probe
    slots are taken (a probe may report at any moment). ``state`` is the breaker's
    state when it refused (a :class:`~aiscope.resilience.CircuitState`).
    """

    def __init__(self, name: str, retry_in_s: float, *, state: CircuitState | str = "open") -> None:
        self.name = name
        self.retry_in_s = retry_in_s
        self.state = state
        super().__init__(f"circuit {name!r} is {state}; retry in {retry_in_s:.2f}s")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_circuit_open, (self.name, self.retry_in_s, str(self.state)))


def _rebuild_circuit_open(name: str, retry_in_s: float, state: str) -> CircuitOpenError:
    return CircuitOpenError(name, retry_in_s, state=state)


class InflightLimitError(ResilienceError):
    """No in-flight slot became free within the timeout."""

    def __init__(self, max_inflight: int | None, timeout_s: float | None) -> None:
        self.max_inflight = max_inflight
        self.timeout_s = timeout_s
        super().__init__(f"no in-flight slot free (max {max_inflight}) within {timeout_s}s")

    def __reduce__(self) -> tuple[object, ...]:
        return (InflightLimitError, (self.max_inflight, self.timeout_s))


class RateLimitExceededError(ResilienceError):
    """A rate limiter refused a call before anything was sent.

    Raised when the call would have had to wait longer than the limiter's
    ``max_wait_s`` (``retry_after_s`` is the wait it would have needed), and by a
    fail-closed :class:`~aiscope.resilience.RedisRateLimiter` while Redis is
    unreachable (``retry_after_s`` is None, ``reason`` says why). Nothing of the
    limit is taken by a refused call.
    """

    def __init__(self, name: str, retry_after_s: float | None, *, reason: str = "") -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        self.reason = reason
        if reason:
            text = f"rate limit {name!r} refused the call: {reason}"
        else:
            text = f"rate limit {name!r} reached; retry in {retry_after_s or 0.0:.2f}s"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_rate_limit, (self.name, self.retry_after_s, self.reason))


def _rebuild_rate_limit(
    name: str, retry_after_s: float | None, reason: str
) -> RateLimitExceededError:
    return RateLimitExceededError(name, retry_after_s, reason=reason)
