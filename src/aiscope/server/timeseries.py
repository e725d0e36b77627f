"""Time series for the dashboard's charts, from the rollups (never from scanning calls).

A series is a metric (cost, calls, errors, tokens, latency or time-to-first-token
percentiles) per bucket of ``step`` seconds, one series per model, provider,
feature, team or token type. Buckets are aligned to multiples of ``step`` since the
Unix epoch, so each rollup row read (day, hour or minute buckets, the coarsest that
``step`` is a multiple of) falls into exactly one of them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, Text, cast, select

from aiscope import sketch
from aiscope.cost.ledger import from_nanos
from aiscope.server.db import json_loads
from aiscope.server.queries import minute_bounds, rollup_range
from aiscope.server.rollup import RESOLUTIONS
from aiscope.server.sums import added, as_int, big_sum, nano_sum
from aiscope.server.tables import rollups

Metric = Literal["cost", "calls", "errors", "tokens", "latency", "ttft"]
SeriesGroup = Literal["model", "provider", "feature", "team", "type", "none"]
METRICS: tuple[str, ...] = ("cost", "calls", "errors", "tokens", "latency", "ttft")
SERIES_GROUPS: tuple[str, ...] = ("model", "provider", "feature", "team", "type", "none")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
#: most buckets one answer may hold
MAX_POINTS = 1500
#: most series (keys) one answer may hold: the largest are kept, the rest counted
MAX_SERIES = 100
#: steps picked when none is given: the smallest giving at most ``_TARGET`` buckets
NICE_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_TARGET = 120
DEFAULT_RANGE_S = 3600.0
UNITS = {
    "cost": "usd",
    "calls": "calls",
    "errors": "calls",
    "tokens": "tokens",
    "latency": "ms",
    "ttft": "ms",
}


@dataclass(frozen=True, slots=True)
class Grid:
    """Buckets ``first + i * step`` for i in ``range(n)``, covering [start, end)."""

    first: int
    step: int
    n: int

    def timestamps(self) -> list[int]:
        """Each bucket's start (Unix seconds)."""
        return [self.first + i * self.step for i in range(self.n)]

    def index(self, seconds: float) -> int:
        """The bucket holding ``seconds`` (clamped to the grid)."""
        return min(max(int((seconds - self.first) // self.step), 0), self.n - 1)


def auto_step(span_s: float) -> int:
    """A round step (seconds, a multiple of 60) giving at most about 120 buckets."""
    for step in NICE_STEPS:
        if span_s / step <= _TARGET:
            return step
    return math.ceil(span_s / _TARGET / 86400) * 86400


def grid(start: float | None, end: float | None, step: int | None) -> tuple[float, float, Grid]:
    """The validated range (default: the last hour) and its bucket grid."""
    if end is None:
        end = time.time() if start is None else max(time.time(), start)
    if start is None:
        start = max(end - DEFAULT_RANGE_S, 0.0)
    minute_bounds(start, end)  # validates both
    if step is None:
        step = auto_step(max(end - start, 60.0))
    if isinstance(step, bool) or not isinstance(step, int) or step < 60 or step % 60:
        raise ValueError(f"step must be a whole number of minutes in seconds (>= 60), got {step!r}")
    first = math.floor(start / step) * step
    n = max(math.ceil((end - first) / step), 1)
    if n > MAX_POINTS:
        raise ValueError(
            f"{n} buckets of {step} s in the range: at most {MAX_POINTS}; use a larger step"
        )
    return start, end, Grid(first, step, n)


def levels_for(step: int) -> tuple[int, ...]:
    """The rollup resolutions (minutes) that fit a whole number of times in ``step``."""
    return tuple(r for r in RESOLUTIONS if (step // 60) % r == 0)


def series(
    engine: Engine,
    project_id: str,
    metric: str,
    *,
    group_by: str = "model",
    start: float | None = None,
    end: float | None = None,
    step: int | None = None,
    quantiles: Sequence[float] = (0.5, 0.95, 0.99),
    limit: int = MAX_SERIES,
) -> dict[str, Any]:
    """``metric`` per bucket and per ``group_by`` value of ``project_id``'s rollups.

    Counts and cost are 0 in buckets without calls; percentiles (ms) are None there.
    ``group_by="type"`` (tokens only) splits tokens into input, output, cache read,
    cache write and reasoning; otherwise ``tokens`` is input plus output. At most
    ``limit`` keys are answered (the largest sums, or the most calls for percentiles);
    ``more_series`` counts the keys left out.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SERIES:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_SERIES}, got {limit!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if group_by not in SERIES_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(SERIES_GROUPS)}, got {group_by!r}")
    if group_by == "type" and metric != "tokens":
        raise ValueError("group_by=type applies to metric=tokens only")
    if metric in ("latency", "ttft"):
        sketch.check_quantiles(quantiles)
    start, end, g = grid(start, end, step)
    key = None if group_by in ("none", "type") else rollups.c[group_by]
    levels = levels_for(g.step)
    if metric in ("latency", "ttft"):
        out, more = _percentiles(
            engine, project_id, metric, key, start, end, g, levels, quantiles, limit
        )
    else:
        out, more = _sums(engine, project_id, metric, group_by, key, start, end, g, levels, limit)
    return {
        "metric": metric,
        "group_by": group_by,
        "unit": UNITS[metric],
        "step": g.step,
        "start": g.first,
        "end": g.first + g.n * g.step,
        "timestamps": g.timestamps(),
        "series": out,
        "more_series": more,
    }


def _sums(
    engine: Engine,
    project_id: str,
    metric: str,
    group_by: str,
    key: Any,
    start: float,
    end: float,
    g: Grid,
    levels: tuple[int, ...],
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    columns: dict[str, ColumnElement[Any]]
    if metric == "tokens" and group_by == "type":
        columns = {t: big_sum(rollups.c[f"{t}_tokens"]) for t in TOKEN_TYPES}
    elif metric == "tokens":
        columns = {"tokens": big_sum(added(rollups.c.input_tokens, rollups.c.output_tokens))}
    elif metric == "cost":
        columns = {metric: nano_sum(rollups.c.cost_nanos)}  # exact ints, dollars at the end
    else:
        columns = {metric: big_sum(rollups.c[metric])}
    sums = [col.label(name) for name, col in columns.items()]
    by = [rollups.c.minute] if key is None else [key.label("key"), rollups.c.minute]
    q = rollup_range(select(*by, *sums), project_id, start, end, levels).group_by(*by)
    values: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            i = g.index(row.minute * 60)
            for name in columns:
                label = name if group_by == "type" else _key(row)
                bucket = values.setdefault(label, [0] * g.n)
                bucket[i] += as_int(getattr(row, name))
    ranked = sorted(values.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    show: Any = from_nanos if metric == "cost" else int
    return [
        {"key": k, "quantile": None, "values": [show(v) for v in vs]} for k, vs in ranked[:limit]
    ], max(len(ranked) - limit, 0)


class _PercentileCache:
    """Percentiles of merged bucket sketches, keyed by the rollup rows merged.

    Rollup rows are only ever inserted (the compactor replaces rows by a new one),
    so the ids of the rows in a bucket, with their call count, name its content: a
    dashboard refreshing a chart recomputes only the buckets whose rows changed.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], list[float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> list[float | None] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: list[float | None]) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


_cache = _PercentileCache()


def _percentiles(
    engine: Engine,
    project_id: str,
    metric: str,
    key: Any,
    start: float,
    end: float,
    g: Grid,
    levels: tuple[int, ...],
    quantiles: Sequence[float],
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    column = rollups.c.latency_bins if metric == "latency" else rollups.c.ttft_bins
    q = rollup_range(
        select(
            *([] if key is None else [key.label("key")]),
            rollups.c.minute,
            rollups.c.id,
            rollups.c.calls,
            # the sketch as text, decoded only for buckets not cached: one query either way
            cast(column, Text).label("bins"),
        ),
        project_id,
        start,
        end,
        levels,
    )
    qs = tuple(quantiles)
    # (series key, bucket) -> ids of its rollup rows, and their calls
    groups: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    calls: dict[str, int] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            name = _key(row)
            where = (name, g.index(row.minute * 60))
            rows = groups.get(where)
            if rows is None:
                rows = groups[where] = []
            rows.append((row.id, row.calls, row.bins))
            calls[name] = calls.get(name, 0) + row.calls
    kept = set(sorted(calls, key=lambda k: (-calls[k], k))[:limit])
    groups = {where: rows for where, rows in groups.items() if where[0] in kept}
    answers: dict[tuple[str, int], list[float | None]] = {}
    for group, rows in groups.items():
        rows.sort()
        ck = (project_id, metric, tuple(r[0] for r in rows), sum(r[1] for r in rows), qs)
        found = _cache.get(ck)
        if found is None:
            found = sketch.quantiles(sketch.merge(_bins(r[2]) for r in rows), qs)
            _cache.put(ck, found)
        answers[group] = found
    per_key: dict[str, list[list[float | None]]] = {}
    empty: list[float | None] = [None] * len(qs)
    for (name, i), value in answers.items():
        per_key.setdefault(name, [empty] * g.n)[i] = value
    out = []
    for name in sorted(per_key):
        per_bucket = per_key[name]
        for j, q_ in enumerate(qs):
            out.append(
                {"key": name, "quantile": f"p{q_ * 100:g}", "values": [v[j] for v in per_bucket]}
            )
    return out, len(calls) - len(kept)


def _bins(value: str | dict[str, int]) -> dict[str, int]:
    # read as text (decoded only when not cached); a driver may still hand a dict
    return value if isinstance(value, dict) else json_loads(value)


def _key(row: Any) -> str:
    return str(row.key) if "key" in row._mapping else "all"
