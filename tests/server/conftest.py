"""Server fixtures: each test gets a fresh database on SQLite and on PostgreSQL.

PostgreSQL's URL comes from ``AISCOPE_TEST_POSTGRES_URL`` (CI sets it); each test
works in its own new schema, dropped afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from aiscope.server import Settings, open_database
from aiscope.server.auth import ensure_local_project
from aiscope.server.db import normalize_url
from tests.server.harness import Running, run_server

PG_ENV = "AISCOPE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A URL of an empty database (a SQLite file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/aiscope.db"
        return
    yield from fresh_pg_schema()


def fresh_pg_schema(prefix: str = "aiscope_test") -> Iterator[str]:
    """The URL of a new PostgreSQL schema of its own (the search path), dropped after;
    skipped without ``AISCOPE_TEST_POSTGRES_URL`` (failed in CI)."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql://user@host:port/db")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(base)).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on the test database."""
    eng = open_database(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def server(engine: Engine) -> Iterator[Running]:
    """The server with API keys required."""
    yield from run_server(Settings(engine=engine))


@pytest.fixture
def local_server(engine: Engine) -> Iterator[Running]:
    """The server in keyless local-only mode."""
    ensure_local_project(engine)
    yield from run_server(Settings(engine=engine, local_only=True))
