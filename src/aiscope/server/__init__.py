"""The aiscope server: OTLP ingest into SQLite or PostgreSQL, and a query API.

``aiscope serve`` runs it; in Python, :func:`open_database` opens (and migrates)
a database and :func:`create_app` builds the ASGI app over it.
"""

from __future__ import annotations

from aiscope.server.app import create_app
from aiscope.server.auth import ProjectKeys, create_project
from aiscope.server.deps import is_loopback
from aiscope.server.run import (
    DEFAULT_DB,
    DEFAULT_PORT,
    notifiers_from,
    open_database,
    open_ledger,
    serve,
)
from aiscope.server.settings import Settings

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_PORT",
    "ProjectKeys",
    "Settings",
    "create_app",
    "create_project",
    "is_loopback",
    "notifiers_from",
    "open_database",
    "open_ledger",
    "serve",
]
