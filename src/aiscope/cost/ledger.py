"""Where budget spend is kept: a tiny interface with in-memory and SQLite ledgers.

A ledger keeps, per key (one budget's one window period), what was spent and
what is reserved by calls in flight. ``try_reserve`` is atomic: it admits an
amount only if spent + reserved + amount stays within the limit. The Redis and
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
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from aiscope._fork import after_fork_in_child, fork_safe_lock

#: What a budget does when its ledger's store cannot be reached: ``"closed"``
#: refuses the call (no request is sent), ``"open"`` lets it through, counts and logs it.
OnLedgerDown = Literal["closed", "open"]
ON_LEDGER_DOWN: tuple[str, ...] = ("closed", "open")

#: Remote ledgers keep money as integer nano-dollars (1e-9 USD).
NANOS_PER_USD = 1_000_000_000


class LedgerUnavailableError(Exception):
    """The ledger's store (Redis, PostgreSQL) could not be reached within its timeout."""


def to_nanos(usd: float) -> int:
    """USD as integer nano-dollars: the one conversion at the remote ledgers' boundary."""
    return round(usd * NANOS_PER_USD)


def from_nanos(nanos: int) -> float:
    """Integer nano-dollars back to USD."""
    return nanos / NANOS_PER_USD


def check_on_ledger_down(value: object) -> OnLedgerDown:
    """Validate an ``on_ledger_down`` choice."""
    if value not in ON_LEDGER_DOWN:
        raise ValueError(f"on_ledger_down must be 'closed' or 'open', got {value!r}")
    return value  # type: ignore[return-value]


@runtime_checkable
class Ledger(Protocol):
    """Budget storage. Amounts are USD; reservation ids are opaque strings."""

    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
        """Reserve ``amount`` under ``key`` if it fits within ``limit``; return its id or None."""

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        """Drop the reservation (if any) and add ``actual`` to spent; return the new spent."""

    def spent(self, key: str) -> float:
        """USD spent under ``key``."""

    def reserved(self, key: str) -> float:
        """USD reserved by calls in flight under ``key``."""


class MemoryLedger:
    """The default ledger: one process, a lock, and a few dicts.

    Only the most recent ``max_keys`` keys are kept (old window periods fall off),
    so memory stays bounded however long the process runs.
    """

    def __init__(self, max_keys: int = 256) -> None:
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._open: dict[str, tuple[str, float]] = {}
        self._lock = fork_safe_lock()
        self._max_keys = max_keys
        self._counter = 0
        after_fork_in_child(self, MemoryLedger._forget_parent_reservations)

    def _forget_parent_reservations(self) -> None:
        # In a forked child the parent's calls in flight never settle here: their
        # reservations would hold the child's budget for ever. What was spent stays.
        self._open = {}
        self._reserved = dict.fromkeys(self._reserved, 0.0)

    def _touch(self, key: str) -> None:
        if key not in self._spent:
            if len(self._spent) >= self._max_keys:
                oldest = next(iter(self._spent))
                del self._spent[oldest]
                self._reserved.pop(oldest, None)
            self._spent[key] = 0.0
            self._reserved[key] = 0.0

    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
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

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        with self._lock:
            spent = self._spent.get(key)
            if spent is None:
                self._touch(key)
                spent = 0.0
            if reservation_id is not None:
                held = self._open.pop(reservation_id, None)
                if held is not None and held[0] in self._reserved:
                    self._reserved[held[0]] = max(0.0, self._reserved[held[0]] - held[1])
            spent += actual
            self._spent[key] = spent
            return spent

    def spent(self, key: str) -> float:
        return self._spent.get(key, 0.0)

    def reserved(self, key: str) -> float:
        return self._reserved.get(key, 0.0)


class SQLiteLedger:
    """A ledger in a SQLite file, shared by every process on one machine.

    Reservations are rows with an expiry, so a process killed mid-call cannot
    hold budget forever: expired reservations are dropped on the next reserve.
    Each reserve runs in a ``BEGIN IMMEDIATE`` transaction (one writer at a time).
    """

    def __init__(self, path: str | os.PathLike[str], reservation_ttl_s: float = 600.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.reservation_ttl_s = reservation_ttl_s
        self._local = threading.local()
        conn = self._conn()
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS aiscope_budget_spent (
                key TEXT PRIMARY KEY, spent REAL NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS aiscope_budget_reservations (
                id TEXT PRIMARY KEY, key TEXT NOT NULL, amount REAL NOT NULL,
                expires_at REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS aiscope_budget_reservations_key
                ON aiscope_budget_reservations (key);
            """
        )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM aiscope_budget_reservations WHERE expires_at < ?", (now,))
            spent = self._spent(conn, key)
            reserved = self._reserved(conn, key)
            if spent + reserved + amount > limit:
                conn.execute("COMMIT")
                return None
            rid = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO aiscope_budget_reservations VALUES (?, ?, ?, ?)",
                (rid, key, amount, now + self.reservation_ttl_s),
            )
            conn.execute("COMMIT")
            return rid
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if reservation_id is not None:
                conn.execute(
                    "DELETE FROM aiscope_budget_reservations WHERE id = ?", (reservation_id,)
                )
            conn.execute(
                "INSERT INTO aiscope_budget_spent (key, spent) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET spent = spent + excluded.spent",
                (key, actual),
            )
            spent = self._spent(conn, key)
            conn.execute("COMMIT")
            return spent
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _spent(conn: sqlite3.Connection, key: str) -> float:
        row = conn.execute(
            "SELECT spent FROM aiscope_budget_spent WHERE key = ?", (key,)
        ).fetchone()
        return float(row[0]) if row else 0.0

    @staticmethod
    def _reserved(conn: sqlite3.Connection, key: str) -> float:
        row = conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM aiscope_budget_reservations "
            "WHERE key = ? AND expires_at >= ?",
            (key, time.time()),
        ).fetchone()
        return float(row[0])

    def spent(self, key: str) -> float:
        return self._spent(self._conn(), key)

    def reserved(self, key: str) -> float:
        return self._reserved(self._conn(), key)
