"""Money on the server is exact: rollups keep integer nano-dollars (migration 0005), every
read sums integers and shows dollars at the edge; a store an older server wrote with
float costs is converted to the nearest nano-dollar. Both engines."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx2
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text

from aiscope import CallRecord, Usage
from aiscope.record_json import record_to_json
from aiscope.server import queries
from aiscope.server.alerting import RollupWindows
from aiscope.server.auth import LOCAL_PROJECT
from aiscope.server.db import MIGRATIONS, migrate, open_engine
from aiscope.server.rollup import compact
from aiscope.server.tables import metadata, rollups
from tests.server.harness import Running


def _post_one_call(server: Running, start: float) -> None:
    """One call of $0.0075 (team search) in a request of its own: its own rollup rows."""
    record = CallRecord(
        model="gpt-4o",
        provider="openai",
        usage=Usage(1000, 500),
        cost_usd=0.0075,
        start_time=start,
        tags={"team": "search"},
    )
    r = httpx2.post(
        f"{server.url}/api/ingest/calls", json={"calls": [record_to_json(record)]}, timeout=10
    )
    assert r.status_code == 200, r.text


def _answers(server: Running) -> dict[str, object]:
    cost = httpx2.get(f"{server.url}/api/cost", params={"group_by": "team"}, timeout=10).json()
    series = httpx2.get(
        f"{server.url}/api/timeseries",
        params={"metric": "cost", "group_by": "none", "step": 86400},
        timeout=10,
    ).json()
    budgets = httpx2.get(f"{server.url}/api/budgets", timeout=10).json()["budgets"]
    now = time.time()
    (stats,) = RollupWindows(server.engine, LOCAL_PROJECT).stats(now, 3600, False, ()).values()
    return {
        "cost": [(r["team"], r["calls"], r["cost_usd"]) for r in cost["rows"]],
        "series": sum(series["series"][0]["values"]),
        "budgets": {
            b["name"]: (b["spent_usd"], b["remaining_usd"], b["exceeded"]) for b in budgets
        },
        "alert window": stats.cost_usd,
    }


def test_16_calls_of_0_0075_cost_exactly_0_12_in_every_answer(local_server: Running) -> None:
    """15 x $0.0075 + $0.0075 in floats is $0.12000000000000005: a budget of $0.12 is
    spent exactly, not overspent, and every read says $0.12."""
    for body in (
        {"name": "all", "limit_usd": 0.12, "period": "total"},
        {"name": "search", "limit_usd": 0.12, "period": "total", "scope": {"team": "search"}},
        {"name": "more", "limit_usd": 0.1200000001, "period": "total"},
    ):
        r = httpx2.post(f"{local_server.url}/api/budgets", json=body, timeout=10)
        assert r.status_code == 201, r.text
    start = time.time() - 30
    for i in range(16):
        _post_one_call(local_server, start + i * 1e-3)
    with local_server.engine.connect() as conn:
        minute_rows = conn.execute(
            select(func.count()).select_from(rollups).where(rollups.c.resolution == 1)
        ).scalar_one()
    assert minute_rows == 16  # one row per request: the reads sum 16 rows
    want = {
        "cost": [("search", 16, 0.12)],
        "series": 0.12,
        "budgets": {
            "all": (0.12, 0.0, True),
            "search": (0.12, 0.0, True),
            "more": (0.12, pytest.approx(1e-10, abs=1e-15), False),
        },
        "alert window": 0.12,
    }
    assert _answers(local_server) == want
    assert compact(local_server.engine) == 45  # 16 rows become 1, at each resolution
    assert _answers(local_server) == want


def _config(engine: Engine) -> Iterator[Config]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        yield cfg


def _migrate_to(engine: Engine, revision: str, down: bool = False) -> None:
    for cfg in _config(engine):
        (command.downgrade if down else command.upgrade)(cfg, revision)


#: the most a converted row holds (the ledgers' ceiling: an int64 with headroom)
MAX_NANOS = 2**62
#: float costs as an older server stored them -> the nano-dollars they become
OLD_COSTS = [
    *[(0.0075, 7_500_000)] * 16,
    (0.12000000000000005, 120_000_000),  # a float sum's drift, back to the exact sum
    (0.1 + 0.2, 300_000_000),
    (2.5e-9, 2),  # the nearest nano-dollar, half to even (as the SDK rounds)
    (123456.789012345, 123_456_789_012_345),
    (0.0, 0),
    (1e308, MAX_NANOS),  # rows from before ingest bounded costs: kept at the ceiling
    (math.inf, MAX_NANOS),
    (-1e300, -MAX_NANOS),
]


def test_the_migration_converts_a_float_store_exactly(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        _migrate_to(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects VALUES ('p', 'p', 0)"))
            for i, (usd, _) in enumerate(OLD_COSTS):
                conn.execute(
                    text(
                        "INSERT INTO rollups (project_id, resolution, minute, provider, model,"
                        " feature, team, calls, errors, input_tokens, output_tokens,"
                        " cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd,"
                        " unpriced_calls, latency_bins, ttft_bins) VALUES ('p', 1, :minute,"
                        " 'openai', 'gpt-4o', '', :team, 1, 0, 10, 5, 0, 0, 0, :usd, 0, '{}', '{}')"
                    ),
                    {"minute": 29_000_000 + i, "team": f"t{i}", "usd": usd},
                )
        migrate(engine)
        with engine.connect() as conn:
            got = conn.execute(select(rollups.c.cost_nanos).order_by(rollups.c.minute)).all()
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert [n for (n,) in got] == [n for _, n in OLD_COSTS]
        # the 16 calls of $0.0075 read back as $0.12, summed in integers
        first = queries.cost_by(engine, "p", "model", start=0, end=(29_000_000 + 16) * 60)
        assert [(r["calls"], r["cost_usd"]) for r in first] == [(16, 0.12)]
        end = (29_000_000 + len(OLD_COSTS)) * 60
        rows = queries.cost_by(engine, "p", "team", start=0, end=end)
        by_team = {r["team"]: r["cost_usd"] for r in rows}
        assert by_team["t17"] == 0.3 and by_team["t19"] == 123456.789012345
        # and back: each exact sum as its nearest float
        _migrate_to(engine, "0004", down=True)
        with engine.connect() as conn:
            back = conn.execute(text("SELECT cost_usd FROM rollups ORDER BY minute")).scalars()
            assert list(back)[:20] == [0.0075] * 16 + [0.12, 0.3, 2e-9, 123456.789012345]
    finally:
        engine.dispose()
