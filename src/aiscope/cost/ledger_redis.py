"""A budget ledger in Redis, shared by every process and machine that can reach it.

Each operation is one round trip: a Lua script (``EVALSHA``) that Redis runs
atomically, so any number of processes share one budget without overspending.

Per ledger key (one budget's one window period) there are two Redis keys with the
same hash tag, so they live in one Redis Cluster slot:

* ``<prefix>{<key>}`` — a hash: ``spent`` and ``reserved`` (integer nano-dollars)
  and one ``r:<id>`` field per reservation holding its amount;
* ``<prefix>{<key>}:leases`` — a sorted set of reservation ids scored by the
  (Redis server clock) millisecond at which each lease expires.

Every reservation is a lease: the scripts drop expired ones (and give their amount
back) before deciding, so a process killed with ``kill -9`` holds budget for at
most ``lease_s``. Keys of daily and monthly windows expire an hour after the
window ends.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from aiscope._stores import (
    arun_with_reconnect,
    async_redis_client,
    hash_tag,
    redis_client,
    redis_unreachable,
    run_with_reconnect,
)
from aiscope.cost._remote import RemoteLedger, _amount, _positive
from aiscope.cost.ledger import LedgerUnavailableError, OnLedgerDown, from_nanos

if TYPE_CHECKING:
    import redis

# KEYS: hash, leases. The prune step is shared by every script.
_PRUNE = """
-- Redis < 5 replicates scripts verbatim unless told (TIME is not deterministic)
if redis.replicate_commands then redis.replicate_commands() end
local h, z = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  local freed = 0
  for i = 1, #gone do
    local f = 'r:' .. gone[i]
    local a = redis.call('HGET', h, f)
    if a then
      freed = freed + tonumber(a)
      redis.call('HDEL', h, f)
    end
  end
  redis.call('ZREM', z, unpack(gone))
  if freed > 0 then redis.call('HINCRBY', h, 'reserved', -freed) end
end
"""

# ARGV: amount, limit, id, lease_ms, expire_at (0: never) -> {admitted, spent, reserved}
_RESERVE = (
    _PRUNE
    + """
local amount = tonumber(ARGV[1])
local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
if spent + reserved + amount > tonumber(ARGV[2]) then
  return {0, spent, reserved}
end
if amount > 0 then redis.call('HINCRBY', h, 'reserved', ARGV[1]) end
redis.call('HSET', h, 'r:' .. ARGV[3], ARGV[1])
redis.call('ZADD', z, now + tonumber(ARGV[4]), ARGV[3])
local exp = tonumber(ARGV[5])
if exp > 0 then
  redis.call('EXPIREAT', h, exp)
  redis.call('EXPIREAT', z, exp)
end
return {1, spent, reserved + amount}
"""
)

# ARGV: id ('' for none), actual, expire_at (0: never) -> spent
_SETTLE = """
local h, z = KEYS[1], KEYS[2]
if ARGV[1] ~= '' then
  local f = 'r:' .. ARGV[1]
  local a = redis.call('HGET', h, f)
  if a then
    redis.call('HDEL', h, f)
    redis.call('ZREM', z, ARGV[1])
    if a ~= '0' then redis.call('HINCRBY', h, 'reserved', '-' .. a) end
  end
end
local spent = redis.call('HINCRBY', h, 'spent', ARGV[2])
local exp = tonumber(ARGV[3])
if exp > 0 then
  redis.call('EXPIREAT', h, exp)
  redis.call('EXPIREAT', z, exp)
end
return spent
"""

# -> {spent, reserved} with expired leases dropped first
_READ = (
    _PRUNE
    + """
return {tonumber(redis.call('HGET', h, 'spent') or '0'),
        tonumber(redis.call('HGET', h, 'reserved') or '0')}
