"""Resilience primitives around provider calls: retries, a circuit breaker, rate and
in-flight limits, and health signals.

:class:`RedisRateLimiter` shares rate limits between processes through Redis.

Each is standalone, safe to share between threads and event loops, never blocks an
event loop, and takes an injectable clock (and sleep functions where it sleeps) for
tests.
"""

from __future__ import annotations

from aiscope.resilience.circuit import (
    CircuitBreaker,
    CircuitPermit,
    CircuitState,
    TransitionCallback,
)
from aiscope.resilience.errors import (
    CircuitOpenError,
    InflightLimitError,
    RateLimitExceededError,
    ResilienceError,
)
from aiscope.resilience.inflight import AsyncInflightSlot, InflightLimiter, InflightSlot
from aiscope.resilience.ratelimit import (
    DEFAULT_BURST_S,
    RateLimiter,
    RateLimiterLike,
    RateLimiterSnapshot,
)
from aiscope.resilience.ratelimit_redis import OnRedisDown, RedisRateLimiter
from aiscope.resilience.retry import (
    DEFAULT_RETRY_ON_STATUS,
    Jitter,
    RetryPolicy,
    parse_retry_after,
)
from aiscope.resilience.signals import ErrorRateWindow, SignalsSnapshot

__all__ = [
    "DEFAULT_BURST_S",
    "DEFAULT_RETRY_ON_STATUS",
    "AsyncInflightSlot",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitPermit",
    "CircuitState",
    "ErrorRateWindow",
    "InflightLimitError",
    "InflightLimiter",
    "InflightSlot",
    "Jitter",
    "OnRedisDown",
    "RateLimitExceededError",
    "RateLimiter",
    "RateLimiterLike",
    "RateLimiterSnapshot",
    "RedisRateLimiter",
    "ResilienceError",
    "RetryPolicy",
    "SignalsSnapshot",
    "TransitionCallback",
    "parse_retry_after",
]
