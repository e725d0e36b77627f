"""``GET /api/calls`` and ``GET /api/traces/{trace_id}``: stored calls, page by page,
and one trace as a tree of spans."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from aiscope.server import queries
from aiscope.server.deps import Db, End, Reader, Start

router = APIRouter(tags=["calls"])


@router.get("/api/calls")
def calls(
    who: Reader,
    engine: Db,
    start: Start = None,
    end: End = None,
    model: str | None = None,
    provider: str | None = None,
    feature: str | None = None,
    team: str | None = None,
    status: Literal["ok", "error"] | None = None,
    trace_id: str | None = None,
    operation: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Calls, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    given = {
        "model": model,
        "provider": provider,
        "feature": feature,
        "team": team,
        "status": status,
        "trace_id": trace_id,
        "operation": operation,
    }
    page = queries.list_calls(
        engine,
        who.project_id,
        filters={k: v for k, v in given.items() if v is not None},
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/api/traces/{trace_id}")
def trace(who: Reader, engine: Db, trace_id: str) -> dict[str, Any]:
    """One trace as a tree of spans, each GenAI span with its call."""
    roots = queries.trace_tree(engine, who.project_id, trace_id)
    if roots is None:
        raise HTTPException(404, f"no trace {trace_id[:40]!r} in this project")
    return {"trace_id": trace_id, "roots": roots}
