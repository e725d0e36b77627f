"""A PostgreSQL database of a test's own: ``CREATE DATABASE`` a unique name on the
server ``AISCOPE_TEST_POSTGRES_URL`` points at, dropped afterwards (no statistics,
no other test's tables)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aiscope.server.db import normalize_url

PG_ENV = "AISCOPE_TEST_POSTGRES_URL"


def base_url() -> str:
    """The test server's URL; skips (fails on CI) when it is not set."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql://user@host:port/db")
    return base


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database named ``<prefix>_<random>``."""
    base = base_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
