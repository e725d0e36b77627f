"""Rate limits shared by every process and machine that reaches one Redis.

:class:`RedisRateLimiter` keeps the same two token buckets as the in-process
:class:`~aiscope.resilience.RateLimiter` (requests and tokens per minute, the same
default bursts, the same reservations that may go into debt, the same
``max_wait_s`` refusals), but in Redis, so four replicas with a limit of 600
requests a minute send 600 between them, not 2,400.

One round trip per operation: a Lua script, registered once per client and run
with ``EVALSHA``, refills the buckets from the Redis server's clock, decides, takes
and returns the wait, atomically. Waiting happens in the caller's process after
the round trip (``time.sleep`` / ``asyncio.sleep``), never inside Redis.

One limiter is one Redis hash, ``<prefix>{<name>}``: its hash tag keeps it in one
Redis Cluster slot. It expires once both buckets would be full again, so idle
limiters cost nothing. Name a limiter after what it limits
(``"openai:gpt-4o:team-a"``); every process that uses the same name and prefix
shares it (and should give it the same rates: each caller's rates are the ones
applied to its own round trip).

When Redis is unreachable (or answers with an error) within ``timeout_s``, the
limiter does what ``on_down`` says: ``"open"`` (the default) lets the call go
without a limit, counts it in ``allowed_while_down`` and logs the outage once;
``"closed"`` refuses it with :class:`~aiscope.resilience.RateLimitExceededError`,
the error of a limit refusal, counted in ``refused_while_down``. For
``retry_interval_s`` after a failure no call touches the network at all; then
Redis is tried again (reconnecting). No call waits on Redis longer than
``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

from aiscope import _stores
from aiscope._fork import fork_safe_lock
from aiscope.resilience._limits import (
    ReservingLimiter,
    check_limits,
    check_max_wait,
    check_rate,
    check_tokens,
)
from aiscope.resilience.errors import RateLimitExceededError
from aiscope.resilience.ratelimit import RateLimiterSnapshot

if TYPE_CHECKING:
    import redis

__all__ = ["OnRedisDown", "RedisRateLimiter"]

log = logging.getLogger("aiscope.resilience")

#: What a :class:`RedisRateLimiter` does while Redis is unreachable.
OnRedisDown = Literal["open", "closed"]

# KEYS[1]: the limiter's hash (fields rl, tl: levels; ru, tu: when last refilled, s).
# ARGV: op, request rate/s, request capacity, token rate/s, token capacity (rate 0: no
# such limit), requests, tokens, max wait s (-1: none).
# op take -> {granted 0/1, wait s}; give (requests, tokens back); adjust (tokens > 0
# taken, < 0 given back); read -> {request level, token level}.
_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local rrate, rcap = tonumber(ARGV[2]), tonumber(ARGV[3])
local trate, tcap = tonumber(ARGV[4]), tonumber(ARGV[5])
local nreq, ntok = tonumber(ARGV[6]), tonumber(ARGV[7])
local st = redis.call('HMGET', k, 'rl', 'ru', 'tl', 'tu')
local function level(l, u, rate, cap)
  if rate <= 0 then return 0 end
  if not l then return cap end
  local elapsed = now - tonumber(u)
  if elapsed < 0 then elapsed = 0 end
  local v = tonumber(l) + elapsed * rate
  if v > cap then v = cap end
  return v
end
local function wait_for(lvl, n, rate, cap)
  local need = n
  if need > cap then need = cap end
  if need <= lvl then return 0 end
  return (need - lvl) / rate
end
local rl = level(st[1], st[2], rrate, rcap)
local tl = level(st[3], st[4], trate, tcap)
if op == 'read' then
  return {string.format('%.17g', rl), string.format('%.17g', tl)}
end
local wait = 0
if op == 'take' then
  if rrate > 0 then wait = wait_for(rl, nreq, rrate, rcap) end
  if trate > 0 and ntok > 0 then
    local w = wait_for(tl, ntok, trate, tcap)
    if w > wait then wait = w end
  end
  local mw = tonumber(ARGV[8])
  if mw >= 0 and wait > mw then return {0, string.format('%.17g', wait)} end
  rl = rl - nreq
  tl = tl - ntok
elseif op == 'give' then
  rl = math.min(rl + nreq, rcap)
  tl = math.min(tl + ntok, tcap)
elseif op == 'adjust' then
  tl = math.min(tl - ntok, tcap)
end
local ttl, f = 0, {}
local u = string.format('%.6f', now)
if rrate > 0 then
  f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'rl', string.format('%.17g', rl), 'ru', u
  ttl = math.max(ttl, (rcap - rl) / rrate)
end
if trate > 0 then
  f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'tl', string.format('%.17g', tl), 'tu', u
  ttl = math.max(ttl, (tcap - tl) / trate)
end
redis.call('HSET', k, unpack(f))
-- a bucket left alone this long is full again: the same as no key
redis.call('PEXPIRE', k, math.ceil(ttl * 1000) + 1000)
return {1, string.format('%.17g', wait)}
"""


