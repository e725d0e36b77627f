"""What aiscope's clients of remote stores (Redis, PostgreSQL) share.

* :class:`StoreOutage` — after a failure to reach the store, fail at once (no
  network) for ``retry_interval_s``, then try again; count and log the outage once.
* :func:`redis_client` / :func:`async_redis_client` — redis-py clients whose every
  operation is bounded by a timeout, with no retries inside redis-py (each would
  wait the timeout again).
* :func:`run_with_reconnect` / :func:`arun_with_reconnect` — a script call retried
  once when it failed at once (a connection dropped while idle: Redis restarted).
* :func:`hash_tag` — the Redis Cluster hash tag of a name, so that all keys of one
  budget or one rate limiter live in one slot.

Used by the Redis and PostgreSQL budget ledgers (:mod:`aiscope.cost`) and the Redis
rate limiter (:mod:`aiscope.resilience.ratelimit_redis`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import redis

log = logging.getLogger("aiscope")

T = TypeVar("T")

__all__ = [
    "StoreOutage",
    "arun_with_reconnect",
    "async_redis_client",
    "hash_tag",
    "redis_client",
    "redis_unreachable",
    "run_with_reconnect",
]


class StoreOutage:
    """Outage back-off for a client of a remote store (a mixin).

    The class using it sets ``retry_interval_s``, ``unavailable_count = 0``,
    ``_down_until = 0.0``, ``_down_reason = ""`` and ``_state_lock`` (a lock) in its
    ``__init__``, and names itself in ``_store`` ("Redis") and ``_component``
    ("ledger"). ``_down_error`` is the exception raised while the store is down.
    """

    _store = "store"
    _component = "client"
    _down_error: type[Exception] = ConnectionError
    _log: logging.Logger = log
    retry_interval_s: float
    unavailable_count: int
    _down_until: float
    _down_reason: str
    _state_lock: threading.Lock

    def _check_up(self) -> None:
        """Fail at once (no network) within ``retry_interval_s`` of the last failure."""
        if time.monotonic() < self._down_until:
            with self._state_lock:
                self.unavailable_count += 1
            raise self._down_error(self._down_reason)

    def _mark_up(self) -> None:
        if self._down_reason:
            with self._state_lock:
                if self._down_reason:
                    self._log.warning("%s %s: store reachable again", self._store, self._component)
                    self._down_reason = ""

    _unreachable: tuple[type[BaseException], ...] = (OSError,)

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Around one operation on the store: fail at once while it is down; an
        ``_unreachable`` error marks it down and raises ``_down_error``; success marks
        it up."""
        self._check_up()
        try:
            yield
        except self._unreachable as exc:
            self._mark_down(exc)
            raise self._down_error(self._down_reason) from exc
        self._mark_up()

    def _mark_down(self, exc: BaseException) -> None:
        with self._state_lock:
            self.unavailable_count += 1
            first = not self._down_reason
            self._down_reason = f"{self._store} unreachable: {type(exc).__name__}: {exc}"
            self._down_until = time.monotonic() + self.retry_interval_s
        if first:
            self._log.warning("%s %s: %s", self._store, self._component, self._down_reason)


def hash_tag(name: str) -> str:
    """The Redis Cluster hash tag for ``name``: ``name`` itself unless it holds a brace
    (which would end the tag early); such names are tagged by a digest (no ':' in it,
    so it never equals a name)."""
    if "{" in name or "}" in name:
        return "#" + hashlib.sha1(name.encode()).hexdigest()
    return name


def redis_unreachable() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis could not be reached in time"."""
    import redis as redis_mod

    return (redis_mod.ConnectionError, redis_mod.TimeoutError, OSError)


def redis_client(url: str, timeout_s: float) -> redis.Redis:
    """A redis-py client for ``url`` whose connect and every answer wait at most
    (nearly) ``timeout_s``, with no retries inside redis-py."""
    import redis as redis_mod
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_mod.Redis.from_url(
        url,
        socket_timeout=timeout_s * 0.9,
        socket_connect_timeout=timeout_s * 0.9,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def async_redis_client(url: str, timeout_s: float, max_connections: int) -> Any:
    """The ``redis.asyncio`` twin of :func:`redis_client`: at most ``max_connections``
    connections; more tasks wait for a free one (within the timeout) instead of
    failing at once."""
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    t = timeout_s * 0.9
    pool = aredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=t,
        socket_timeout=t,
        socket_connect_timeout=t,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )
    return aredis.Redis(connection_pool=pool)


def run_with_reconnect(
    script: Callable[..., T],
    keys: list[str],
    args: list[str],
    timeout_s: float,
    unreachable: tuple[type[BaseException], ...],
) -> T:
    """``script(keys=, args=)``; a failure that came at once (a connection dropped since
    its last use) is retried once on a new connection. A timeout already used the
    budget: it is raised."""
    t0 = time.monotonic()
    try:
        return script(keys=keys, args=args)
    except unreachable:
        if time.monotonic() - t0 > timeout_s * 0.1:
            raise
        return script(keys=keys, args=args)


async def arun_with_reconnect(
    script: Callable[..., Awaitable[T]],
    keys: list[str],
    args: list[str],
    timeout_s: float,
    unreachable: tuple[type[BaseException], ...],
) -> T:
    """The asyncio twin of :func:`run_with_reconnect`; each try is also bounded by
    ``asyncio.timeout(timeout_s)``."""
    import asyncio  # here, not at the top: ``import aiscope`` must not load asyncio (and ssl)

    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            return await script(keys=keys, args=args)
    except unreachable:
        if time.monotonic() - t0 > timeout_s * 0.1:
            raise
        async with asyncio.timeout(timeout_s):
            return await script(keys=keys, args=args)
