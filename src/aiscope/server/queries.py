"""Reads, always scoped to one project.

Aggregates (cost, tokens, latency percentiles) come from the per-minute rollups,
never from scanning calls: their cost grows with minutes x models x features x
teams in the range, not with the number of calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, and_, false, or_, select

from aiscope import sketch
from aiscope.cost.ledger import from_nanos
from aiscope.server.rollup import RESOLUTIONS
from aiscope.server.sums import as_int, big_sum, nano_sum
from aiscope.server.tables import calls, rollups, spans

GroupBy = Literal["model", "provider", "feature", "team", "day"]
GROUPS: tuple[str, ...] = ("model", "provider", "feature", "team", "day")
CALL_FILTERS = ("model", "provider", "feature", "team", "status", "trace_id", "operation")
MAX_PAGE = 1000
MAX_TIME = 1e11  # seconds: year 5138, and minute numbers well inside BIGINT


@dataclass(frozen=True, slots=True)
class Page:
    """One page of calls, newest first; ``next_cursor`` is None on the last page."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def minute_bounds(start: float | None, end: float | None) -> tuple[int | None, int | None]:
    """Rollup minutes covering [start, end): every minute that overlaps the range."""
    for name, v in (("start", start), ("end", end)):
        if v is not None and not (math.isfinite(v) and 0 <= v < MAX_TIME):
            raise ValueError(f"{name} must be a Unix time in seconds from 0 to 1e11, got {v!r}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    return (
        None if start is None else math.floor(start / 60),
        None if end is None else math.ceil(end / 60),
    )


