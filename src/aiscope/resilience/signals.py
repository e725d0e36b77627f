"""Health signals of a client: a rolling error rate, and what ``signals_snapshot()`` returns."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiscope._fork import fork_safe_lock

if TYPE_CHECKING:  # annotations only: the circuit breaker imports this module
    from aiscope.resilience.circuit import CircuitState
    from aiscope.resilience.ratelimit import RateLimiterSnapshot

__all__ = ["ErrorRateWindow", "SignalsSnapshot"]


class ErrorRateWindow:
    """Successes and failures of the last ``window_s`` seconds, in bounded memory.

    Time is cut into ``buckets`` slices of ``window_s / buckets`` seconds kept in a
    ring; an outcome lands in the slice of its time, and a slice is wiped when the ring
    comes round to it again. Counts cover the current slice and the ``buckets - 1``
    before it, so the window is between ``window_s - window_s / buckets`` and
    ``window_s`` long. Thread-safe; ``record()`` costs about a microsecond.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        buckets: int = 60,
    ) -> None:
        if (
            isinstance(window_s, bool)
            or not isinstance(window_s, int | float)
            or not math.isfinite(window_s)
            or window_s <= 0
        ):
            raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        if not callable(clock):
            raise ValueError(f"clock must be callable, got {clock!r}")
        self.window_s = float(window_s)
        self._n = buckets
        self._width = self.window_s / buckets
        self._clock = clock
        self._lock = fork_safe_lock()
        self._stamp = [-1] * buckets  # the slice number each ring slot holds
        self._ok = [0] * buckets
        self._failed = [0] * buckets

    def _slice(self) -> int:
        return math.floor(self._clock() / self._width)

    def record(self, ok: bool) -> None:
        """Count one outcome now: ``ok=True`` a success, False a failure."""
        s = self._slice()
        i = s % self._n
        with self._lock:
            if self._stamp[i] != s:
                self._stamp[i] = s
                self._ok[i] = 0
                self._failed[i] = 0
            if ok:
                self._ok[i] += 1
            else:
                self._failed[i] += 1

    def counts(self) -> tuple[int, int]:
        """``(successes, failures)`` in the window."""
        s = self._slice()
        oldest = s - self._n + 1
        ok = failed = 0
        with self._lock:
            for i, stamp in enumerate(self._stamp):
                if oldest <= stamp <= s:
                    ok += self._ok[i]
                    failed += self._failed[i]
        return ok, failed

    def rate(self) -> float:
        """Failures over outcomes in the window (0.0 when there were none)."""
        ok, failed = self.counts()
        total = ok + failed
        return failed / total if total else 0.0

    def clear(self) -> None:
        """Forget every outcome."""
        with self._lock:
            for i in range(self._n):
                self._stamp[i] = -1
                self._ok[i] = 0
                self._failed[i] = 0


@dataclass(frozen=True, slots=True)
class SignalsSnapshot:
    """A client's health at one moment (what ``AiClient.signals_snapshot()`` returns).

    Attributes:
        circuit_state: the circuit breaker's state (prints as ``closed``, ``open``,
            ``half_open``).
        current_inflight: calls in flight now.
        max_inflight: the in-flight cap (None: no cap).
        rate_limiter: the rate limiter's state (None: no rate limiter).
        recent_error_rate: failures over calls in the recent window (0.0 if none).
        recent_requests: calls that ended in the recent window.
    """

    circuit_state: CircuitState
    current_inflight: int
    max_inflight: int | None
    rate_limiter: RateLimiterSnapshot | None
    recent_error_rate: float
    recent_requests: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values only (the state as its string, the limiter as a dict), for JSON."""
        return {
            "circuit_state": str(self.circuit_state),
            "current_inflight": self.current_inflight,
            "max_inflight": self.max_inflight,
            "rate_limiter": None if self.rate_limiter is None else self.rate_limiter.as_dict(),
            "recent_error_rate": self.recent_error_rate,
            "recent_requests": self.recent_requests,
        }
