"""``GET /api/quality``: feedback scores per model, feature or feedback name."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from aiscope.server import quality
from aiscope.server.deps import Db, End, Reader, Start

router = APIRouter(tags=["quality"])


@router.get("/api/quality")
def quality_scores(
    who: Reader,
    engine: Db,
    group_by: Literal["model", "feature", "name"] = "name",
    start: Start = None,
    end: End = None,
) -> dict[str, Any]:
    """Feedback scores (count, mean, min, max) per model, feature or feedback name."""
    return quality.quality_by(engine, who.project_id, group_by, start=start, end=end)
