"""``/api/budgets``: a project's budgets, written and read with its secret key (they are
configuration, not telemetry), each with what its current period spent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path
from pydantic import BaseModel, Field

from aiscope.server import budgets
from aiscope.server.deps import AppSettings, Db, Reader

router = APIRouter(tags=["budgets"])
Name = Annotated[str, Path(min_length=1, max_length=128)]


class BudgetOut(BaseModel):
    """A budget and what it spent in its current period."""

    name: str
    limit_usd: float
    spent_usd: float
    remaining_usd: float
    reserved_usd: float | None = Field(
        description="held now by calls in flight (from the ledger; null without one)"
    )
    recorded_usd: float = Field(description="what the stored calls in the scope cost")
    source: Literal["rollups", "ledger"] = Field(description="where spent_usd comes from")
    ledger_error: str | None = Field(description="why the ledger was not read, if it failed")
    period: Literal["day", "month", "total"]
    period_label: str = Field(description='"all", "2026-11-28" or "2026-11"')
    period_start: float = Field(description="Unix seconds (0 for total)")
    mode: Literal["alert", "block"]
    scope: dict[str, str]
    exceeded: bool
    unpriced_calls: int = Field(description="calls in the period without a known price")


class BudgetsOut(BaseModel):
    """Every budget of the project."""

    budgets: list[BudgetOut]


@router.post("/api/budgets", status_code=201, response_model=BudgetOut)
def add_budget(
    who: Reader,
    engine: Db,
    settings: AppSettings,
    budget: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {
                    "name": "search-monthly",
                    "limit_usd": 100.0,
                    "period": "month",
                    "scope": {"feature": "search"},
                    "mode": "alert",
                }
            ]
        ),
    ],
) -> dict[str, Any]:
    """Create (or replace, by name) a budget: ``limit_usd`` over a UTC ``period``
    (``day``, ``month`` or ``total``) on the calls matching ``scope``."""
    b = budgets.parse_budget(budget)
    budgets.save(engine, who.project_id, b)
    return budgets.status(engine, who.project_id, b, ledger=settings.ledger)


@router.get("/api/budgets", response_model=BudgetsOut)
def list_budgets(who: Reader, engine: Db, settings: AppSettings) -> dict[str, Any]:
    """Every budget with what was spent in its current period (from rollups, or from the
    applications' ledger when the server is given one) and what is reserved now."""
    return {
        "budgets": [
            budgets.status(engine, who.project_id, b, ledger=settings.ledger)
            for b in budgets.load(engine, who.project_id)
        ]
    }


@router.delete("/api/budgets/{name}", status_code=204)
def delete_budget(who: Reader, engine: Db, name: Name) -> None:
    """Delete a budget."""
    if not budgets.remove(engine, who.project_id, name):
        raise HTTPException(404, f"no budget {name!r} in this project")
