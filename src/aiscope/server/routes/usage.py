"""``/api/cost``, ``/api/latency`` and ``/api/timeseries``: what the calls cost and how
long they took, by model, provider, feature, team, day or time bucket (from rollups)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from aiscope import sketch
from aiscope.server import queries
from aiscope.server.deps import Db, End, Reader, Start
from aiscope.server.timeseries import MAX_SERIES, Metric, SeriesGroup, series

router = APIRouter(tags=["usage"])


@router.get("/api/cost")
def cost(
    who: Reader,
    engine: Db,
    group_by: Literal["model", "provider", "feature", "team", "day"] = "model",
    start: Start = None,
    end: End = None,
) -> dict[str, Any]:
    """Calls, tokens and cost by model, provider, feature, team or day (from rollups)."""
    rows = queries.cost_by(engine, who.project_id, group_by, start=start, end=end)
    return {"group_by": group_by, "rows": rows}


@router.get("/api/latency")
def latency(
    who: Reader,
    engine: Db,
    start: Start = None,
    end: End = None,
    metric: Literal["latency", "ttft"] = "latency",
    q: Annotated[list[float] | None, Query(description="quantiles in [0, 1]")] = None,
) -> dict[str, Any]:
    """Latency (or time-to-first-token) percentiles in ms per model (from rollups)."""
    rows = queries.latency_by_model(
        engine,
        who.project_id,
        start=start,
        end=end,
        quantiles=q or (0.5, 0.95, 0.99),
        metric=metric,
    )
    return {"metric": metric, "rows": rows}


@router.get("/api/timeseries")
def timeseries(
    who: Reader,
    engine: Db,
    metric: Metric = "cost",
    group_by: SeriesGroup = "model",
    start: Start = None,
    end: End = None,
    step: Annotated[
        int | None, Query(ge=60, description="bucket size in seconds, a multiple of 60")
    ] = None,
    q: Annotated[
        list[float] | None,
        Query(description=f"quantiles in [0, 1], at most {sketch.MAX_QUANTILES}"),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SERIES, description="most series answered (the largest)")
    ] = MAX_SERIES,
) -> dict[str, Any]:
    """A metric per time bucket and per model/provider/feature/team/token type (rollups).

    Without ``start``/``end`` the last hour; without ``step`` a round step giving at
    most about 120 buckets.
    """
    return series(
        engine,
        who.project_id,
        metric,
        group_by=group_by,
        start=start,
        end=end,
        step=step,
        quantiles=q or (0.5, 0.95, 0.99),
        limit=limit,
    )
