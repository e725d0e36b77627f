"""Where budget spend is kept: a tiny interface with in-memory and SQLite ledgers.

A ledger keeps, per key (one budget's one window period, for one tag value when
the budget is per team, user, ...), what was spent and what is reserved by calls
in flight, as integer nano-dollars (1e-9 USD): sums are exact, so a call that
lands exactly on a limit is admitted and one a nano-dollar over it is refused.
``try_reserve`` is atomic: it admits an amount only if spent + reserved + amount
stays within the limit; ``reserve_nanos`` does the same for several keys at once
(one call held by several budgets), admitting all or none. The Redis and
PostgreSQL ledgers (:mod:`aiscope.cost.ledger_redis`,
:mod:`aiscope.cost.ledger_postgres`) implement the same four methods for budgets
shared by several machines; a ledger that cannot reach its store raises
:class:`LedgerUnavailableError` from ``try_reserve``, ``spent`` and ``reserved``
and the tracker applies the budget's ``on_ledger_down`` choice.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from aiscope._fork import after_fork_in_child, fork_safe_lock
from aiscope.cost._nanos import (
    NANOS_PER_USD,
    NanoLedgerBase,
    OnLedgerDown,
    ReserveItem,
    SettleItem,
    from_nanos,
    to_nanos,
)

__all__ = [
    "NANOS_PER_USD",
    "Ledger",
    "LedgerUnavailableError",
    "MemoryLedger",
    "NanoLedger",
    "OnLedgerDown",
    "ReserveItem",
    "SQLiteLedger",
    "SettleItem",
    "from_nanos",
    "to_nanos",
]


class LedgerUnavailableError(Exception):
    """The ledger's store (Redis, PostgreSQL) could not be reached within its timeout."""


@runtime_checkable
class Ledger(Protocol):
    """Budget storage. Amounts are USD; reservation ids are opaque strings.

    A ledger of your own needs only these four methods. The built-in ones also
    implement :class:`NanoLedger`, which :class:`~aiscope.CostTracker` uses: amounts
    in integer nano-dollars, and one atomic reservation over several budgets.
    """

    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
        """Reserve ``amount`` under ``key`` if it fits within ``limit``; return its id or None."""

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        """Drop the reservation (if any) and add ``actual`` to spent; return the new spent."""

    def spent(self, key: str) -> float:
        """USD spent under ``key``."""

    def reserved(self, key: str) -> float:
        """USD reserved by calls in flight under ``key``."""


@runtime_checkable
class NanoLedger(Protocol):
    """What the tracker asks of a ledger: integer nano-dollars, several keys at once."""

    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        """Reserve every ``(key, amount, limit)`` or none: the reservation ids (one per
        item, in order) when each fits, else the index of the first that does not."""

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        """For each ``(key, id, actual)``: drop the reservation, add ``actual`` to spent;
        the new spent of each key, in order."""

    def state_nanos(self, key: str) -> tuple[int, int]:
        """Spent and reserved under ``key``."""

    def reserve_one(self, key: str, amount: int, limit: int) -> str | None:
        """:meth:`reserve_nanos` of one key (a call held by one budget): its id or None."""

    def settle_one(self, key: str, reservation_id: str | None, actual: int) -> int:
        """:meth:`settle_nanos` of one key: its new spent."""


class MemoryLedger(NanoLedgerBase):
    """The default ledger: one process, a lock, and a few dicts.

    Only the most recent ``max_keys`` keys are kept (old window periods, and the
    least recent of many per-user budget values, fall off), so memory stays
    bounded however long the process runs.
    """

    def __init__(self, max_keys: int = 65_536) -> None:
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._open: dict[str, tuple[str, int]] = {}
        self._lock = fork_safe_lock()
        self._max_keys = max_keys
        self._counter = 0
        after_fork_in_child(self, MemoryLedger._forget_parent_reservations)

    def _forget_parent_reservations(self) -> None:
        # In a forked child the parent's calls in flight never settle here: their
        # reservations would hold the child's budget for ever. What was spent stays.
        self._open = {}
        self._reserved = dict.fromkeys(self._reserved, 0)

    def _touch(self, key: str) -> None:
        if key not in self._spent:
            if len(self._spent) >= self._max_keys:
                oldest = next(iter(self._spent))
                del self._spent[oldest]
                self._reserved.pop(oldest, None)
            self._spent[key] = 0
            self._reserved[key] = 0

    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        spent, reserved = self._spent, self._reserved
        with self._lock:
            for i, (key, amount, limit) in enumerate(items):
                if key not in spent:
                    self._touch(key)
                if spent[key] + reserved[key] + amount > limit:
                    return i
            ids = []
            for key, amount, _ in items:
                reserved[key] += amount
                self._counter += 1
                rid = str(self._counter)
                self._open[rid] = (key, amount)
                ids.append(rid)
            return ids

    def reserve_one(self, key: str, amount: int, limit: int) -> str | None:
        # the common case (a call held by one budget), without the lists
        with self._lock:
            if key not in self._spent:
                self._touch(key)
            if self._spent[key] + self._reserved[key] + amount > limit:
                return None
            self._reserved[key] += amount
            self._counter += 1
            rid = str(self._counter)
            self._open[rid] = (key, amount)
            return rid

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        # each key settles on its own: a call's settles need not be atomic together
        return [self.settle_one(key, rid, actual) for key, rid, actual in items]

    def settle_one(self, key: str, reservation_id: str | None, actual: int) -> int:
        with self._lock:
            spent = self._spent.get(key)
            if spent is None:
                self._touch(key)
                spent = 0
            if reservation_id is not None:
                held = self._open.pop(reservation_id, None)
                if held is not None and held[0] in self._reserved:
                    self._reserved[held[0]] = max(0, self._reserved[held[0]] - held[1])
            spent += actual
            self._spent[key] = spent
            return spent

    def state_nanos(self, key: str) -> tuple[int, int]:
        return self._spent.get(key, 0), self._reserved.get(key, 0)


