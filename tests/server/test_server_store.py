"""Schema, migrations, sketches and rollups of the server store (SQLite and PostgreSQL)."""

from __future__ import annotations

import random

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from aiscope import sketch
from aiscope.server.db import migrate, normalize_url, open_engine
from aiscope.server.queries import cover
from aiscope.server.rollup import rollup_rows
from aiscope.server.tables import metadata, rollups


def test_migration_creates_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert {"projects", "api_keys", "calls", "spans", "feedback", "rollups"} <= set(
        inspect(engine).get_table_names()
    )


def test_migrating_twice_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0005"


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: object) -> None:
    eng = open_engine(f"sqlite:///{tmp_path}/x.db")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    eng.dispose()


def test_url_rules() -> None:
    assert normalize_url("postgresql://u@h:5432/d").startswith("postgresql+psycopg://")
    assert normalize_url("/tmp/a.db") == "sqlite:////tmp/a.db"
    with pytest.raises(ValueError, match="only sqlite and postgresql"):
        normalize_url("mysql://u@h/d")
    with pytest.raises(ValueError, match="db url"):
        normalize_url("")


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def test_sketch_quantiles_within_one_percent_and_mergeable() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(5, 1.2) for _ in range(20_000)]
    parts: list[sketch.Bins] = [{} for _ in range(7)]
    for i, v in enumerate(values):
        sketch.add(parts[i % 7], v)
    merged = sketch.merge(parts)
    assert sum(merged.values()) == len(values)
    for q, got in zip((0.5, 0.95, 0.99), sketch.quantiles(merged, (0.5, 0.95, 0.99)), strict=True):
        want = _exact(values, q)
        assert got is not None
        assert abs(got - want) / want <= 0.0201, (q, got, want)
    assert sketch.quantiles({}, (0.5,)) == [None]
    with pytest.raises(ValueError, match="quantile"):
        sketch.quantiles(merged, (1.5,))


def _call(ts: float, model: str, feature: str | None, latency: float, cost: float | None) -> dict:
    return {
        "project_id": "p",
        "start_ts": ts,
        "provider": "openai",
        "model": model,
        "feature": feature,
        "team": "t",
        "status": "error" if cost is None else "ok",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 2,
        "cache_write_tokens": 0,
        "reasoning_tokens": 1,
        "cost_usd": cost,
        "latency_ms": latency,
        "ttft_ms": None,
    }


def test_rollups_group_by_minute_model_feature(engine: Engine) -> None:
    rows = rollup_rows(
        [
            _call(60.0, "a", "x", 100.0, 0.5),
            _call(119.9, "a", "x", 200.0, 0.25),
            _call(120.0, "a", "x", 300.0, None),  # next minute
            _call(61.0, "b", None, 50.0, 1.0),
        ]
    )
    by_key = {(r["minute"], r["model"], r["feature"]): r for r in rows if r["resolution"] == 1}
    assert set(by_key) == {(1, "a", "x"), (2, "a", "x"), (1, "b", "")}
    # the hour and day buckets hold the same calls, merged
    for res in (60, 1440):
        coarse = {(r["minute"], r["model"]): r for r in rows if r["resolution"] == res}
        assert set(coarse) == {(0, "a"), (0, "b")}
        a = coarse[(0, "a")]
        assert (a["calls"], a["errors"], a["cost_nanos"]) == (3, 1, 750_000_000)
        assert sum(a["latency_bins"].values()) == 3
    first = by_key[(1, "a", "x")]
    assert (first["calls"], first["errors"], first["cost_nanos"]) == (2, 0, 750_000_000)
    assert first["input_tokens"] == 20 and sum(first["latency_bins"].values()) == 2
    second = by_key[(2, "a", "x")]
    assert (second["errors"], second["unpriced_calls"], second["cost_nanos"]) == (1, 1, 0)
    with engine.begin() as conn:
        conn.execute(rollups.insert(), rows)
    with engine.connect() as conn:
        stored = conn.execute(
            select(rollups.c.latency_bins).where(rollups.c.model == "a", rollups.c.resolution == 1)
        ).all()
    assert sum(sum(r.latency_bins.values()) for r in stored) == 3


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(0, 1440), (90, 1440 + 5 * 60 + 7), (61, 119), (5, 5), (1439, 2881), (0, 3 * 1440 + 1)],
)
def test_cover_uses_the_coarsest_buckets_and_covers_exactly(lo: int, hi: int) -> None:
    parts = cover(lo, hi)
    minutes = [m for res, a, b in parts for m in range(a, b)]
    assert minutes == list(range(lo, hi))  # every minute once, in order
    for res, a, b in parts:
        assert a % res == 0 and b % res == 0
    if (lo, hi) == (0, 3 * 1440 + 1):
        assert parts == [(1440, 0, 4320), (1, 4320, 4321)]
    if (lo, hi) == (90, 1440 + 5 * 60 + 7):
        assert parts == [(1, 90, 120), (60, 120, 1740), (1, 1740, 1747)]


def test_sketch_quantiles_equal_ddsketchs_own() -> None:
    # sketch.quantiles reads the sorted bins directly: it must answer what a DDSketch
    # holding the same bins answers, at every quantile, zeros and single bins included
    import random

    from ddsketch import DDSketch

    rng = random.Random(5)
    qs = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    for case in range(300):
        bins: dict[str, int] = {}
        for _ in range(rng.choice((1, 2, 5, 50, 400))):
            sketch.add(bins, rng.choice((0.0, rng.lognormvariate(5, 2), rng.uniform(0, 3))))
        if case % 7 == 0:
            bins["z"] = bins.get("z", 0) + rng.randrange(1, 9)
        reference = DDSketch(sketch.ACCURACY)
        for key, n in bins.items():
            value = 0.0 if key == "z" else sketch._MAPPING.value(int(key))
            reference.add(value, float(n))
        want = [float(reference.get_quantile_value(q)) for q in qs]
        assert sketch.quantiles(bins, qs) == want, bins


def test_json_columns_decode_what_the_standard_library_wrote() -> None:
    # orjson decodes the columns; values only json.dumps writes (NaN, huge ints) still read
    import json
    import math

    from aiscope.server.db import json_loads

    assert json_loads('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert math.isnan(json_loads(json.dumps({"v": float("nan")}))["v"])
    assert json_loads(json.dumps(2**80)) == 2**80
