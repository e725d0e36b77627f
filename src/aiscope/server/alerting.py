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

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, union_all, update

from aiscope import sketch
from aiscope.alerts import (
    AlertEvaluator,
    AlertEvent,
    AlertRule,
    Delivery,
    Notifier,
    rule_from_dict,
    rule_to_dict,
)
from aiscope.alerts.rules import format_duration
from aiscope.alerts.window import WindowStats, WindowStore
from aiscope.cost.ledger import Ledger, from_nanos
from aiscope.server import budgets
from aiscope.server.background import repeat
from aiscope.server.budgets import conflicts
from aiscope.server.db import upsert_insert, write_lock
from aiscope.server.leases import Lease
from aiscope.server.queries import rollup_range
from aiscope.server.tables import alert_rules, alert_states, calls, feedback, rollups

log = logging.getLogger("aiscope.server.alerts")
MAX_RULES = 200
#: longest label set (canonical JSON) an alert's stored state may have
MAX_LABELS_CHARS = 2048


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
                rollups.c.cost_nanos,
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
                acc = sums.setdefault(group, [0.0, 0.0, 0, 0.0, 0.0, 0.0, []])
                acc[0] += r.calls
                acc[1] += r.errors
                acc[2] += r.cost_nanos  # exact: integer nano-dollars
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
                acc = sums.setdefault(tuple(r[: len(fcols)]), [0.0, 0.0, 0, 0.0, 0.0, 0.0, []])
                acc[4] += float(r[-2])
                acc[5] += float(r[-1])
        return {
            g: WindowStats(
                requests=a[0],
                errors=a[1],
                cost_usd=from_nanos(a[2]),
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
        _start_over(conn, project_id, rule.name)


def remove_rule(engine: Engine, project_id: str, name: str) -> bool:
    """Delete the project's rule ``name``; False when there is none."""
    with write_lock(engine), engine.begin() as conn:
        n = conn.execute(
            delete(alert_rules).where(
                alert_rules.c.project_id == project_id, alert_rules.c.name == name
            )
        ).rowcount
        _start_over(conn, project_id, name)
    return bool(n)


def _start_over(conn: Any, project_id: str, name: str) -> None:
    """A replaced or deleted rule's pending alerts start over; its firing ones stay
    until the next evaluation resolves them (and notifies that)."""
    s = alert_states
    conn.execute(
        delete(s).where(s.c.project_id == project_id, s.c.rule == name, s.c.state == "pending")
    )


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
    #: one evaluator per rule: a rule that fails to evaluate does not stop the others
    evaluators: list[AlertEvaluator]
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


def _labels_key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _event(
    rule: AlertRule, row: Any, state: str, t: float, value: float | None, renotify: bool = False
) -> AlertEvent:
    return AlertEvent(
        rule=rule.name,
        severity=rule.severity,
        state=state,  # type: ignore[arg-type]
        labels=json.loads(row.labels),
        value=value,
        threshold=float(rule.threshold),
        comparison=rule.comparison,
        signal=rule.signal_name,
        window="day (UTC)" if rule.daily else format_duration(rule.window_s),
        description=rule.description,
        started_at=row.since_ts,
        at=t,
        renotify=renotify,
    )


@dataclass(frozen=True, slots=True)
class _Row:
    """An ``alert_states`` row as the evaluation reads it."""

    id: int | None
    labels: str
    state: str
    since_ts: float
    notified_ts: float | None


class AlertService:
    """Evaluates the stored rules on the stored rollups, keeping each alert's state
    (pending, firing, when last notified) in the ``alert_states`` table, and sends every
    change (firing, re-notified after the cooldown, resolved) to ``notifiers`` through
    the SDK's :class:`~aiscope.alerts.Delivery` (background threads, retried: a slow
    receiver never holds up evaluation or ingest).

    Only the holder of the ``alerts`` lease (one replica at a time, see
    :class:`~aiscope.server.leases.Lease`) evaluates; every state change is a
    compare-and-set on its row, and only the replica whose change took notifies, so N
    replicas on one database notify each change once.
    """

    def __init__(
        self,
        engine: Engine,
        interval_s: float = 15.0,
        *,
        notifiers: Sequence[Notifier] = (),
        lease_s: float = 60.0,
        owner: str | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.interval_s = interval_s
        self.lease = Lease(engine, "alerts", lease_s, owner)
        self.deliveries = [Delivery(n) for n in notifiers]
        self._projects: dict[str, _Project] = {}
        self._lock = threading.Lock()
        self.errors = 0

    def _project(self, project_id: str) -> _Project | None:
        rules = load_rules(self.engine, project_id)
        with self._lock:
            p = self._projects.get(project_id)
            if not rules:
                self._projects.pop(project_id, None)
                return None
            if p is None or p.rules != rules:
                store = RollupWindows(self.engine, project_id)
                evaluators = [
                    AlertEvaluator([r], store=store) for r in _readable(rules, project_id)
                ]
                p = self._projects[project_id] = _Project(rules, evaluators)
            return p

    def evaluate(self, project_id: str, max_age_s: float = 0.0) -> list[AlertEvent]:
        """Evaluate the project's rules now (unless done less than ``max_age_s`` ago),
        store the states, and notify what changed; the events this call produced."""
        p = self._project(project_id)
        now = time.time()
        if p is not None and now - p.evaluated_at < max_age_s:
            return []
        rules: dict[str, AlertRule] = {}
        held: dict[str, dict[str, float | None]] = {}
        for evaluator in [] if p is None else p.evaluators:
            (rule,) = evaluator.rules
            try:
                found = evaluator.check(now)
            except Exception:
                self.errors += 1
                log.warning("alert rule %s failed to evaluate", rule.name, exc_info=True)
                continue
            rules[rule.name] = rule
            held[rule.name] = {_labels_key(a.labels): a.value for a in found}
        events = self._advance(project_id, rules, held, now)
        if p is not None:
            p.evaluated_at = now
        for event in events:
            for d in self.deliveries:
                d.submit(event)
        return events

    def _advance(
        self,
        project_id: str,
        rules: dict[str, AlertRule],
        held: dict[str, dict[str, float | None]],
        t: float,
    ) -> list[AlertEvent]:
        """Move the project's stored states one step; each change is a compare-and-set
        (a row's state or notification time as read), so of two evaluators that read
        the same row only one changes it, and only that one reports the event."""
        s = alert_states
        events: list[AlertEvent] = []
        with self.engine.connect() as conn:
            stored = conn.execute(select(s).where(s.c.project_id == project_id)).all()
        by_rule: dict[str, dict[str, _Row]] = {}
        for r in stored:
            by_rule.setdefault(r.rule, {})[r.labels] = _Row(
                r.id, r.labels, r.state, r.since_ts, r.notified_ts
            )
        ins = upsert_insert(self.engine)
        with write_lock(self.engine), self.engine.begin() as conn:
            for name, rule in rules.items():
                rows = by_rule.pop(name, {})
                for key, value in held[name].items():
                    if len(key) > MAX_LABELS_CHARS:
                        log.warning("alert %s: labels too long to store, skipped", name)
                        continue
                    row: _Row | None = rows.pop(key) if key in rows else None
                    if row is None:  # starts to hold: pending, or firing at once
                        fire = rule.for_s <= 0
                        stmt = (
                            ins(s)
                            .values(
                                project_id=project_id,
                                rule=name,
                                labels=key,
                                state="firing" if fire else "pending",
                                since_ts=t,
                                notified_ts=t if fire else None,
                                value=value,
                                updated_ts=t,
                            )
                            .on_conflict_do_nothing()
                            .returning(s.c.id)
                        )
                        if conn.execute(stmt).first() is not None and fire:
                            new = _Row(None, key, "firing", t, t)
                            events.append(_event(rule, new, "firing", t, value))
                        continue
                    same = and_(s.c.id == row.id, s.c.state == row.state)
                    if row.state == "pending" and t - row.since_ts >= rule.for_s:
                        n = conn.execute(
                            update(s)
                            .where(same)
                            .values(state="firing", notified_ts=t, value=value, updated_ts=t)
                        ).rowcount
                        if n:
                            events.append(_event(rule, row, "firing", t, value))
                    elif row.state == "firing" and t - (row.notified_ts or 0.0) >= rule.cooldown_s:
                        n = conn.execute(
                            update(s)
                            .where(same, s.c.notified_ts == row.notified_ts)
                            .values(notified_ts=t, value=value, updated_ts=t)
                        ).rowcount
                        if n:
                            events.append(_event(rule, row, "firing", t, value, renotify=True))
                    else:
                        conn.execute(update(s).where(same).values(value=value, updated_ts=t))
                by_rule[name] = rows  # what no longer holds
            for name, rows in by_rule.items():
                # a rule deleted or replaced: its firing alerts resolve like the others
                rule = rules.get(name) or _gone_rule(name)
                for row in rows.values():
                    n = conn.execute(
                        delete(s).where(s.c.id == row.id, s.c.state == row.state)
                    ).rowcount
                    if n and row.state == "firing":
                        events.append(_event(rule, row, "resolved", t, None))
        return events

    def active(self, project_id: str, max_age_s: float = 1.0) -> list[dict[str, Any]]:
        """The ``GET /api/alerts`` items: rules pending or firing, and budgets spent.

        The lease holder evaluates first (a replica that can take the lease takes it);
        any other replica answers the states the holder stored."""
        if self.lease.hold():
            self.evaluate(project_id, max_age_s)
        out: list[dict[str, Any]] = []
        by_name = {r.name: r for r in _readable(load_rules(self.engine, project_id), project_id)}
        s = alert_states
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s).where(s.c.project_id == project_id).order_by(s.c.rule, s.c.labels)
            ).all()
        for a in rows:
            rule = by_name.get(a.rule)
            if rule is None:
                continue
            labels = json.loads(a.labels)
            where = " ".join(f"{k}={v}" for k, v in labels.items())
            value = "no data" if a.value is None else f"{a.value:.6g}"
            window = "the UTC day" if rule.daily else f"the last {rule.window}"
            out.append(
                {
                    "name": a.rule,
                    "severity": rule.severity,
                    "state": a.state,
                    "since": a.since_ts,
                    "value": a.value,
                    "labels": labels,
                    "summary": f"{rule.signal_name} {value} {rule.comparison} "
                    f"{rule.threshold:g} over {window}" + (f" ({where})" if where else ""),
                }
            )
        for b in budgets.load(self.engine, project_id):
            st = budgets.status(self.engine, project_id, b, ledger=self.ledger)
            if st["exceeded"]:
                out.append(
                    {
                        "name": f"budget_{b.budget.name}",
                        "severity": "critical" if b.mode == "block" else "warning",
                        "state": "firing",
                        "since": st["period_start"],
                        "value": st["spent_usd"],
                        "labels": dict(b.scope),
                        "summary": f"budget {b.budget.name!r} ({st['period_label']}): spent "
                        f"${st['spent_usd']:.4f} of ${st['limit_usd']:.4f}",
                    }
                )
        return out

    def evaluate_all(self) -> None:
        """If this replica holds (or can take) the lease, evaluate every project that
        has rules or stored alerts (the background loop's step)."""
        if not self.lease.hold():
            return
        with self.engine.connect() as conn:
            projects = {r[0] for r in conn.execute(select(alert_rules.c.project_id).distinct())}
            projects |= {r[0] for r in conn.execute(select(alert_states.c.project_id).distinct())}
        for project_id in sorted(projects):
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

    def close(self, timeout_s: float = 5.0) -> None:
        """Give the lease up and deliver what is queued (within ``timeout_s`` in all)."""
        try:
            self.lease.release()
        except Exception:
            log.warning("releasing the alerts lease failed", exc_info=True)
        deadline = time.monotonic() + timeout_s
        for d in self.deliveries:
            d.close(max(0.0, deadline - time.monotonic()))


def _gone_rule(name: str) -> AlertRule:
    """A stand-in for a deleted rule, to word the resolve of its last firing alert."""
    return AlertRule(name=name, severity="info", signal="requests", comparison=">", threshold=0)