#: the tables of ledgers written before amounts were nano-dollars (USD as REAL)
_SQLITE_OLD_TABLES = ("aiscope_budget_spent", "aiscope_budget_reservations")


class SQLiteLedger(NanoLedgerBase):
    """A ledger in a SQLite file, shared by every process on one machine.

    Reservations are rows with an expiry, so a process killed mid-call cannot
    hold budget forever: expired reservations are dropped on the next reserve.
    Each reserve runs in a ``BEGIN IMMEDIATE`` transaction (one writer at a time).
    Amounts are INTEGER nano-dollars; a file written by an older aiscope (USD as
    REAL) is converted when first opened.
    """

    def __init__(self, path: str | os.PathLike[str], reservation_ttl_s: float = 600.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.reservation_ttl_s = reservation_ttl_s
        self._local = threading.local()
        conn = self._conn()
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS aiscope_ledger_spent (
                key TEXT PRIMARY KEY, spent INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS aiscope_ledger_reservations (
                id TEXT PRIMARY KEY, key TEXT NOT NULL, amount INTEGER NOT NULL,
                expires_at REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS aiscope_ledger_reservations_key
                ON aiscope_ledger_reservations (key);
            """
        )
        self._convert_old_tables(conn)

    @staticmethod
    def _convert_old_tables(conn: sqlite3.Connection) -> None:
        old = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
                _SQLITE_OLD_TABLES,
            )
        }
        if not old:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if "aiscope_budget_spent" in old:
                conn.execute(
                    "INSERT INTO aiscope_ledger_spent (key, spent) "
                    "SELECT key, CAST(round(spent * 1e9) AS INTEGER) FROM aiscope_budget_spent "
                    "WHERE true ON CONFLICT(key) DO UPDATE SET spent = spent + excluded.spent"
                )
            if "aiscope_budget_reservations" in old:
                conn.execute(
                    "INSERT OR IGNORE INTO aiscope_ledger_reservations "
                    "SELECT id, key, CAST(round(amount * 1e9) AS INTEGER), expires_at "
                    "FROM aiscope_budget_reservations"
                )
            for table in old:  # names from the fixed tuple above
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM aiscope_ledger_reservations WHERE expires_at < ?", (now,))
            for i, (key, amount, limit) in enumerate(items):
                spent, reserved = self._state(conn, key)
                if spent + reserved + amount > limit:
                    conn.execute("COMMIT")
                    return i
            ids = []
            for key, amount, _ in items:
                rid = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO aiscope_ledger_reservations VALUES (?, ?, ?, ?)",
                    (rid, key, amount, now + self.reservation_ttl_s),
                )
                ids.append(rid)
            conn.execute("COMMIT")
            return ids
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = []
            for key, reservation_id, actual in items:
                if reservation_id is not None:
                    conn.execute(
                        "DELETE FROM aiscope_ledger_reservations WHERE id = ?", (reservation_id,)
                    )
                row = conn.execute(
                    "INSERT INTO aiscope_ledger_spent (key, spent) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET spent = spent + excluded.spent "
                    "RETURNING spent",
                    (key, actual),
                ).fetchone()
                out.append(int(row[0]))
            conn.execute("COMMIT")
            return out
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _state(conn: sqlite3.Connection, key: str) -> tuple[int, int]:
        row = conn.execute(
            "SELECT (SELECT spent FROM aiscope_ledger_spent WHERE key = ?), "
            "(SELECT COALESCE(SUM(amount), 0) FROM aiscope_ledger_reservations "
            "WHERE key = ? AND expires_at >= ?)",
            (key, key, time.time()),
        ).fetchone()
        return int(row[0] or 0), int(row[1])

    def state_nanos(self, key: str) -> tuple[int, int]:
        return self._state(self._conn(), key)
