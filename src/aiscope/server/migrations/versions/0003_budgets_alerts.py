"""Budgets and alert rules per project; calls indexed by request id (feedback joins).

Revision ID: 0003_budgets_alerts
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``budgets`` and ``alert_rules``; index ``calls`` by request id."""
    op.create_table(
        "budgets",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_budgets_project_name", "budgets", ["project_id", "name"], unique=True)
    op.create_table(
        "alert_rules",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_alert_rules_project_name", "alert_rules", ["project_id", "name"], unique=True
    )
    op.create_index("ix_calls_project_request", "calls", ["project_id", "request_id"])


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    op.drop_index("ix_calls_project_request", table_name="calls")
    op.drop_index("ux_alert_rules_project_name", table_name="alert_rules")
    op.drop_table("alert_rules")
    op.drop_index("ux_budgets_project_name", table_name="budgets")
    op.drop_table("budgets")
