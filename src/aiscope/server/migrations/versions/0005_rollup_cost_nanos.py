"""Rollups keep cost as integer nano-dollars (``cost_nanos`` BIGINT) instead of a float
``cost_usd``, so every sum a read makes is exact.

Each stored cost becomes its nearest nano-dollar with the SDK's own conversion
(:func:`aiscope.cost.ledger.to_nanos`), so a rollup an older server wrote as the
nearest float of an exact sum is that exact sum again. A value no real call makes
(infinity, or beyond the ledgers' ceiling: rows from before ingest bounded costs)
is kept at that ceiling, with its sign; NaN becomes 0.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from aiscope.cost.ledger import from_nanos, to_nanos

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("aiscope.server.migrations")
_BATCH = 5000
#: the most a converted row holds: the ledgers' ceiling, an int64 with headroom ($4.6e9)
MAX_NANOS = 2**62
_CEILING_USD = from_nanos(MAX_NANOS)


def _nanos(usd: float) -> int:
    """A stored float cost as nano-dollars, kept within what the ledgers hold."""
    if math.isnan(usd):
        return 0
    if not -_CEILING_USD < usd < _CEILING_USD:
        log.warning("a rollup cost of %r USD is kept at the ledgers' ceiling", usd)
        return MAX_NANOS if usd > 0 else -MAX_NANOS
    return to_nanos(usd)


def _copy(source: str, target: str, convert: Callable[[Any], Any]) -> None:
    """Fill ``rollups.<target>`` from ``<source>`` through ``convert``, in id order and
    bounded batches (a large table is never held in memory)."""
    rollups = sa.table("rollups", sa.column("id"), sa.column(source), sa.column(target))
    conn = op.get_bind()
    update = (
        sa.update(rollups)
        .where(rollups.c.id == sa.bindparam("row_id"))
        .values({target: sa.bindparam("value")})
    )
    last = -1
    while True:
        rows = conn.execute(
            sa.select(rollups.c.id, rollups.c[source])
            .where(rollups.c.id > last)
            .order_by(rollups.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        conn.execute(update, [{"row_id": i, "value": convert(v)} for i, v in rows])
        last = rows[-1][0]


def _replace(
    old: str, new: str, new_type: sa.types.TypeEngine[Any], convert: Callable[[Any], Any]
) -> None:
    """Replace column ``rollups.<old>`` by ``<new>``, each value converted."""
    op.add_column("rollups", sa.Column(new, new_type, nullable=True))
    _copy(old, new, convert)
    # SQLite cannot alter a column: batch mode copies the table (indexes included)
    with op.batch_alter_table("rollups") as batch:
        batch.alter_column(new, existing_type=new_type, nullable=False)
        batch.drop_column(old)


def upgrade() -> None:
    """``cost_usd`` (float) becomes ``cost_nanos`` (BIGINT), each row converted."""
    _replace("cost_usd", "cost_nanos", sa.BigInteger(), _nanos)


def downgrade() -> None:
    """Back to a float ``cost_usd`` (the nearest float of each exact sum)."""
    _replace("cost_nanos", "cost_usd", sa.Float(), from_nanos)
