"""A budget ledger in PostgreSQL (psycopg 3), for teams that run PostgreSQL and not Redis.

Each operation is one statement (``SELECT <function>(...)``, one round trip) in its
own autocommitted transaction, however many budgets (total, team, user, ...) hold
the call: it is reserved on all of them or on none. The functions lock the budget's row first
(``SELECT ... FOR UPDATE``), so concurrent reserves of one budget are serialised on
that row (row-level atomicity) and never deadlock; different budgets never wait on
each other.

Schema (created by the ledger, idempotently, in ``schema``; it does not need the
server's migrations and can share the server's database, whose tables it does not
touch):

* ``aiscope_ledger(key, spent, reserved, expires_at)`` — integer nano-dollars;
* ``aiscope_ledger_leases(id, key, amount, expires_at)`` — one row per reservation;
  expired leases are dropped (and their amount given back) by the next reserve of
  their key, and never counted by reads, so a process killed with ``kill -9`` holds
  budget for at most ``lease_s``. Lease times are the database server's clock.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiscope.cost._remote import RemoteLedger
from aiscope.cost.ledger import OnLedgerDown, ReserveItem, SettleItem

if TYPE_CHECKING:
    import psycopg

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS {s}.aiscope_ledger (
    key text PRIMARY KEY,
    spent bigint NOT NULL DEFAULT 0,
    reserved bigint NOT NULL DEFAULT 0,
    expires_at timestamptz);
CREATE TABLE IF NOT EXISTS {s}.aiscope_ledger_leases (
    id text PRIMARY KEY,
    key text NOT NULL,
    amount bigint NOT NULL,
    expires_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS aiscope_ledger_leases_key_expires
    ON {s}.aiscope_ledger_leases (key, expires_at);

-- one statement per call, however many budgets hold it: every key or none is
-- reserved. Rows are locked in key order, so two calls over the same budgets
-- never deadlock. Returns 0 when all were reserved, else the (1-based) index of
-- the first key the call did not fit.
CREATE OR REPLACE FUNCTION {s}.aiscope_ledger_reserve_many_v1(
    p_keys text[], p_amounts bigint[], p_limits bigint[], p_ids text[], p_lease_s float8,
    p_expires timestamptz[]) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_spent bigint; v_reserved bigint; v_freed bigint; i int;
BEGIN
    FOR i IN SELECT o.n FROM unnest(p_keys) WITH ORDINALITY AS o(k, n) ORDER BY o.k LOOP
        SELECT spent, reserved INTO v_spent, v_reserved
            FROM {s}.aiscope_ledger WHERE key = p_keys[i] FOR UPDATE;
        IF NOT FOUND THEN  -- the key's first call (racing ones meet at the primary key)
            INSERT INTO {s}.aiscope_ledger (key, expires_at) VALUES (p_keys[i], p_expires[i])
                ON CONFLICT (key) DO NOTHING;
            SELECT spent, reserved INTO v_spent, v_reserved
                FROM {s}.aiscope_ledger WHERE key = p_keys[i] FOR UPDATE;
        END IF;
        -- leases of this key change only under this row's lock: this sees them all
        WITH gone AS (
            DELETE FROM {s}.aiscope_ledger_leases
            WHERE key = p_keys[i] AND expires_at < clock_timestamp() RETURNING amount)
        SELECT coalesce(sum(amount), 0) INTO v_freed FROM gone;
        IF v_freed > 0 THEN
            UPDATE {s}.aiscope_ledger SET reserved = reserved - v_freed WHERE key = p_keys[i];
            v_reserved := v_reserved - v_freed;
        END IF;
        IF v_spent + v_reserved + p_amounts[i] > p_limits[i] THEN
            RETURN i;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_keys) LOOP
        INSERT INTO {s}.aiscope_ledger_leases (id, key, amount, expires_at) VALUES
            (p_ids[i], p_keys[i], p_amounts[i],
             clock_timestamp() + make_interval(secs => p_lease_s));
        UPDATE {s}.aiscope_ledger SET reserved = reserved + p_amounts[i] WHERE key = p_keys[i];
    END LOOP;
    RETURN 0;
END $$;

-- the new spent of each key, in the order given
CREATE OR REPLACE FUNCTION {s}.aiscope_ledger_settle_many_v1(
    p_keys text[], p_ids text[], p_actuals bigint[], p_expires timestamptz[])
    RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint; v_spent bigint; i int; v_out bigint[];
BEGIN
    v_out := array_fill(0::bigint, ARRAY[cardinality(p_keys)]);
    FOR i IN SELECT o.n FROM unnest(p_keys) WITH ORDINALITY AS o(k, n) ORDER BY o.k LOOP
        PERFORM 1 FROM {s}.aiscope_ledger WHERE key = p_keys[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO {s}.aiscope_ledger (key, expires_at) VALUES (p_keys[i], p_expires[i])
                ON CONFLICT (key) DO NOTHING;
            PERFORM 1 FROM {s}.aiscope_ledger WHERE key = p_keys[i] FOR UPDATE;
        END IF;
        v_amount := NULL;
        IF p_ids[i] IS NOT NULL THEN
            DELETE FROM {s}.aiscope_ledger_leases WHERE id = p_ids[i] AND key = p_keys[i]
                RETURNING amount INTO v_amount;
        END IF;
        UPDATE {s}.aiscope_ledger
            SET spent = spent + p_actuals[i], reserved = reserved - coalesce(v_amount, 0)
            WHERE key = p_keys[i] RETURNING spent INTO v_spent;
        v_out[i] := v_spent;
    END LOOP;
    RETURN v_out;
END $$;
"""

