"""Leases: background work that one replica at a time may do (alert evaluation).

A lease is a row naming its owner and when it ends. :meth:`Lease.hold` takes or renews
it in one atomic statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE owner = me OR
expired RETURNING``): of replicas racing for a free lease exactly one gets it, and a
replica that dies holding it is replaced once ``ttl_s`` passed. On PostgreSQL the times
are the database's clock, so replicas on machines whose clocks differ agree.
"""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy import Engine, or_, update

from aiscope.server.db import db_now, upsert_insert, write_lock
from aiscope.server.tables import leases


def new_owner() -> str:
    """A name for this process that no other replica has (host, pid, random)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """The lease ``name``, held by ``owner`` for ``ttl_s`` seconds at a time."""

    def __init__(self, engine: Engine, name: str, ttl_s: float, owner: str | None = None) -> None:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not ttl_s > 0:
            raise ValueError(f"lease ttl_s must be a number of seconds > 0, got {ttl_s!r}")
        self.engine = engine
        self.name = name
        self.ttl_s = float(ttl_s)
        self.owner = owner or new_owner()

    def hold(self) -> bool:
        """Take the lease if it is free or expired, or renew it if this owner has it;
        True when this owner holds it for the next ``ttl_s`` seconds."""
        now = db_now(self.engine)
        ins = upsert_insert(self.engine)
        stmt = ins(leases).values(name=self.name, owner=self.owner, expires_ts=now + self.ttl_s)
        stmt = stmt.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"owner": stmt.excluded.owner, "expires_ts": stmt.excluded.expires_ts},
            where=or_(leases.c.owner == self.owner, leases.c.expires_ts < now),
        ).returning(leases.c.owner)
        with write_lock(self.engine), self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

    def release(self) -> None:
        """Give the lease up now (if this owner holds it): another replica takes it at
        its next try instead of after ``ttl_s``."""
        with write_lock(self.engine), self.engine.begin() as conn:
            conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.owner == self.owner)
                .values(expires_ts=0.0)
            )
