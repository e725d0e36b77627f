"""Alembic environment: always run programmatically with a connection (see db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from aiscope.server.tables import metadata

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # replicas starting at once: one migrates, the others wait (released at commit)
    connection.execute(text("SELECT pg_advisory_xact_lock(636300001)"))
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