class _RedisDown(ConnectionError):
    """Redis was unreachable within the timeout (internal: mapped to ``on_down``)."""


class RedisRateLimiter(_stores.StoreOutage, ReservingLimiter):
    """Requests-per-minute and tokens-per-minute limits in Redis, shared by every process.

    ``RedisRateLimiter("redis://host:6379/0", name="openai:team-a", requests_per_minute=600)``
    or ``RedisRateLimiter(client=redis.Redis(...), name=...)`` (a
    :class:`redis.RedisCluster` works too). It satisfies
    :class:`~aiscope.resilience.RateLimiterLike`: give it to
    ``AiClient.builder().rate_limiter(...)`` or ``aiscope.instrument(rate_limiter=...)``.

    Args:
        url: the Redis URL (or pass ``client=``).
        name: what is limited; processes using the same name and prefix share the limit.
        requests_per_minute / tokens_per_minute / request_capacity / token_capacity /
            max_wait_s: as for :class:`~aiscope.resilience.RateLimiter`.
        client: a redis-py client instead of ``url``.
        async_client: a ``redis.asyncio`` client for the async methods (default: one
            made from ``url`` per event loop; with only ``client=``, the async methods
            run the sync one in a worker thread).
        prefix: prepended to the Redis key (no braces).
        timeout_s: the longest any operation waits for Redis (connect + answer).
        on_down: ``"open"`` (allow while Redis is unreachable, count, log) or
            ``"closed"`` (refuse with RateLimitExceededError).
        retry_interval_s: after a failure, operations fail at once (no network) for
            this long, then Redis is tried again.
        max_connections: connections of each asyncio client made from ``url``.
        sleep / async_sleep: what the waits sleep with (inject in tests).

    See the module doc for the Redis layout and the outage behaviour.
    """

    _store = "Redis"
    _component = "rate limiter"
    _down_error = _RedisDown
    _log = log

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        request_capacity: float | None = None,
        token_capacity: float | None = None,
        max_wait_s: float | None = None,
        client: redis.Redis | redis.RedisCluster | None = None,
        async_client: Any = None,
        prefix: str = "aiscope:ratelimit:",
        timeout_s: float = 0.25,
        on_down: OnRedisDown = "open",
        retry_interval_s: float = 0.5,
        max_connections: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        try:
            import redis as redis_mod
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "RedisRateLimiter needs redis-py: pip install 'aiscope[redis]'"
            ) from exc
        if not isinstance(name, str) or not name:
            raise ValueError(f"RedisRateLimiter name must be a non-empty str, got {name!r}")
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(
                f"RedisRateLimiter prefix must be a str without braces, got {prefix!r}"
            )
        if (url is None) == (client is None):
            raise ValueError("RedisRateLimiter needs exactly one of url= or client=")
        if on_down not in ("open", "closed"):
            raise ValueError(f"on_down must be 'open' or 'closed', got {on_down!r}")
        for arg, value in (("timeout_s", timeout_s), ("retry_interval_s", retry_interval_s)):
            check_rate(arg, value)
            if value is None:
                raise ValueError(f"{arg} must be a number > 0, got None")
        self.request_capacity, self.token_capacity = check_limits(
            requests_per_minute, tokens_per_minute, request_capacity, token_capacity
        )
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ValueError(f"max_connections must be an int >= 1, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {max_connections!r}")
        for arg, fn in (("sleep", sleep), ("async_sleep", async_sleep)):
            if not callable(fn):
                raise ValueError(f"{arg} must be callable, got {fn!r}")
        self.name = name
        self.url = url
        self.prefix = prefix
        self.key = f"{prefix}{{{_stores.hash_tag(name)}}}"
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.max_wait_s = check_max_wait(max_wait_s)
        self.timeout_s = float(timeout_s)
        self.retry_interval_s = float(retry_interval_s)
        self.on_down: OnRedisDown = on_down
        self.max_connections = max_connections
        self._sleep = sleep
        self._async_sleep = async_sleep
        # the rates as the script reads them (per second; "0": no such limit)
        self._rates = [
            repr(requests_per_minute / 60.0) if requests_per_minute else "0",
            repr(self.request_capacity or 0.0),
            repr(tokens_per_minute / 60.0) if tokens_per_minute else "0",
            repr(self.token_capacity or 0.0),
        ]
        self._max_wait_arg = "-1" if self.max_wait_s is None else repr(self.max_wait_s)
        self._unlimited = requests_per_minute is None and tokens_per_minute is None
        if client is None:
            assert url is not None
            client = _stores.redis_client(url, self.timeout_s)
        self.client = client
        self._script: Any = client.register_script(_SCRIPT)
        self._async_client = async_client
        self._async_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        # any Redis error (unreachable, read-only replica, out of memory) means "down"
        self._unreachable: tuple[type[BaseException], ...] = (
            *_stores.redis_unreachable(),
            redis_mod.RedisError,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        #: operations that failed because Redis was unreachable
        self.unavailable_count = 0
        #: calls let through without a limit while Redis was unreachable (on_down="open")
        self.allowed_while_down = 0
        #: calls refused while Redis was unreachable (on_down="closed")
        self.refused_while_down = 0
        self._waiting = 0
        self._down_until = 0.0
        self._down_reason = ""
        self._state_lock = fork_safe_lock()
        self._waiting_lock = self._state_lock

    # -- one round trip ---------------------------------------------------------------
    def _args(self, op: str, requests: int, tokens: int) -> list[str]:
        return [op, *self._rates, str(requests), str(tokens), self._max_wait_arg]

    def _run(self, op: str, requests: int, tokens: int) -> Any:
        """The script's answer, or _RedisDown (the outage recorded)."""
        with self._reaching():
            return _stores.run_with_reconnect(
                self._script, [self.key], self._args(op, requests, tokens), self.timeout_s,
                self._unreachable,
            )  # fmt: skip

    def _ascript(self) -> Any:
        loop = asyncio.get_running_loop()
        script = self._async_scripts.get(loop)
        if script is None:
            # an asyncio client's connections belong to the loop that made them
            client = self._async_client or _stores.async_redis_client(
                self.url or "", self.timeout_s, self.max_connections
            )
            script = self._async_scripts[loop] = client.register_script(_SCRIPT)
        return script

    async def _arun(self, op: str, requests: int, tokens: int) -> Any:
        if self._async_client is None and self.url is None:
            return await asyncio.to_thread(self._run, op, requests, tokens)
        with self._reaching():
            return await _stores.arun_with_reconnect(
                self._ascript(), [self.key], self._args(op, requests, tokens), self.timeout_s,
                self._unreachable,
            )  # fmt: skip

    def _decided(self, out: Any) -> float:
        """The wait of a granted reservation; a refusal raised."""
        wait = float(out[1])
        if int(out[0]) != 1:
            raise RateLimitExceededError(self.name, wait)
        return wait if wait > 0 else 0.0

    def _while_down(self, exc: _RedisDown) -> float:
        with self._state_lock:
            if self.on_down == "open":
                self.allowed_while_down += 1
                return 0.0
            self.refused_while_down += 1
        raise RateLimitExceededError(self.name, None, reason=str(exc)) from exc

    # -- reservation ----------------------------------------------------------------------
    def reserve(self, tokens: int = 0) -> float:
        """Reserve one request and ``tokens`` tokens in Redis; the seconds to wait first.

        One round trip. With ``max_wait_s`` set, a longer wait raises
        RateLimitExceededError and takes nothing; so does a fail-closed limiter while
        Redis is unreachable (a fail-open one returns 0).
        """
        if tokens:
            check_tokens("tokens", tokens)
        if self._unlimited:
            return 0.0
        try:
            return self._decided(self._run("take", 1, tokens))
        except _RedisDown as exc:
            return self._while_down(exc)

    async def reserve_async(self, tokens: int = 0) -> float:
        """:meth:`reserve` on the asyncio client (never blocks the event loop)."""
        if tokens:
            check_tokens("tokens", tokens)
        if self._unlimited:
            return 0.0
        try:
            return self._decided(await self._arun("take", 1, tokens))
        except _RedisDown as exc:
            return self._while_down(exc)

    def _give_back(self, tokens: int) -> None:
        self.refund(tokens, requests=1)

    def _give_back_soon(self, tokens: int) -> None:
        self._background(self._acorrect("give", 1, tokens))

    # -- corrections ----------------------------------------------------------------------
    def refund(self, tokens: int, *, requests: int = 0) -> None:
        """Give back ``tokens`` tokens (and ``requests`` requests) that were not used
        (lost, and logged, while Redis is unreachable)."""
        check_tokens("tokens", tokens)
        check_tokens("requests", requests)
        if (tokens or requests) and not self._unlimited:
            self._correct("give", requests, tokens)

    def adjust(self, estimated: int, actual: int) -> None:
        """Correct a reservation of ``estimated`` tokens to the ``actual`` usage.

        Called from a running event loop, the round trip runs as a task on the
        asyncio client instead of blocking the loop.
        """
        check_tokens("estimated", estimated)
        check_tokens("actual", actual)
        delta = actual - estimated
        if delta == 0 or self.tokens_per_minute is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._correct("adjust", 0, delta)
            return
        self._background(self._acorrect("adjust", 0, delta))

    def _correct(self, op: str, requests: int, tokens: int) -> None:
        try:
            self._run(op, requests, tokens)
        except _RedisDown:
            log.debug("rate limiter %s: %s lost while Redis is unreachable", self.name, op)

    async def _acorrect(self, op: str, requests: int, tokens: int) -> None:
        try:
            await self._arun(op, requests, tokens)
        except _RedisDown:
            log.debug("rate limiter %s: %s lost while Redis is unreachable", self.name, op)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    # -- observation ----------------------------------------------------------------------
    def snapshot(self) -> RateLimiterSnapshot:
        """The buckets' levels in Redis (one round trip; None while Redis is unreachable),
        their capacities, and the callers of this process waiting now."""
        levels: tuple[float | None, float | None] = (None, None)
        if not self._unlimited:
            try:
                out = self._run("read", 0, 0)
                levels = (float(out[0]), float(out[1]))
            except _RedisDown:
                pass
        return RateLimiterSnapshot(
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            available_requests=None if self.requests_per_minute is None else levels[0],
            available_tokens=None if self.tokens_per_minute is None else levels[1],
            request_capacity=self.request_capacity,
            token_capacity=self.token_capacity,
            waiting=self._waiting,
        )

    def close(self) -> None:
        """Close the sync client's connections."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the asyncio client this event loop uses (made from ``url``)."""
        script = self._async_scripts.pop(asyncio.get_running_loop(), None)
        if script is not None and self._async_client is None:
            await script.registered_client.aclose()

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(name={self.name!r}, requests_per_minute="
            f"{self.requests_per_minute!r}, tokens_per_minute={self.tokens_per_minute!r}, "
            f"on_down={self.on_down!r})"
        )
