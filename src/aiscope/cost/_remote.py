"""What the Redis and PostgreSQL ledgers share: nano-dollars, leases, outage handling.

A remote ledger turns every failure to reach its store into
:class:`~aiscope.cost.ledger.LedgerUnavailableError` (the tracker then applies the
budget's fail-closed/fail-open choice), and after a failure it stops trying for
``retry_interval_s`` so that, while the store is down, no call waits on the network
more than once per interval. Spend that cannot be written while the store is down
is kept in memory (per key) and written as soon as the store answers again, so a
fail-open budget loses nothing it charged in a short outage.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TypeVar

from aiscope._stores import StoreOutage
from aiscope.cost.budget import key_period_end
from aiscope.cost.ledger import (
    LedgerUnavailableError,
    OnLedgerDown,
    check_on_ledger_down,
    from_nanos,
    to_nanos,
)

log = logging.getLogger("aiscope.cost")

T = TypeVar("T")

#: a window's keys are kept this long after the window ends (a call admitted just
#: before the boundary settles on the old period after it)
WINDOW_GRACE_S = 3600.0
#: at most this many keys of unwritten spend are kept while the store is down
MAX_PENDING_KEYS = 10_000


#: the largest amount kept (an int64 with headroom: $4.6 billion in nano-dollars)
MAX_NANOS = 2**62


def _amount(name: str, usd: float) -> int:
    """``usd`` in nano-dollars, or a ValueError naming the bad amount."""
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise ValueError(f"ledger {name} must be a finite number of USD, got {usd!r}")
    return max(-MAX_NANOS, min(MAX_NANOS, to_nanos(usd)))


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


class RemoteLedger(StoreOutage):
    """Base of :class:`~aiscope.cost.RedisLedger` and :class:`~aiscope.cost.PostgresLedger`.

    Subclasses implement ``_reserve``, ``_settle`` and ``_read`` on integer
    nano-dollars and list the exceptions that mean "store unreachable" in
    ``_unreachable``.
    """

    _unreachable: tuple[type[BaseException], ...] = (OSError,)
    _store = "store"
    _component = "ledger"
    _down_error = LedgerUnavailableError
    _log = log

    def __init__(
        self,
        *,
        lease_s: float,
        timeout_s: float,
        on_down: OnLedgerDown,
        retry_interval_s: float,
    ) -> None:
        self.lease_s = _positive("lease_s", lease_s)
        self.timeout_s = _positive("timeout_s", timeout_s)
        self.retry_interval_s = _positive("retry_interval_s", retry_interval_s)
        self.on_down: OnLedgerDown = check_on_ledger_down(on_down)
        #: operations that failed because the store was unreachable
        self.unavailable_count = 0
        #: nano-dollars settled while the store was down, not yet written, by key
        self._pending: dict[str, int] = {}
        self._last_spent: dict[str, int] = {}
        self._down_until = 0.0
        self._down_reason = ""
        self._state_lock = threading.Lock()

    # -- the interface (USD) ----------------------------------------------------------
    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
        """Reserve ``amount`` under ``key`` if spent + reserved + amount <= ``limit``."""
        nanos = _amount("amount", amount)
        if nanos < 0:
            raise ValueError(f"ledger amount must be >= 0, got {amount!r}")
        return self._call(self._reserve, key, nanos, _amount("limit", limit))

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        """Drop the reservation, add ``actual`` to spent; return the new spent.

        Never raises for an unreachable store: the spend is kept and written later.
        """
        nanos = _amount("actual", actual)
        try:
            spent = self._call(self._settle, key, reservation_id, nanos)
        except LedgerUnavailableError:
            with self._state_lock:
                if key in self._pending or len(self._pending) < MAX_PENDING_KEYS:
                    self._pending[key] = self._pending.get(key, 0) + nanos
                else:
                    log.error("%s ledger: spend of %s dropped (buffer full)", self._store, key)
                spent = self._last_spent.get(key, 0) + self._pending.get(key, 0)
            return from_nanos(spent)
        if len(self._last_spent) > MAX_PENDING_KEYS:  # old window periods fall off
            self._last_spent.clear()
        self._last_spent[key] = spent
        return from_nanos(spent)

    def spent(self, key: str) -> float:
        """USD spent under ``key`` (one round trip)."""
        spent, _ = self._call(self._read, key)
        return from_nanos(spent)

    def reserved(self, key: str) -> float:
        """USD held by live (unexpired) reservations under ``key`` (one round trip)."""
        _, reserved = self._call(self._read, key)
        return from_nanos(reserved)

    def state(self, key: str) -> tuple[float, float]:
        """USD spent and reserved under ``key``, read together (one round trip)."""
        spent, reserved = self._call(self._read, key)
        return from_nanos(spent), from_nanos(reserved)

    @property
    def pending_usd(self) -> float:
        """Spend settled while the store was down and not written yet."""
        with self._state_lock:
            return from_nanos(sum(self._pending.values()))

    # -- for subclasses -----------------------------------------------------------------
    def _reserve(self, key: str, amount: int, limit: int) -> str | None:
        raise NotImplementedError

    def _settle(self, key: str, reservation_id: str | None, actual: int) -> int:
        raise NotImplementedError

    def _read(self, key: str) -> tuple[int, int]:
        raise NotImplementedError

    @staticmethod
    def _expires_at(key: str) -> float | None:
        """When the store may forget ``key`` (its window's end plus a grace period)."""
        end = key_period_end(key)
        return None if end is None else end + WINDOW_GRACE_S

    # -- outage handling (see aiscope._stores.StoreOutage) ----------------------------
    def _call(self, op: Callable[..., T], *args: object) -> T:
        self._check_up()
        if self._pending:
            self._flush()
        try:
            result = op(*args)
        except self._unreachable as exc:
            self._mark_down(exc)
            raise LedgerUnavailableError(self._down_reason) from exc
        self._mark_up()
        return result

    def _flush(self) -> None:
        with self._state_lock:
            pending, self._pending = self._pending, {}
        for i, (key, nanos) in enumerate(list(pending.items())):
            try:
                self._last_spent[key] = self._settle(key, None, nanos)
            except self._unreachable as exc:
                with self._state_lock:
                    for k, n in list(pending.items())[i:]:
                        self._pending[k] = self._pending.get(k, 0) + n
                self._mark_down(exc)
                raise LedgerUnavailableError(self._down_reason) from exc
