"""Rollups of calls: computed from each ingest batch before it is written, compacted
later (one row per group and bucket) so queries read fewer rows; and the retention
of raw rows, which rollups outlive. Every sum is an integer (cost in nano-dollars),
so a rollup holds the exact sum of its calls however many calls or merges made it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, and_, delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from aiscope import sketch
from aiscope.cost.ledger import to_nanos
from aiscope.server.db import write_lock
from aiscope.server.tables import calls, feedback, projects, rollups, spans

log = logging.getLogger(__name__)

_GROUP = ("project_id", "resolution", "minute", "provider", "model", "feature", "team")
#: bucket sizes in minutes, largest first
RESOLUTIONS = (1440, 60, 1)

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_SUMS = ("calls", "errors", *_TOKENS, "cost_nanos", "unpriced_calls")


def rollup_rows(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rollups`` rows of ``calls``: one per resolution, bucket, project, provider, model,
    feature and team."""
    minutes = _minute_rows(calls)
    out = list(minutes)
    for res in RESOLUTIONS[:-1]:
        out.extend(_coarser(minutes, res))
    return out


def _merge_row(into: dict[str, Any], row: dict[str, Any]) -> None:
    for name in _SUMS:
        into[name] += row[name]
    into["latency_bins"] = sketch.merge((into["latency_bins"], row["latency_bins"]))
    into["ttft_bins"] = sketch.merge((into["ttft_bins"], row["ttft_bins"]))


def _coarser(minute_rows: list[dict[str, Any]], res: int) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in minute_rows:
        bucket = r["minute"] - r["minute"] % res
        key = (r["project_id"], bucket, r["provider"], r["model"], r["feature"], r["team"])
        row = groups.get(key)
        if row is None:
            groups[key] = {**r, "resolution": res, "minute": bucket}
        else:
            _merge_row(row, r)
    return list(groups.values())


def _minute_rows(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int, str, str, str, str], dict[str, Any]] = {}
    for c in calls:
        key = (
            c["project_id"],
            int(c["start_ts"] // 60),
            c["provider"],
            c["model"],
            c["feature"] or "",
            c["team"] or "",
        )
        row = groups.get(key)
        if row is None:
            row = groups[key] = {
                "project_id": key[0],
                "resolution": 1,
                "minute": key[1],
                "provider": key[2],
                "model": key[3],
                "feature": key[4],
                "team": key[5],
                "calls": 0,
                "errors": 0,
                **dict.fromkeys(_TOKENS, 0),
                "cost_nanos": 0,  # exact: summed in integer nano-dollars
                "unpriced_calls": 0,
                "latency_bins": {},
                "ttft_bins": {},
            }
        row["calls"] += 1
        row["errors"] += c["status"] == "error"
        for t in _TOKENS:
            row[t] += c[t]
        if c["cost_usd"] is None:
            # a failed call without usage has no cost, but no price is missing either
            if c.get("cost_status") != "no_usage":
                row["unpriced_calls"] += 1
        else:
            row["cost_nanos"] += to_nanos(c["cost_usd"])  # ingest bounds it below $1e6
        sketch.add(row["latency_bins"], c["latency_ms"])
        if c["ttft_ms"] is not None:
            sketch.add(row["ttft_bins"], c["ttft_ms"])
    return list(groups.values())


#: what a BIGINT column holds: a merged sum past it is left unmerged, never stored
_INT_MAX = 2**63 - 1


def compact(engine: Engine, limit: int = 5000) -> int:
    """Merge the rollup rows of up to ``limit`` groups per project that have several rows
    into one row each; returns how many rows were removed.

    Each project is compacted in its own transaction, so rows one project cannot
    merge (a failure, or sums past what a column holds) never hold back another's.
    Only rows read in a transaction are deleted, so rows inserted meanwhile by
    ingest (here or on another replica) are never lost; on PostgreSQL an advisory
    lock keeps two compactors from merging the same rows.
    """
    with engine.connect() as conn:
        project_ids = list(conn.execute(select(projects.c.id)).scalars())
    removed = 0
    for project_id in project_ids:
        try:
            removed += _compact_project(engine, project_id, limit)
        except SQLAlchemyError:  # that project is retried next round; the others go on
            log.exception("rollup compaction failed for project %s", project_id)
    return removed


def _compact_project(engine: Engine, project_id: str, limit: int) -> int:
    cols = [rollups.c[g] for g in _GROUP]
    with write_lock(engine), engine.begin() as conn:
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(text("SELECT pg_try_advisory_xact_lock(636300002)")).scalar()
        ):
            return 0
        many = (
            select(*cols)
            .where(rollups.c.project_id == project_id)
            .group_by(*cols)
            .having(func.count() > 1)
            .limit(limit)
            .subquery()
        )
        rows = conn.execute(
            select(rollups).join(many, and_(*(c == many.c[c.name] for c in cols)))
        ).all()
        by_group: dict[tuple[Any, ...], list[Any]] = {}
        for r in rows:
            by_group.setdefault(tuple(getattr(r, g) for g in _GROUP), []).append(r)
        merged_rows: list[dict[str, Any]] = []
        ids: list[int] = []
        for key, group in by_group.items():
            merged: dict[str, Any] = dict(zip(_GROUP, key, strict=True))
            for name in _SUMS:
                merged[name] = sum(getattr(r, name) for r in group)
            if not _storable(merged):
                continue  # kept as several rows: reads sum them as before
            merged["latency_bins"] = sketch.merge(r.latency_bins for r in group)  # exact
            merged["ttft_bins"] = sketch.merge(r.ttft_bins for r in group)
            merged_rows.append(merged)
            ids.extend(r.id for r in group)
        for i in range(0, len(ids), 500):  # bounded IN lists
            conn.execute(delete(rollups).where(rollups.c.id.in_(ids[i : i + 500])))
        if merged_rows:
            conn.execute(rollups.insert(), merged_rows)
    return len(ids) - len(merged_rows)


def _storable(merged: dict[str, Any]) -> bool:
    """Whether a merged row's sums (counts, nano-dollars) fit their BIGINT columns."""
    return all(-_INT_MAX <= merged[n] <= _INT_MAX for n in _SUMS)


def prune(engine: Engine, before: float, batch: int = 10_000) -> int:
    """Delete raw calls, spans and feedback older than Unix time ``before``, in chunks;
    rollups are kept, so cost and latency over old ranges still answer. Returns the
    number of rows deleted."""
    deleted = 0
    for table, ts in ((calls, calls.c.start_ts), (spans, spans.c.start_ts)):
        while True:
            with write_lock(engine), engine.begin() as conn:
                ids = select(table.c.id).where(ts < before).limit(batch).scalar_subquery()
                n = conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
            deleted += n
            if n < batch:
                break
    with write_lock(engine), engine.begin() as conn:
        deleted += conn.execute(delete(feedback).where(feedback.c.created_ts < before)).rowcount
    return deleted
