"""``/api/feedback``: scores and labels for calls or traces, written (public key) and
read back as the dashboard's quality report (secret key)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import insert

from aiscope.server.db import write_lock
from aiscope.server.deps import Db, End, Ingester, Reader, Start
from aiscope.server.feedback_report import MAX_ITEMS, report
from aiscope.server.genai import text
from aiscope.server.tables import feedback

router = APIRouter(tags=["feedback"])


@router.post("/api/feedback", status_code=201)
def add_feedback(
    who: Ingester,
    engine: Db,
    name: Annotated[str, Body(min_length=1, max_length=128)],
    score: Annotated[float | None, Body(allow_inf_nan=False)] = None,
    comment: Annotated[str | None, Body(max_length=10_000)] = None,
    trace_id: Annotated[str | None, Body(pattern="^[0-9a-f]{32}$")] = None,
    span_id: Annotated[str | None, Body(pattern="^[0-9a-f]{16}$")] = None,
    request_id: Annotated[str | None, Body(max_length=128)] = None,
) -> dict[str, str]:
    """A score or label for a call or trace (e.g. a user's thumbs up)."""
    if trace_id is None and request_id is None:
        raise ValueError("feedback needs trace_id or request_id")
    with write_lock(engine), engine.begin() as conn:
        conn.execute(
            insert(feedback),
            {
                "project_id": who.project_id,
                "trace_id": trace_id,
                "span_id": span_id,
                "request_id": None if request_id is None else text(request_id, 128),
                "name": text(name, 128),
                "score": score,
                "comment": None if comment is None else text(comment, 10_000),
                "created_ts": time.time(),
            },
        )
    return {"status": "stored"}


@router.get("/api/feedback")
def list_feedback(
    who: Reader,
    engine: Db,
    start: Start = None,
    end: End = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100,
    step: Annotated[
        int | None, Query(ge=60, description="bucket size in seconds, a multiple of 60")
    ] = None,
) -> dict[str, Any]:
    """Feedback given in the range (default: the last hour), newest first, with average
    scores per name, per model, per feature and over time (the dashboard's quality row)."""
    return report(engine, who.project_id, start=start, end=end, name=name, limit=limit, step=step)
