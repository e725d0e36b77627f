"""A budget ledger in Redis, shared by every process and machine that can reach it.

Each operation is one round trip: a Lua script (``EVALSHA``) that Redis runs
atomically, so any number of processes share one budget without overspending. A
call held by several budgets (total, team, user, ...) is reserved on all of them by
one script, all or none. On Redis Cluster, where one script cannot span slots, the
budgets of a call are reserved one after another and those already held are
released at once when one refuses.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiscope._stores import (
    arun_with_reconnect,
    async_redis_client,
    hash_tag,
    redis_client,
    redis_unreachable,
    run_with_reconnect,
)
from aiscope.cost._nanos import usd_amount
from aiscope.cost._remote import RemoteLedger, positive
from aiscope.cost.ledger import (
    LedgerUnavailableError,
    OnLedgerDown,
    ReserveItem,
    SettleItem,
    from_nanos,
)

if TYPE_CHECKING:
    import redis

# Every script's KEYS are (hash, leases) pairs, one per ledger key. The prune step
# (drop expired leases, give their amount back) is shared by the scripts.
_PRUNE = """
-- Redis < 5 replicates scripts verbatim unless told (TIME is not deterministic)
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function prune(h, z)
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
end
"""

# ARGV: lease_ms, then per key: amount, limit, id, expire_at (0: never)
# -> {1} when every key admitted its amount (all reserved), else {0, index} of the
# first that did not (nothing reserved)
_RESERVE = (
    _PRUNE
    + """
local n = #KEYS / 2
for i = 1, n do
  local h = KEYS[2 * i - 1]
  prune(h, KEYS[2 * i])
  local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  if spent + reserved + tonumber(ARGV[4 * i - 2]) > tonumber(ARGV[4 * i - 1]) then
    return {0, i}
  end
end
local lease = tonumber(ARGV[1])
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amount, id = ARGV[4 * i - 2], ARGV[4 * i]
  if amount ~= '0' then redis.call('HINCRBY', h, 'reserved', amount) end
  redis.call('HSET', h, 'r:' .. id, amount)
  redis.call('ZADD', z, now + lease, id)
  local exp = tonumber(ARGV[4 * i + 1])
  if exp > 0 then
    redis.call('EXPIREAT', h, exp)
    redis.call('EXPIREAT', z, exp)
  end
end
return {1}
"""
)

# ARGV per key: id ('' for none), actual, expire_at (0: never) -> the spent of each
_SETTLE = """
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local id = ARGV[3 * i - 2]
  if id ~= '' then
    local f = 'r:' .. id
    local a = redis.call('HGET', h, f)
    if a then
      redis.call('HDEL', h, f)
      redis.call('ZREM', z, id)
      if a ~= '0' then redis.call('HINCRBY', h, 'reserved', '-' .. a) end
    end
  end
  out[i] = redis.call('HINCRBY', h, 'spent', ARGV[3 * i - 1])
  local exp = tonumber(ARGV[3 * i])
  if exp > 0 then
    redis.call('EXPIREAT', h, exp)
    redis.call('EXPIREAT', z, exp)
  end
end
return out
"""

# -> {spent, reserved} of one key, with expired leases dropped first
_READ = (
    _PRUNE
    + """
prune(KEYS[1], KEYS[2])
return {tonumber(redis.call('HGET', KEYS[1], 'spent') or '0'),
        tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')}
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
            import redis as redis_mod  # checked here: the message names the extra
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
        self._cluster = (
            isinstance(client, redis_mod.RedisCluster) or "Cluster" in type(client).__name__
        )

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

    def _reserve_call(self, items: Sequence[ReserveItem]) -> tuple[list[str], list[str], list[str]]:
        """The reserve script's keys and args for ``items``, and the new reservation ids."""
        keys: list[str] = []
        args = [self._lease_ms]
        ids = []
        for key, amount, limit in items:
            rid = self._new_id()
            keys += self._keys(key)
            args += [str(amount), str(limit), rid, self._exp(key)]
            ids.append(rid)
        return keys, args, ids

    def _settle_call(self, items: Sequence[SettleItem]) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        args: list[str] = []
        for key, reservation_id, actual in items:
            keys += self._keys(key)
            args += [reservation_id or "", str(actual), self._exp(key)]
        return keys, args

    def _reserve_many(self, items: Sequence[ReserveItem]) -> list[str] | int:
        if self._cluster and len(items) > 1:
            return self._reserve_each(items)
        keys, args, ids = self._reserve_call(items)
        out = self._run(self._reserve_script, keys, args)
        return ids if int(out[0]) == 1 else int(out[1]) - 1

    def _reserve_each(self, items: Sequence[ReserveItem]) -> list[str] | int:
        # Redis Cluster: one script per slot; what was held is released on a refusal
        ids: list[str] = []
        for i, item in enumerate(items):
            got = self._reserve_many([item])
            if isinstance(got, int):
                if ids:
                    self._settle_many([(k, r, 0) for (k, _, _), r in zip(items, ids, strict=False)])
                return i
            ids += got
        return ids

    def _settle_many(self, items: Sequence[SettleItem]) -> list[int]:
        if self._cluster and len(items) > 1:
            return [s for item in items for s in self._settle_many([item])]
        keys, args = self._settle_call(items)
        return [int(x) for x in self._run(self._settle_script, keys, args)]

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
            client = async_redis_client(url, positive("timeout_s", timeout_s), max_connections)
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
        items = self._pending_items()
        try:
            async with asyncio.timeout(self.timeout_s):
                keys, args = self._settle_call(items)
                out = await self._settle_script(keys=keys, args=args)
            self._remember(items, [int(x) for x in out])
        except self._unreachable as exc:
            self._keep_pending(items)
            self._mark_down(exc)
            raise LedgerUnavailableError(self._down_reason) from exc

    async def try_reserve(  # type: ignore[override]
        self, key: str, amount: float, limit: float
    ) -> str | None:
        """Reserve ``amount`` under ``key`` if spent + reserved + amount <= ``limit``."""
        nanos = usd_amount("amount", amount)
        if nanos < 0:
            raise ValueError(f"ledger amount must be >= 0, got {amount!r}")
        keys, args, ids = self._reserve_call([(key, nanos, usd_amount("limit", limit))])
        out = await self._arun(self._reserve_script, keys, args)
        return ids[0] if int(out[0]) == 1 else None

    async def settle(  # type: ignore[override]
        self, key: str, reservation_id: str | None, actual: float
    ) -> float:
        """Drop the reservation, add ``actual`` to spent; return the new spent (buffered,
        never raised, while Redis is unreachable)."""
        nanos = usd_amount("actual", actual)
        items = [(key, reservation_id, nanos)]
        try:
            out = await self._arun(self._settle_script, *self._settle_call(items))
        except LedgerUnavailableError:
            self._keep_pending(items)
            with self._state_lock:
                return from_nanos(self._last_spent.get(key, 0) + self._pending[key])
        self._remember(items, [int(out[0])])
        return from_nanos(int(out[0]))

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