def list_calls(
    engine: Engine,
    project_id: str,
    *,
    filters: dict[str, str] | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Calls of ``project_id`` matching ``filters`` (exact values), newest first, keyset paging."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
    minute_bounds(start, end)
    q = select(calls).where(calls.c.project_id == project_id)
    for key, value in (filters or {}).items():
        if key not in CALL_FILTERS:
            raise ValueError(f"unknown filter {key!r}; allowed: {', '.join(CALL_FILTERS)}")
        if not isinstance(value, str) or "\x00" in value or len(value) > 1024:
            raise ValueError(f"filter {key} must be text of at most 1024 characters without NUL")
        q = q.where(calls.c[key] == value)
    if start is not None:
        q = q.where(calls.c.start_ts >= start)
    if end is not None:
        q = q.where(calls.c.start_ts < end)
    if cursor:
        ts, last_id = _parse_cursor(cursor)
        q = q.where(or_(calls.c.start_ts < ts, and_(calls.c.start_ts == ts, calls.c.id < last_id)))
    q = q.order_by(calls.c.start_ts.desc(), calls.c.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['start_ts']!r}:{rows[-1]['id']}" if more else None
    for r in rows:
        r.pop("project_id")
    return Page(rows, nxt)


def _parse_cursor(cursor: str) -> tuple[float, int]:
    try:
        ts, last_id = cursor.split(":")
        value = float(ts), int(last_id)
    except ValueError:
        raise ValueError(f"cursor is malformed: {cursor[:60]!r}") from None
    if not (math.isfinite(value[0]) and 0 <= value[1] < 2**63):
        raise ValueError(f"cursor is malformed: {cursor[:60]!r}")
    return value


def trace_tree(engine: Engine, project_id: str, trace_id: str) -> list[dict[str, Any]] | None:
    """The spans of one trace as a forest (roots with nested ``children``), each call's
    span with its ``call``; None when the project has no such trace."""
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        return None  # ids are stored as 32 lower-case hex digits: nothing else can match
    with engine.connect() as conn:
        span_rows = conn.execute(
            select(spans).where(spans.c.project_id == project_id, spans.c.trace_id == trace_id)
        ).all()
        call_rows = conn.execute(
            select(calls).where(calls.c.project_id == project_id, calls.c.trace_id == trace_id)
        ).all()
    if not span_rows and not call_rows:
        return None
    nodes: list[dict[str, Any]] = []
    for s in span_rows:
        node = {k: v for k, v in s._mapping.items() if k not in ("id", "project_id")}
        nodes.append({**node, "call": None, "children": []})
    for c in call_rows:
        call = {k: v for k, v in c._mapping.items() if k != "project_id"}
        nodes.append(
            {
                "trace_id": c.trace_id,
                "span_id": c.span_id,
                "parent_span_id": c.parent_span_id,
                "name": c.name,
                "start_ts": c.start_ts,
                "end_ts": c.start_ts + c.latency_ms / 1000.0,
                "status": c.status,
                "service_name": c.service_name,
                "call": call,
                "children": [],
            }
        )
    nodes.sort(key=lambda n: (n["start_ts"], n["span_id"]))
    by_id = {n["span_id"]: n for n in nodes}
    roots: list[dict[str, Any]] = []
    for node in nodes:
        parent = by_id.get(node["parent_span_id"] or "")
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def cover(lo: int, hi: int, levels: Sequence[int] = RESOLUTIONS) -> list[tuple[int, int, int]]:
    """``(resolution, first, end)`` bucket ranges covering minutes [lo, hi) exactly, with
    the coarsest buckets that fit: whole days, then whole hours, then minutes."""
    if lo >= hi:
        return []
    res, rest = levels[0], levels[1:]
    if not rest:
        return [(res, lo, hi)]
    a = -(-lo // res) * res  # first bucket start at or after lo
    b = hi - hi % res
    if a >= b:
        return cover(lo, hi, rest)
    return [*cover(lo, a, rest), (res, a, b), *cover(b, hi, rest)]


_FOREVER = RESOLUTIONS[0] * 2**30  # a day-aligned minute far beyond any real timestamp


def rollup_range(
    q: Any,
    project_id: str,
    start: float | None,
    end: float | None,
    levels: Sequence[int] = RESOLUTIONS,
) -> Any:
    """``q`` restricted to the project's rollup rows covering [start, end) exactly, read at
    the coarsest of ``levels`` (bucket sizes in minutes, largest first) that fit."""
    lo, hi = minute_bounds(start, end)
    parts = cover(0 if lo is None else max(lo, 0), _FOREVER if hi is None else hi, levels)
    if not parts:
        return q.where(false())
    # the project in every branch: each branch is then one index range
    # (project_id, resolution, minute), which both engines read branch by branch
    return q.where(
        or_(
            *(
                and_(
                    rollups.c.project_id == project_id,
                    rollups.c.resolution == res,
                    rollups.c.minute >= a,
                    rollups.c.minute < b,
                )
                for res, a, b in parts
            )
        ),
    )


def cost_by(
    engine: Engine,
    project_id: str,
    group_by: str,
    *,
    start: float | None = None,
    end: float | None = None,
) -> list[dict[str, Any]]:
    """Calls, errors, tokens by type and cost per ``group_by`` value, dearest first."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}, got {group_by!r}")
    key = rollups.c.minute - rollups.c.minute % 1440 if group_by == "day" else rollups.c[group_by]
    counts = (
        "calls",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "unpriced_calls",
    )
    sums = [big_sum(rollups.c[c]).label(c) for c in counts]
    cost = nano_sum(rollups.c.cost_nanos).label("cost_nanos")
    q = rollup_range(select(key.label("key"), cost, *sums), project_id, start, end).group_by(key)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        k = r.key
        if group_by == "day":
            k = datetime.fromtimestamp(int(k) * 60, UTC).date().isoformat()
        item: dict[str, Any] = {group_by: k, **{c: as_int(getattr(r, c)) for c in counts[:-1]}}
        item["cost_usd"] = from_nanos(r.cost_nanos)  # exact sum, dollars at the edge
        item["unpriced_calls"] = as_int(r.unpriced_calls)
        out.append((r.cost_nanos, item))
    out.sort(key=lambda ci: (-ci[0], str(ci[1][group_by])))
    return [item for _, item in out]


def latency_by_model(
    engine: Engine,
    project_id: str,
    *,
    start: float | None = None,
    end: float | None = None,
    quantiles: Sequence[float] = (0.5, 0.95, 0.99),
    metric: Literal["latency", "ttft"] = "latency",
) -> list[dict[str, Any]]:
    """Percentiles (ms) per (provider, model) over the range, merged from rollup sketches."""
    if metric not in ("latency", "ttft"):
        raise ValueError(f"metric must be 'latency' or 'ttft', got {metric!r}")
    sketch.check_quantiles(quantiles)
    column = rollups.c.latency_bins if metric == "latency" else rollups.c.ttft_bins
    q = rollup_range(
        select(rollups.c.provider, rollups.c.model, column.label("bins")), project_id, start, end
    )
    parts: dict[tuple[str, str], list[dict[str, int]]] = {}
    with engine.connect() as conn:
        for r in conn.execute(q):
            parts.setdefault((r.provider, r.model), []).append(r.bins)
    out = []
    for (provider, model), many in sorted(parts.items()):
        bins = sketch.merge(many)
        values = sketch.quantiles(bins, quantiles)
        out.append(
            {
                "provider": provider,
                "model": model,
                "count": sum(bins.values()),
                "quantiles": {f"p{q * 100:g}": v for q, v in zip(quantiles, values, strict=True)},
            }
        )
    return out
