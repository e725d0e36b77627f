"""Opening the database: URL rules, SQLite settings, and migrations at start.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed (acknowledged)
write survives the process being killed; PostgreSQL needs nothing special.
Migrations run programmatically with Alembic, under an advisory lock on
PostgreSQL so replicas starting together do not race.
"""

from __future__ import annotations

import json
import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")
#: SQLite's page cache per connection, KiB
CACHE_KIB = 128 * 1024


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL for ``url``: ``postgresql://`` uses psycopg 3, a bare path is SQLite."""
    if not isinstance(url, str) or not url:
        raise ValueError("db url must be a non-empty string (sqlite:///path or postgresql://...)")
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401  (the engine loads it anyway)
        except ImportError:
            raise ValueError(
                "a postgresql:// database needs psycopg: pip install 'aiscope[postgres]'"
            ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"db url: only sqlite and postgresql are supported, got {url!r}")
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged batch is on disk
    cur.execute("PRAGMA busy_timeout=10000")
    # the calls indexes outgrow SQLite's default 2 MB page cache after some 100,000
    # calls; then each insert rereads index pages from the OS (allocated as used)
    cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def json_loads(text: str | bytes) -> Any:
    """JSON columns decoded with orjson (the dashboard's percentiles read thousands of
    sketches); what only the standard library reads (NaN, huge ints) still decodes."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def open_engine(url: str) -> Engine:
    """An engine for ``url`` (see :func:`normalize_url`), SQLite configured for WAL."""
    real = normalize_url(url)
    parsed = make_url(real)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            real, connect_args={"check_same_thread": False}, json_deserializer=json_loads
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(real, pool_pre_ping=True, json_deserializer=json_loads)


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """SQLite has one writer: serialize writes in-process instead of spinning on busy."""
    if engine.dialect.name == "sqlite":
        return _SQLITE_LOCKS.setdefault(str(engine.url), threading.Lock())
    return nullcontext()


_SQLITE_LOCKS: dict[str, threading.Lock] = {}


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def upsert_insert(engine: Engine) -> Any:
    """The dialect's ``insert`` (SQLite's or PostgreSQL's), which has
    ``on_conflict_do_nothing``/``on_conflict_do_update`` and ``returning``."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def db_now(engine: Engine) -> Any:
    """Now in Unix seconds as the database sees it (PostgreSQL's clock, so replicas on
    machines whose clocks differ agree), or this process's on SQLite (one machine)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy import func

        return func.extract("epoch", func.clock_timestamp())
    import time

    from sqlalchemy import literal

    return literal(time.time())
