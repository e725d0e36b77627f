"""``/api/alert-rules`` and ``/api/alerts``: a project's alert rules (written and read
with its secret key) and the alerts pending or firing now."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path
from pydantic import BaseModel, Field

from aiscope.alerts import rule_to_dict
from aiscope.server import alerting
from aiscope.server.deps import Alerts, Db, Reader

router = APIRouter(tags=["alerts"])
Name = Annotated[str, Path(min_length=1, max_length=128)]


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


@router.post("/api/alert-rules", status_code=201)
def add_alert_rule(
    who: Reader,
    engine: Db,
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
    alerting.save_rule(engine, who.project_id, parsed)
    return rule_to_dict(parsed)


@router.get("/api/alert-rules")
def list_alert_rules(who: Reader, engine: Db) -> dict[str, Any]:
    """The project's alert rules."""
    return {"rules": alerting.load_rules(engine, who.project_id)}


@router.delete("/api/alert-rules/{name}", status_code=204)
def delete_alert_rule(who: Reader, engine: Db, name: Name) -> None:
    """Delete an alert rule."""
    if not alerting.remove_rule(engine, who.project_id, name):
        raise HTTPException(404, f"no alert rule {name!r} in this project")


@router.get("/api/alerts", response_model=AlertsOut)
def active_alerts(who: Reader, service: Alerts) -> dict[str, Any]:
    """Alerts pending or firing now: the rules (evaluated on the stored rollups) and
    the budgets whose period's spend reached their limit."""
    return {"alerts": service.active(who.project_id)}
