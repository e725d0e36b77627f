"""Quality on stored data: feedback scores per model, feature or feedback name.

Each score is labelled with the call it was given on (see
:func:`aiscope.server.alerting.feedback_labels`); the range is the time the
feedback was received.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Engine, func, select

from aiscope.server.alerting import feedback_labels
from aiscope.server.queries import minute_bounds

QualityGroup = Literal["model", "feature", "name"]
GROUPS = ("model", "feature", "name")


def quality_by(
    engine: Engine,
    project_id: str,
    group_by: str = "name",
    *,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """Count, mean, min and max of the scores per group, and over all of them."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}, got {group_by!r}")
    minute_bounds(start, end)  # validates the range
    fb = feedback_labels(project_id, start, end)
    key = fb.c[group_by]
    stats = (
        func.count().label("n"),
        func.avg(fb.c.score).label("mean"),
        func.min(fb.c.score).label("min"),
        func.max(fb.c.score).label("max"),
    )
    with engine.connect() as conn:
        rows = conn.execute(select(key.label("key"), *stats).group_by(key)).all()
        total = conn.execute(select(*stats)).one()
    out = [
        {
            group_by: r.key,
            "count": int(r.n),
            "mean": float(r.mean),
            "min": float(r.min),
            "max": float(r.max),
        }
        for r in rows
    ]
    out.sort(key=lambda r: (-r["count"], str(r[group_by])))
    return {
        "group_by": group_by,
        "count": int(total.n),
        "mean": None if total.mean is None else float(total.mean),
        "rows": out,
    }
