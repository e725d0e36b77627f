"""Alert rules evaluated on stored data: the SDK's :class:`~aiscope.alerts.AlertEvaluator`
(same rules, same pending/firing state machine) reading its windows from the
rollups and the feedback table instead of in-process counters.

A window covers whole minutes (the rollups' finest bucket): ``"5m"`` is the five
minutes up to the current one, included; ``"day"`` the UTC day so far. Latency
percentiles come from the rollups' DDSketch bins (1% relative accuracy). Quality is
the mean feedback score, each score labelled with the call it was given on (by
trace/span id or request id; ``model`` ``unknown`` when no call matches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, union_all

from aiscope import sketch
from aiscope.alerts import AlertEvaluator, AlertRule, rule_from_dict, rule_to_dict
from aiscope.alerts.window import WindowStats, WindowStore
from aiscope.server import budgets
from aiscope.server.background import repeat
from aiscope.server.budgets import conflicts
from aiscope.server.db import write_lock
from aiscope.server.queries import rollup_range
from aiscope.server.tables import alert_rules, calls, feedback, rollups

log = logging.getLogger("aiscope.server.alerts")
MAX_RULES = 200


#: the model of feedback that names no stored call
UNMATCHED = "unknown"


def feedback_labels(project_id: str, start: float | None, end: float | None) -> Any:
    """A subquery of the project's scored feedback in [start, end), each row with its
    name, score and the labels of the call it was given on (one call per feedback).

    Feedback names its call by trace and span id, by trace id, or by request id: one
    outer join per way, each on an index of ``calls``, glued with UNION ALL (a join on
    an OR of the three would scan the project's calls for every score).
    """
    f, c = feedback, calls
    scored = [f.c.project_id == project_id, f.c.score.is_not(None)]
    if start is not None:
        scored.append(f.c.created_ts >= start)
    if end is not None:
        scored.append(f.c.created_ts < end)
    ways = (
        (f.c.span_id.is_not(None), and_(c.c.trace_id == f.c.trace_id, c.c.span_id == f.c.span_id)),
        (and_(f.c.span_id.is_(None), f.c.trace_id.is_not(None)), c.c.trace_id == f.c.trace_id),
        (f.c.trace_id.is_(None), c.c.request_id == f.c.request_id),
    )
    parts = [
        select(f.c.id, f.c.name, f.c.score, c.c.model, c.c.provider, c.c.feature, c.c.team)
        .select_from(f.outerjoin(c, and_(c.c.project_id == f.c.project_id, on)))
        .where(*scored, which)
        for which, on in ways
    ]
    u = union_all(*parts).subquery()
    return (
        select(
            u.c.id,
            u.c.name,
            u.c.score,
            func.coalesce(func.min(u.c.model), UNMATCHED).label("model"),
            func.coalesce(func.min(u.c.provider), "").label("provider"),
            func.coalesce(func.min(u.c.feature), "").label("feature"),
            func.coalesce(func.min(u.c.team), "").label("team"),
        )
        .group_by(u.c.id, u.c.name, u.c.score)
        .subquery()
    )


class RollupWindows(WindowStore):
    """A :class:`WindowStore` that answers from one project's stored rollups."""

    def __init__(self, engine: Engine, project_id: str) -> None:
        super().__init__(retention_s=0.0)
        self.engine = engine
        self.project_id = project_id

    def add_call(self, record: Any) -> None:
        """Calls reach the server through ingest, not here."""
        raise TypeError("RollupWindows reads stored rollups; ingest calls through the server")

    def prune(self, now: float) -> None:
        """Nothing is held in memory."""

    def stats(
        self, now: float, window_s: float, daily: bool, group_by: Sequence[str]
    ) -> dict[tuple[str, ...], WindowStats]:
        """Per group over the window ending at ``now``, from rollups and feedback."""
        start = now // 86400 * 86400 if daily else now - window_s
        cols = [rollups.c[g] for g in group_by]
        q = rollup_range(
            select(
                *cols,
                rollups.c.calls,
                rollups.c.errors,
                rollups.c.cost_usd,
                rollups.c.input_tokens,
                rollups.c.output_tokens,
                rollups.c.latency_bins,
            ),
            self.project_id,
            start,
            now,
        )
        sums: dict[tuple[str, ...], list[Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                group = tuple(r[: len(cols)])
                acc = sums.setdefault(group, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, []])
                acc[0] += r.calls
                acc[1] += r.errors
                acc[2] += r.cost_usd
                acc[3] += r.input_tokens + r.output_tokens
                acc[6].append(r.latency_bins)
            fb = feedback_labels(self.project_id, start, now)
            fcols = [fb.c[g] for g in group_by]
            for r in conn.execute(
                select(*fcols, func.sum(fb.c.score), func.count()).group_by(*fcols)
            ):
                if not r[-1]:
                    # without a group_by, SQL answers one (NULL, 0) row over no feedback
                    continue
                acc = sums.setdefault(tuple(r[: len(fcols)]), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, []])
                acc[4] += float(r[-2])
                acc[5] += float(r[-1])
        return {
            g: WindowStats(
                requests=a[0],
                errors=a[1],
                cost_usd=a[2],
                tokens=a[3],
                quality_sum=a[4],
                quality_count=a[5],
                latency_bins=sketch.merge(a[6]),
            )
            for g, a in sums.items()
        }


# -- stored rules -------------------------------------------------------------------------
def parse_rule(data: object) -> AlertRule:
    """An alert rule from its JSON form (the SDK's :func:`rule_from_dict`)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"an alert rule must be an object, got {type(data).__name__}")
    signal = data.get("signal")
    if signal is not None and not isinstance(signal, str):
        raise ValueError(f"rule: signal must be a str, got {signal!r}")
    try:
        rule = rule_from_dict(data, "rule")
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if len(rule.name) > 128:
        raise ValueError(f"rule: name must be at most 128 characters, got {len(rule.name)}")
    return rule


def save_rule(engine: Engine, project_id: str, rule: AlertRule) -> None:
    """Store ``rule``, replacing the project's rule of the same name."""
    with write_lock(engine), conflicts(f"alert rule {rule.name!r}"), engine.begin() as conn:
        existing = conn.execute(
            select(func.count()).where(
                alert_rules.c.project_id == project_id, alert_rules.c.name != rule.name
            )
        ).scalar_one()
        if existing >= MAX_RULES:
            raise ValueError(f"a project has at most {MAX_RULES} alert rules")
        conn.execute(
            delete(alert_rules).where(
                alert_rules.c.project_id == project_id, alert_rules.c.name == rule.name
            )
        )
        conn.execute(
            insert(alert_rules),
            {
                "project_id": project_id,
                "name": rule.name,
                "rule": rule_to_dict(rule),
                "created_ts": time.time(),
            },
        )


def remove_rule(engine: Engine, project_id: str, name: str) -> bool:
    """Delete the project's rule ``name``; False when there is none."""
    with write_lock(engine), engine.begin() as conn:
        n = conn.execute(
            delete(alert_rules).where(
                alert_rules.c.project_id == project_id, alert_rules.c.name == name
            )
        ).rowcount
    return bool(n)


def load_rules(engine: Engine, project_id: str) -> list[dict[str, Any]]:
    """The project's rules in their dict form, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_rules.c.rule)
            .where(alert_rules.c.project_id == project_id)
            .order_by(alert_rules.c.name)
        ).all()
    return [dict(r.rule) for r in rows]


# -- evaluation ---------------------------------------------------------------------------
@dataclass
class _Project:
    rules: list[dict[str, Any]]
    evaluator: AlertEvaluator
    evaluated_at: float = 0.0


def _readable(rules: list[dict[str, Any]], project_id: str) -> list[AlertRule]:
    """The stored rules this version reads (one it cannot is skipped and logged)."""
    out = []
    for data in rules:
        try:
            out.append(rule_from_dict(data))
        except (TypeError, ValueError):
            log.warning("project %s: stored alert rule %r skipped", project_id, data, exc_info=True)
    return out


class AlertService:
    """One evaluator per project, rebuilt when its rules change (pending alerts start
    over then); :meth:`run` evaluates every project in a background thread."""

    def __init__(self, engine: Engine, interval_s: float = 15.0) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._projects: dict[str, _Project] = {}
        self._lock = threading.Lock()
        self.errors = 0

    def evaluate(self, project_id: str, max_age_s: float = 0.0) -> AlertEvaluator | None:
        """Evaluate the project's rules now (unless done less than ``max_age_s`` ago);
        its evaluator, or None when it has no rules."""
        rules = load_rules(self.engine, project_id)
        with self._lock:
            p = self._projects.get(project_id)
            if not rules:
                self._projects.pop(project_id, None)
                return None
            if p is None or p.rules != rules:
                store = RollupWindows(self.engine, project_id)
                evaluator = AlertEvaluator(_readable(rules, project_id), store=store)
                p = self._projects[project_id] = _Project(rules, evaluator)
            now = time.time()
            if now - p.evaluated_at >= max_age_s:
                p.evaluator.evaluate(now)
                p.evaluated_at = now
            return p.evaluator

    def active(self, project_id: str, max_age_s: float = 1.0) -> list[dict[str, Any]]:
        """The ``GET /api/alerts`` items: rules pending or firing, and budgets spent."""
        out: list[dict[str, Any]] = []
        evaluator = self.evaluate(project_id, max_age_s)
        if evaluator is not None:
            by_name = {r.name: r for r in evaluator.rules}
            for a in evaluator.active():
                rule = by_name[a.rule]
                labels = " ".join(f"{k}={v}" for k, v in a.labels.items())
                value = "no data" if a.value is None else f"{a.value:.6g}"
                window = "the UTC day" if rule.daily else f"the last {rule.window}"
                out.append(
                    {
                        "name": a.rule,
                        "severity": a.severity,
                        "state": a.state,
                        "since": a.active_since,
                        "value": a.value,
                        "labels": a.labels,
                        "summary": f"{rule.signal_name} {value} {rule.comparison} "
                        f"{rule.threshold:g} over {window}" + (f" ({labels})" if labels else ""),
                    }
                )
        for b in budgets.load(self.engine, project_id):
            s = budgets.status(self.engine, project_id, b)
            if s["exceeded"]:
                out.append(
                    {
                        "name": f"budget_{b.budget.name}",
                        "severity": "critical" if b.mode == "block" else "warning",
                        "state": "firing",
                        "since": s["period_start"],
                        "value": s["spent_usd"],
                        "labels": dict(b.scope),
                        "summary": f"budget {b.budget.name!r} ({s['period_label']}): spent "
                        f"${s['spent_usd']:.4f} of ${s['limit_usd']:.4f}",
                    }
                )
        return out

    def evaluate_all(self) -> None:
        """Evaluate every project that has rules (the background loop's step)."""
        with self.engine.connect() as conn:
            projects = [r[0] for r in conn.execute(select(alert_rules.c.project_id).distinct())]
        for project_id in projects:
            try:
                self.evaluate(project_id)
            except Exception:  # one project's failure must not stop the others
                self.errors += 1
                log.warning("alert evaluation failed for %s", project_id, exc_info=True)

    def run(self, stop: threading.Event) -> None:
        """Evaluate every ``interval_s`` until ``stop`` is set."""
        repeat(self._evaluate_all_counted, self.interval_s, stop, "alert evaluation")

    def _evaluate_all_counted(self) -> None:
        try:
            self.evaluate_all()
        except Exception:
            self.errors += 1
            raise
