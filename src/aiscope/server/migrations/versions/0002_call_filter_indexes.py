"""Indexes for a page of calls filtered by model, provider, feature, team, status,
operation or trace, newest first, so such a page reads only its own rows, in order,
at any table size.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# spelled out, not imported from tables.py: a migration stays as it was written
COLUMNS = ("model", "provider", "feature", "team", "status", "operation", "trace_id")


def upgrade() -> None:
    """One (project_id, column, start_ts, id) index per filter column of ``calls``."""
    for col in COLUMNS:
        op.create_index(
            f"ix_calls_project_{col}_time", "calls", ["project_id", col, "start_ts", "id"]
        )


def downgrade() -> None:
    """Drop the filter indexes."""
    for col in COLUMNS:
        op.drop_index(f"ix_calls_project_{col}_time", table_name="calls")
