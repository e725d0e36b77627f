"""AlertEvent: one alert firing, notified again, or resolved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change worth notifying: an alert started firing (or is still firing after
    its cooldown: ``renotify``), or resolved."""

    rule: str
    severity: str
    state: State
    labels: dict[str, str]
    value: float | None
    threshold: float
    comparison: str
    signal: str
    window: str
    description: str
    started_at: float
    at: float
    renotify: bool = False

    @property
    def dedup_key(self) -> str:
        """Stable per rule and label set (PagerDuty's dedup_key)."""
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"aiscope/{self.rule}" + (f"/{labels}" if labels else "")

    @property
    def summary(self) -> str:
        """One line for humans."""
        where = " ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        value = "no data" if self.value is None else f"{self.value:.4g}"
        return (
            f"[{self.severity.upper()}] {self.rule}{' ' + where if where else ''} "
            f"{self.state}: {self.signal} = {value} "
            f"({self.comparison} {self.threshold:g} over {self.window})"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (the generic webhook's body)."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "signal": self.signal,
            "window": self.window,
            "description": self.description,
            "started_at": iso_utc(self.started_at),
            "at": iso_utc(self.at),
            "renotify": self.renotify,
            "dedup_key": self.dedup_key,
            "summary": self.summary,
        }


def iso_utc(t: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds (``2026-12-03T15:00:00.000Z``)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = [
    "AlertEvent",
    "iso_utc",
]
