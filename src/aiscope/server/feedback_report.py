"""Reading feedback back: the list, averages per name, per model and feature, and over time.

Scored feedback is attributed to the model and feature of the call it names (by trace
and span id, trace id or request id, as :func:`aiscope.server.alerting.feedback_labels`
does for ``/api/quality`` and the alert rules); feedback naming no stored call counts
in the per-name figures and the time series only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Integer, cast, func, select

from aiscope.server.alerting import UNMATCHED, feedback_labels
from aiscope.server.tables import feedback
from aiscope.server.timeseries import Grid, grid

MAX_ITEMS = 1000


def _filtered(q: Any, project_id: str, start: float, end: float, name: str | None) -> Any:
    q = q.where(
        feedback.c.project_id == project_id,
        feedback.c.created_ts >= start,
        feedback.c.created_ts < end,
    )
    return q if name is None else q.where(feedback.c.name == name)


def report(
    engine: Engine,
    project_id: str,
    *,
    start: float | None = None,
    end: float | None = None,
    name: str | None = None,
    limit: int = 100,
    step: int | None = None,
) -> dict[str, Any]:
    """Feedback of ``project_id`` given in [start, end) (default: the last hour): the
    newest ``limit`` items, and score averages per name, per (name, model), per (name,
    feature) and per (name, time bucket)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ITEMS:
        raise ValueError(f"limit must be an integer from 1 to {MAX_ITEMS}, got {limit!r}")
    if name is not None and (len(name) > 128 or "\x00" in name):
        raise ValueError("name must be text of at most 128 characters without NUL")
    start, end, g = grid(start, end, step)
    score = feedback.c.score
    stats = (
        func.count().label("count"),
        func.count(score).label("scored"),
        func.avg(score).label("avg_score"),
    )
    items_q = _filtered(select(feedback), project_id, start, end, name)
    items_q = items_q.order_by(feedback.c.created_ts.desc(), feedback.c.id.desc()).limit(limit)
    names_q = _filtered(
        select(
            feedback.c.name,
            *stats,
            func.min(score).label("min_score"),
            func.max(score).label("max_score"),
        ),
        project_id,
        start,
        end,
        name,
    ).group_by(feedback.c.name)
    # attributed to calls as /api/quality and the alert rules do (trace and span id,
    # trace id, or request id); feedback that names no stored call is in no group
    labelled = feedback_labels(project_id, start, end)
    with engine.connect() as conn:
        items = [dict(r._mapping) for r in conn.execute(items_q)]
        by_name = [_stats(r) for r in conn.execute(names_q.order_by(feedback.c.name))]
        per: dict[str, list[dict[str, Any]]] = {}
        for col in ("model", "feature"):
            key = labelled.c[col]
            q = (
                select(
                    labelled.c.name,
                    key.label("key"),
                    func.count().label("count"),
                    func.count(labelled.c.score).label("scored"),
                    func.avg(labelled.c.score).label("avg_score"),
                )
                .where(labelled.c.model != UNMATCHED)
                .group_by(labelled.c.name, key)
            )
            if name is not None:
                q = q.where(labelled.c.name == name)
            per[col] = [
                {"name": r.name, col: r.key, **_stats(r)}
                for r in conn.execute(q.order_by(labelled.c.name, key))
            ]
        bucket = _bucket(engine, g)
        series_q = (
            _filtered(
                select(feedback.c.name, bucket.label("i"), func.avg(score).label("avg_score")),
                project_id,
                start,
                end,
                name,
            )
            .where(score.is_not(None))
            .group_by(feedback.c.name, bucket)
        )
        series: dict[str, list[float | None]] = {}
        for r in conn.execute(series_q):
            values = series.setdefault(r.name, [None] * g.n)
            values[min(max(int(r.i), 0), g.n - 1)] = float(r.avg_score)
    for item in items:
        item.pop("project_id")
    return {
        "items": items,
        "by_name": by_name,
        "by_model": per["model"],
        "by_feature": per["feature"],
        "step": g.step,
        "timestamps": g.timestamps(),
        "series": [{"key": k, "values": v} for k, v in sorted(series.items())],
    }


def _stats(r: Any) -> dict[str, Any]:
    m = r._mapping
    out = {k: m[k] for k in ("name",) if k in m}
    out["count"] = int(m["count"])
    out["scored"] = int(m["scored"])
    for k in ("avg_score", "min_score", "max_score"):
        if k in m:
            out[k] = None if m[k] is None else float(m[k])
    return out


def _bucket(engine: Engine, g: Grid) -> Any:
    """The bucket number of ``created_ts`` on ``g`` (rows are at or after ``g.first``)."""
    x = (feedback.c.created_ts - g.first) / g.step
    # PostgreSQL's cast to integer rounds; SQLite's truncates (a floor, as x >= 0)
    return func.floor(x) if engine.dialect.name == "postgresql" else cast(x, Integer)
