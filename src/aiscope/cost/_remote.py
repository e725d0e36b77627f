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
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiscope._stores import StoreOutage
from aiscope.cost._nanos import (
    NanoLedgerBase,
    OnLedgerDown,
    ReserveItem,
    SettleItem,
    check_on_ledger_down,
    from_nanos,
)
from aiscope.cost._periods import key_period_end
from aiscope.cost.ledger import LedgerUnavailableError

log = logging.getLogger("aiscope.cost")

T = TypeVar("T")

#: a window's keys are kept this long after the window ends (a call admitted just
#: before the boundary settles on the old period after it)
WINDOW_GRACE_S = 3600.0
#: at most this many keys of unwritten spend are kept while the store is down
MAX_PENDING_KEYS = 10_000


def positive(name: str, value: object) -> float:
    """``value`` as a float if it is a number > 0, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


class RemoteLedger(NanoLedgerBase, StoreOutage):
    """Base of :class:`~aiscope.cost.RedisLedger` and :class:`~aiscope.cost.PostgresLedger`.

    Subclasses implement ``_reserve_many``, ``_settle_many`` and ``_read`` on
    integer nano-dollars (each one round trip) and list the exceptions that mean
    "store unreachable" in
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
        self.lease_s = positive("lease_s", lease_s)
        self.timeout_s = positive("timeout_s", timeout_s)
        self.retry_interval_s = positive("retry_interval_s", retry_interval_s)
        self.on_down: OnLedgerDown = check_on_ledger_down(on_down)
        #: operations that failed because the store was unreachable
        self.unavailable_count = 0
        #: nano-dollars settled while the store was down, not yet written, by key
        self._pending: dict[str, int] = {}
        self._last_spent: dict[str, int] = {}
        self._down_until = 0.0
        self._down_reason = ""
        self._state_lock = threading.Lock()

    # -- the interface (nano-dollars; the USD methods come from NanoLedgerBase) ---------
    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        """Reserve every item or none, atomically (one round trip)."""
        return self._call(self._reserve_many, items)

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        """Drop the reservations, add the actual amounts to spent; the new spents.

        Never raises for an unreachable store: the spend is kept and written later.
        """
        try:
            spent = self._call(self._settle_many, items)
        except LedgerUnavailableError:
            out = []
            with self._state_lock:
                for key, _, nanos in items:
                    if key in self._pending or len(self._pending) < MAX_PENDING_KEYS:
                        self._pending[key] = self._pending.get(key, 0) + nanos
                    else:
                        log.error("%s ledger: spend of %s dropped (buffer full)", self._store, key)
                    out.append(self._last_spent.get(key, 0) + self._pending.get(key, 0))
            return out
        self._remember(items, spent)
        return spent

    def state_nanos(self, key: str) -> tuple[int, int]:
        """Spent and reserved under ``key`` (one round trip)."""
        return self._call(self._read, key)

    def _remember(self, items: Sequence[SettleItem], spent: list[int]) -> None:
        if len(self._last_spent) > MAX_PENDING_KEYS:  # old window periods fall off
            self._last_spent.clear()
        for (key, _, _), s in zip(items, spent, strict=True):
            self._last_spent[key] = s

    @property
    def pending_usd(self) -> float:
        """Spend settled while the store was down and not written yet."""
        with self._state_lock:
            return from_nanos(sum(self._pending.values()))

    # -- for subclasses -----------------------------------------------------------------
    def _reserve_many(self, items: Sequence[ReserveItem]) -> list[str] | int:
        raise NotImplementedError

    def _settle_many(self, items: Sequence[SettleItem]) -> list[int]:
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

    def _pending_items(self) -> list[SettleItem]:
        with self._state_lock:
            pending, self._pending = self._pending, {}
        return [(key, None, nanos) for key, nanos in pending.items()]

    def _keep_pending(self, items: Sequence[SettleItem]) -> None:
        with self._state_lock:
            for key, _, nanos in items:
                self._pending[key] = self._pending.get(key, 0) + nanos

    def _flush(self) -> None:
        items = self._pending_items()
        try:
            self._remember(items, self._settle_many(items))
        except self._unreachable as exc:
            self._keep_pending(items)
            self._mark_down(exc)
            raise LedgerUnavailableError(self._down_reason) from exc