_READ_SQL = """
SELECT l.spent, l.reserved - coalesce((
    SELECT sum(amount) FROM {s}.aiscope_ledger_leases
    WHERE key = l.key AND expires_at < clock_timestamp()), 0)
FROM {s}.aiscope_ledger l WHERE l.key = %s
"""


class PostgresLedger(RemoteLedger):
    """Budget spend and reservations in PostgreSQL, atomic across processes.

    ``PostgresLedger("postgresql://user@host:5432/db")``. ``schema`` is where its two
    tables and two functions live (created if missing). ``lease_s``, ``timeout_s``,
    ``on_down`` and ``retry_interval_s`` mean what they mean for
    :class:`~aiscope.cost.RedisLedger`; ``timeout_s`` bounds each statement
    (``statement_timeout``) and the wait for a pooled connection, while connecting
    is bounded by libpq's ``connect_timeout`` (whole seconds, at least 2).
    ``pool_size`` connections at most are opened per process.
    ``synchronous_commit=False`` halves the cost of an operation by not waiting for
    the WAL flush; a crash of the database server (not of the application) may then
    forget the last fraction of a second of spend.
    """

    _store = "PostgreSQL"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        lease_s: float = 600.0,
        timeout_s: float = 2.0,
        on_down: OnLedgerDown = "closed",
        retry_interval_s: float = 0.5,
        pool_size: int = 8,
        synchronous_commit: bool = True,
    ) -> None:
        super().__init__(
            lease_s=lease_s,
            timeout_s=timeout_s,
            on_down=on_down,
            retry_interval_s=retry_interval_s,
        )
        try:
            import psycopg as pg
            from psycopg import sql
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("PostgresLedger needs psycopg 3: pip install psycopg") from exc
        if not isinstance(schema, str) or not schema:
            raise ValueError(f"PostgresLedger schema must be a non-empty str, got {schema!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        self._pg = pg
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self.synchronous_commit = bool(synchronous_commit)
        self._unreachable = (pg.OperationalError, pg.errors.QueryCanceled, OSError)
        s = sql.Identifier(schema).as_string(None)
        self._s = s
        self._reserve_sql = (
            f"SELECT {s}.aiscope_ledger_reserve_many_v1(%s::text[], %s::bigint[], "
            "%s::bigint[], %s::text[], %s, %s::timestamptz[])"
        )
        self._settle_sql = (
            f"SELECT {s}.aiscope_ledger_settle_many_v1(%s::text[], %s::text[], "
            "%s::bigint[], %s::timestamptz[])"
        )
        self._read_sql = _READ_SQL.format(s=s)
        self._pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._opened = 0
        self._pool_lock = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[Any] = []
        self._schema_ready = False
        try:
            self.create_schema()
        except self._unreachable as exc:
            # the database is down at start-up: the app still starts (budgets apply
            # their on_ledger_down choice) and the schema is made on first contact
            self._mark_down(exc)

    def create_schema(self) -> None:
        """Create the tables and functions if missing (safe to run from many processes)."""
        with self._conn() as conn, conn.transaction():
            # CREATE OR REPLACE FUNCTION run concurrently can fail ("tuple concurrently
            # updated"): one creator at a time
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('aiscope_ledger_schema'))")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._s}")
            conn.execute(_SCHEMA_SQL.format(s=self._s), prepare=False)
        self._schema_ready = True

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        ms = max(1, round(self.timeout_s * 1000))
        return self._pg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(2, round(self.timeout_s)),
            options=f"-c statement_timeout={ms} -c lock_timeout={ms}"
            + ("" if self.synchronous_commit else " -c synchronous_commit=off"),
            prepare_threshold=0,  # prepared at once: these few statements run all the time
        )

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        if os.getpid() != self._pid:
            # a forked child must not use (nor close: that would end the parent's
            # session) the parent's connections
            with self._pool_lock:
                if os.getpid() != self._pid:
                    while not self._pool.empty():
                        self._inherited.append(self._pool.get_nowait())
                    self._opened = 0
                    self._pid = os.getpid()
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            with self._pool_lock:
                may_open = self._opened < self.pool_size
                if may_open:
                    self._opened += 1
            if may_open:
                try:
                    conn = self._connect()
                except BaseException:
                    with self._pool_lock:
                        self._opened -= 1
                    raise
            else:
                try:
                    conn = self._pool.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise TimeoutError(
                        f"no PostgreSQL connection free within {self.timeout_s}s"
                    ) from None
        broken = False
        try:
            yield conn
        except self._unreachable:
            broken = conn.closed or conn.broken
            raise
        finally:
            if broken or conn.closed:
                with self._pool_lock:
                    self._opened -= 1
                with suppress(Exception):
                    conn.close()
            else:
                self._pool.put(conn)

    def close(self) -> None:
        """Close this process's pooled connections."""
        while not self._pool.empty():
            self._pool.get_nowait().close()
        with self._pool_lock:
            self._opened = 0

    # -- operations -----------------------------------------------------------------------
    def _expiry(self, key: str) -> datetime | None:
        at = self._expires_at(key)
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        if not self._schema_ready:
            self.create_schema()
        t0 = time.monotonic()
        try:
            with self._conn() as conn:
                return conn.execute(query, params).fetchone()
        except self._unreachable:
            # the server restarted or ended our sessions: every idle connection is
            # likely dead too, so drop them all; a failure that came at once (a dead
            # connection) is retried on a new one, a slow one has used the timeout
            self._drop_idle()
            if time.monotonic() - t0 > self.timeout_s * 0.1:
                raise
            with self._conn() as conn:
                return conn.execute(query, params).fetchone()

    def _drop_idle(self) -> None:
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            with self._pool_lock:
                self._opened -= 1
            with suppress(Exception):
                conn.close()

    def _reserve_many(self, items: Sequence[ReserveItem]) -> list[str] | int:
        ids = [uuid.uuid4().hex for _ in items]
        row = self._one(
            self._reserve_sql,
            (
                [k for k, _, _ in items],
                [a for _, a, _ in items],
                [lim for _, _, lim in items],
                ids,
                self.lease_s,
                [self._expiry(k) for k, _, _ in items],
            ),
        )
        return ids if row[0] == 0 else int(row[0]) - 1

    def _settle_many(self, items: Sequence[SettleItem]) -> list[int]:
        row = self._one(
            self._settle_sql,
            (
                [k for k, _, _ in items],
                [r for _, r, _ in items],
                [a for _, _, a in items],
                [self._expiry(k) for k, _, _ in items],
            ),
        )
        return [int(x) for x in row[0]]

    def _read(self, key: str) -> tuple[int, int]:
        row = self._one(self._read_sql, (key,))
        if row is None:
            return 0, 0
        return int(row[0]), int(row[1])
