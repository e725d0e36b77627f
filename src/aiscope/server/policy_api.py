"""Budgets, alert rules, active alerts and quality: the routes.

Writing budgets and rules takes the project's secret key (they are configuration,
not telemetry); reading them too, like every read.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, HTTPException, Path, Request
from pydantic import BaseModel, Field

from aiscope.alerts import rule_to_dict
from aiscope.server import alerting, budgets, quality
from aiscope.server.app import End, Reader, Start

router = APIRouter(tags=["budgets, alerts, quality"])


class BudgetOut(BaseModel):
    """A budget and what it spent in its current period."""

    name: str
    limit_usd: float
    spent_usd: float
    remaining_usd: float
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


class AlertOut(BaseModel):
    """An alert pending or firing now."""

    name: str
    severity: str
    state: Literal["firing", "pending"]
    since: float = Field(description="Unix seconds: when the condition started to hold")
    value: float | None
    summary: str
    labels: dict[str, str]


class AlertsOut(BaseModel):
    """Alerts pending or firing now."""

    alerts: list[AlertOut]


Name = Annotated[str, Path(min_length=1, max_length=128)]


def _engine(request: Request) -> Any:
    return request.app.state.settings.engine


def _alerts(request: Request) -> alerting.AlertService:
    service: alerting.AlertService = request.app.state.alert_service
    return service


@router.post("/api/budgets", status_code=201, response_model=BudgetOut)
def add_budget(
    request: Request,
    who: Reader,
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
    budgets.save(_engine(request), who.project_id, b)
    return budgets.status(_engine(request), who.project_id, b)


@router.get("/api/budgets", response_model=BudgetsOut)
def list_budgets(request: Request, who: Reader) -> dict[str, Any]:
    """Every budget with what was spent in its current period (from rollups)."""
    engine = _engine(request)
    return {
        "budgets": [
            budgets.status(engine, who.project_id, b) for b in budgets.load(engine, who.project_id)
        ]
    }


@router.delete("/api/budgets/{name}", status_code=204)
def delete_budget(request: Request, who: Reader, name: Name) -> None:
    """Delete a budget."""
    if not budgets.remove(_engine(request), who.project_id, name):
        raise HTTPException(404, f"no budget {name!r} in this project")


@router.post("/api/alert-rules", status_code=201)
def add_alert_rule(
    request: Request,
    who: Reader,
    rule: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {
                    "name": "p95_latency",
                    "severity": "warning",
                    "signal": "latency_p95_ms",
                    "comparison": ">",
                    "threshold": 5000,
                    "window": "5m",
                    "for": "5m",
                    "group_by": ["model"],
                }
            ]
        ),
    ],
) -> dict[str, Any]:
    """Create (or replace, by name) an alert rule: the SDK's ``AlertRule`` fields."""
    parsed = alerting.parse_rule(rule)
    alerting.save_rule(_engine(request), who.project_id, parsed)
    return rule_to_dict(parsed)


@router.get("/api/alert-rules")
def list_alert_rules(request: Request, who: Reader) -> dict[str, Any]:
    """The project's alert rules."""
    return {"rules": alerting.load_rules(_engine(request), who.project_id)}


@router.delete("/api/alert-rules/{name}", status_code=204)
def delete_alert_rule(request: Request, who: Reader, name: Name) -> None:
    """Delete an alert rule."""
    if not alerting.remove_rule(_engine(request), who.project_id, name):
        raise HTTPException(404, f"no alert rule {name!r} in this project")


@router.get("/api/alerts", response_model=AlertsOut)
def active_alerts(request: Request, who: Reader) -> dict[str, Any]:
    """Alerts pending or firing now: the rules (evaluated on the stored rollups) and
    the budgets whose period's spend reached their limit."""
    return {"alerts": _alerts(request).active(who.project_id)}


@router.get("/api/quality")
def quality_scores(
    request: Request,
    who: Reader,
    group_by: Literal["model", "feature", "name"] = "name",
    start: Start = None,
    end: End = None,
) -> dict[str, Any]:
    """Feedback scores (count, mean, min, max) per model, feature or feedback name."""
    return quality.quality_by(_engine(request), who.project_id, group_by, start=start, end=end)


def install(app: FastAPI, evaluate_every_s: float | None = 15.0) -> None:
    """Add the routes and the alert service; evaluate alerts in the background while
    the app runs (its lifespan)."""
    service = alerting.AlertService(app.state.settings.engine, evaluate_every_s or 15.0)
    app.state.alert_service = service
    app.include_router(router)
    if evaluate_every_s is None:
        return
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        stop = threading.Event()
        threading.Thread(
            target=service.run, args=(stop,), name="aiscope-alerts", daemon=True
        ).start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            stop.set()

    app.router.lifespan_context = lifespan
