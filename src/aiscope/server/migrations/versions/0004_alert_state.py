"""Alert state in the store (pending/firing per rule and label set) and leases, so one
replica at a time evaluates alerts and each change is notified once.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``alert_states`` and ``leases``."""
    op.create_table(
        "alert_states",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("labels", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("since_ts", sa.Float(), nullable=False),
        sa.Column("notified_ts", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("updated_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_alert_states_project_rule_labels",
        "alert_states",
        ["project_id", "rule", "labels"],
        unique=True,
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("expires_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    op.drop_table("leases")
    op.drop_index("ux_alert_states_project_rule_labels", table_name="alert_states")
    op.drop_table("alert_states")