"""
)


class RedisLedger(RemoteLedger):
    """Budget spend and reservations in Redis (redis-py), atomic across processes.

    ``RedisLedger("redis://host:6379/0")`` or ``RedisLedger(client=redis.Redis(...))``
    (a :class:`redis.RedisCluster` works too: one budget's keys share a slot).

    * ``lease_s`` — a reservation not settled within this time is dropped (its
      process is presumed dead); keep it above your slowest call.
    * ``timeout_s`` — the longest any operation waits for Redis (connect + answer).
    * ``on_down`` — the default for budgets without their own ``on_ledger_down``:
      ``"closed"`` (refuse calls while Redis is unreachable) or ``"open"`` (allow,
      count in ``CostTracker.allowed_while_ledger_down``, log).
    * ``retry_interval_s`` — after a failure, operations fail at once (no network)
      for this long, then Redis is tried again (reconnecting).
    * ``prefix`` — prepended to every Redis key (no braces).
    """

    _store = "Redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | redis.RedisCluster | None = None,
        prefix: str = "aiscope:budget:",
        lease_s: float = 600.0,
        timeout_s: float = 0.5,
        on_down: OnLedgerDown = "closed",
        retry_interval_s: float = 0.5,
    ) -> None:
        super().__init__(
            lease_s=lease_s,
            timeout_s=timeout_s,
            on_down=on_down,
            retry_interval_s=retry_interval_s,
        )
        try:
            import redis  # noqa: F401  (checked here: the message names the extra)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("RedisLedger needs redis-py: pip install 'aiscope[redis]'") from exc
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"RedisLedger prefix must be a str without braces, got {prefix!r}")
        if (url is None) == (client is None):
            raise ValueError("RedisLedger needs exactly one of url= or client=")
        if client is None:
            assert url is not None
            # a dropped connection is retried once (run_with_reconnect), only if it
            # failed at once
            client = redis_client(url, self.timeout_s)
        self.client = client
        self.prefix = prefix
        self._unreachable = redis_unreachable()
        self._lease_ms = str(math.ceil(self.lease_s * 1000))
        self._reserve_script: Any = client.register_script(_RESERVE)
        self._settle_script: Any = client.register_script(_SETTLE)
        self._read_script: Any = client.register_script(_READ)
        self._counter = 0
        self._counter_lock = threading.Lock()
        self._node = uuid.uuid4().hex[:12]

    def _keys(self, key: str) -> list[str]:
        h = f"{self.prefix}{{{hash_tag(key)}}}"
        return [h, h + ":leases"]

    def _exp(self, key: str) -> str:
        at = self._expires_at(key)
        return "0" if at is None else str(math.ceil(at))

    def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        return run_with_reconnect(script, keys, args, self.timeout_s, self._unreachable)

    def _new_id(self) -> str:
        with self._counter_lock:
            self._counter += 1
            n = self._counter
        return f"{self._node}-{os.getpid()}-{n}"  # unique in forked children too

    def _reserve(self, key: str, amount: int, limit: int) -> str | None:
        rid = self._new_id()
        out = self._run(
            self._reserve_script,
            self._keys(key),
            [str(amount), str(limit), rid, self._lease_ms, self._exp(key)],
        )
        return rid if int(out[0]) == 1 else None

    def _settle(self, key: str, reservation_id: str | None, actual: int) -> int:
        out = self._run(
            self._settle_script,
            self._keys(key),
            [reservation_id or "", str(actual), self._exp(key)],
        )
        return int(out)

    def _read(self, key: str) -> tuple[int, int]:
        out = self._run(self._read_script, self._keys(key), [])
        return int(out[0]), int(out[1])


class AsyncRedisLedger(RedisLedger):
    """The asyncio variant of :class:`RedisLedger` (``redis.asyncio``): the same keys,
    scripts, leases and outage handling, with awaitable methods.

    ``await ledger.try_reserve(key, amount, limit)``, ``await ledger.settle(...)``,
    ``await ledger.state(key)``. It shares budgets with :class:`RedisLedger`s on the
    same Redis and prefix. :class:`~aiscope.CostTracker` is synchronous and takes a
    :class:`RedisLedger`; this one is for asyncio code that keeps budgets itself (or
    reads them, as a dashboard does) without blocking its event loop. Each operation
    is also bounded by ``asyncio.timeout(timeout_s)``; at most ``max_connections``
    connections are opened (more tasks wait for one, within the timeout).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "aiscope:budget:",
        lease_s: float = 600.0,
        timeout_s: float = 0.5,
        on_down: OnLedgerDown = "closed",
        retry_interval_s: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("AsyncRedisLedger needs exactly one of url= or client=")
        if client is None:
            assert url is not None
            client = async_redis_client(url, _positive("timeout_s", timeout_s), max_connections)
        super().__init__(
            client=client,
            prefix=prefix,
            lease_s=lease_s,
            timeout_s=timeout_s,
            on_down=on_down,
            retry_interval_s=retry_interval_s,
        )

    async def _arun(self, script: Any, keys: list[str], args: list[str]) -> Any:
        self._check_up()
        if self._pending:
            await self._aflush()
        try:
            out = await arun_with_reconnect(script, keys, args, self.timeout_s, self._unreachable)
        except self._unreachable as exc:
            self._mark_down(exc)
            raise LedgerUnavailableError(self._down_reason) from exc
        self._mark_up()
        return out

    async def _aflush(self) -> None:
        with self._state_lock:
            pending, self._pending = self._pending, {}
        for i, (key, nanos) in enumerate(list(pending.items())):
            try:
                async with asyncio.timeout(self.timeout_s):
                    out = await self._settle_script(
                        keys=self._keys(key), args=["", str(nanos), self._exp(key)]
                    )
                self._last_spent[key] = int(out)
            except self._unreachable as exc:
                with self._state_lock:
                    for k, n in list(pending.items())[i:]:
                        self._pending[k] = self._pending.get(k, 0) + n
                self._mark_down(exc)
                raise LedgerUnavailableError(self._down_reason) from exc

    async def try_reserve(  # type: ignore[override]
        self, key: str, amount: float, limit: float
    ) -> str | None:
        """Reserve ``amount`` under ``key`` if spent + reserved + amount <= ``limit``."""
        nanos = _amount("amount", amount)
        if nanos < 0:
            raise ValueError(f"ledger amount must be >= 0, got {amount!r}")
        rid = self._new_id()
        args = [str(nanos), str(_amount("limit", limit)), rid, self._lease_ms, self._exp(key)]
        out = await self._arun(self._reserve_script, self._keys(key), args)
        return rid if int(out[0]) == 1 else None

    async def settle(  # type: ignore[override]
        self, key: str, reservation_id: str | None, actual: float
    ) -> float:
        """Drop the reservation, add ``actual`` to spent; return the new spent (buffered,
        never raised, while Redis is unreachable)."""
        nanos = _amount("actual", actual)
        try:
            out = await self._arun(
                self._settle_script, self._keys(key), [reservation_id or "", str(nanos),
                                                        self._exp(key)]
            )  # fmt: skip
        except LedgerUnavailableError:
            with self._state_lock:
                self._pending[key] = self._pending.get(key, 0) + nanos
                return from_nanos(self._last_spent.get(key, 0) + self._pending[key])
        self._last_spent[key] = int(out)
        return from_nanos(int(out))

    async def state(self, key: str) -> tuple[float, float]:  # type: ignore[override]
        """USD spent and reserved under ``key`` (one round trip)."""
        out = await self._arun(self._read_script, self._keys(key), [])
        return from_nanos(int(out[0])), from_nanos(int(out[1]))

    async def spent(self, key: str) -> float:  # type: ignore[override]
        """USD spent under ``key``."""
        return (await self.state(key))[0]

    async def reserved(self, key: str) -> float:  # type: ignore[override]
        """USD held by live reservations under ``key``."""
        return (await self.state(key))[1]

    async def aclose(self) -> None:
        """Close the client's connections."""
        client: Any = self.client
        await client.aclose()
