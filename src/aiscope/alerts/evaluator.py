"""AlertEvaluator: evaluates alert rules on the calls recorded in this process.

It is a Scope sink (``Scope(sinks=[evaluator])``) and a feedback listener
(``FeedbackCollector(listeners=[evaluator.on_feedback])``). Recording only adds
to time-bucketed aggregates (:mod:`aiscope.alerts.window`); :meth:`evaluate`
(called by :meth:`start`'s background thread, or by hand) computes each rule's
signal per group, and moves each (rule, group) through Prometheus' states:
inactive -> pending (condition true, ``for_`` not yet elapsed) -> firing
(notified once) -> re-notified after each ``cooldown`` -> resolved (notified).
Notifications go through :class:`~aiscope.alerts.notifiers.Delivery` threads,
so a slow receiver never delays evaluation or the application.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiscope.alerts.events import AlertEvent
from aiscope.alerts.notifiers import Delivery, Notifier
from aiscope.alerts.rules import AlertRule, default_rules, format_duration
from aiscope.alerts.window import WindowStore, signal_value
from aiscope.record import CallRecord

log = logging.getLogger("aiscope.alerts")


@dataclass(slots=True)
class _State:
    active_since: float
    firing: bool = False
    last_notified: float = 0.0
    value: float | None = None


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """An alert pending or firing now."""

    rule: str
    severity: str
    labels: dict[str, str]
    state: str  # "pending" or "firing"
    value: float | None
    active_since: float


class AlertEvaluator:
    """Evaluates ``rules`` (the seed's eight, in aggregate and per model, by default)
    over rolling windows of the recorded calls and notifies ``notifiers``.

    ``store`` replaces the in-process windows (the aiscope server evaluates the same
    rules over its stored rollups with one)."""

    def __init__(
        self,
        rules: Iterable[AlertRule] | None = None,
        notifiers: Iterable[Notifier] = (),
        *,
        resolution_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        max_queue: int = 1000,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        store: WindowStore | None = None,
    ) -> None:
        self.rules: list[AlertRule] = list(default_rules() if rules is None else rules)
        names = [r.name for r in self.rules]
        for r in self.rules:
            if not isinstance(r, AlertRule):
                raise TypeError(f"rules must be AlertRule objects, got {r!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        retention = max([r.window_s for r in self.rules if not r.daily] or [0.0])
        # ``store``: where the windows' numbers come from (the server passes one that
        # reads its stored rollups); by default, the calls recorded in this process
        self._store = store if store is not None else WindowStore(retention, resolution_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, tuple[str, ...]], _State] = {}
        self.deliveries = [
            Delivery(n, max_queue=max_queue, max_retries=max_retries, backoff_s=backoff_s)
            for n in notifiers
        ]
        #: every event produced so far, newest last (bounded)
        self.history: list[AlertEvent] = []
        self._max_history = 1000
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors = 0

    # -- input ----------------------------------------------------------------------------
    def on_record(self, record: CallRecord) -> None:
        """Count a finished call (the Scope sink interface)."""
        with self._lock:
            self._store.add_call(record)

    def on_feedback(self, feedback: Any) -> None:
        """Count a quality score (a FeedbackCollector listener)."""
        score = getattr(feedback, "score", None)
        if score is None:
            return
        with self._lock:
            self._store.add_quality(
                float(score),
                float(feedback.time),
                feedback.model or "unknown",
                feedback.provider or "",
                feedback.feature or "",
                feedback.team or "",
            )

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> list[AlertEvent]:
        """Evaluate every rule at ``now``; returns (and notifies) the events produced."""
        t = self._clock() if now is None else now
        events: list[AlertEvent] = []
        with self._lock:
            self._store.prune(t)
            for rule in self.rules:
                try:
                    values = {
                        g: signal_value(rule.signal, s)
                        for g, s in self._store.stats(
                            t, rule.window_s, rule.daily, rule.group_by
                        ).items()
                    }
                except Exception:
                    self.errors += 1
                    log.warning("alert rule %s failed to evaluate", rule.name, exc_info=True)
                    continue
                events.extend(self._step(rule, values, t))
            self.history.extend(events)
            del self.history[: max(0, len(self.history) - self._max_history)]
        for event in events:
            for d in self.deliveries:
                d.submit(event)
        return events

    def _step(
        self, rule: AlertRule, values: dict[tuple[str, ...], float | None], t: float
    ) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        seen: set[tuple[str, ...]] = set()
        for group, value in values.items():
            if not rule.holds(value):
                continue
            seen.add(group)
            key = (rule.name, group)
            st = self._states.get(key)
            if st is None:
                st = self._states[key] = _State(active_since=t)
            st.value = value
            if not st.firing:
                if t - st.active_since >= rule.for_s:
                    st.firing, st.last_notified = True, t
                    out.append(self._event(rule, group, st, "firing", t))
            elif t - st.last_notified >= rule.cooldown_s:
                st.last_notified = t
                out.append(self._event(rule, group, st, "firing", t, renotify=True))
        for key in [k for k in self._states if k[0] == rule.name and k[1] not in seen]:
            st = self._states.pop(key)
            if st.firing:
                st.value = values.get(key[1])
                out.append(self._event(rule, key[1], st, "resolved", t))
        return out

    def _event(
        self,
        rule: AlertRule,
        group: tuple[str, ...],
        st: _State,
        state: str,
        t: float,
        renotify: bool = False,
    ) -> AlertEvent:
        return AlertEvent(
            rule=rule.name,
            severity=rule.severity,
            state=state,  # type: ignore[arg-type]
            labels=dict(zip(rule.group_by, group, strict=True)),
            value=st.value,
            threshold=float(rule.threshold),
            comparison=rule.comparison,
            signal=rule.signal_name,
            window="day (UTC)" if rule.daily else format_duration(rule.window_s),
            description=rule.description,
            started_at=st.active_since,
            at=t,
            renotify=renotify,
        )

    def check(self, now: float | None = None) -> list[ActiveAlert]:
        """A one-shot evaluation: every (rule, group) whose condition holds at ``now``,
        without changing any state or notifying. ``state`` is ``"firing"`` for rules
        without a ``for_`` duration, ``"pending"`` for those that would fire once the
        condition has held that long."""
        t = self._clock() if now is None else now
        out = []
        with self._lock:
            for rule in self.rules:
                stats = self._store.stats(t, rule.window_s, rule.daily, rule.group_by)
                for group, s in stats.items():
                    value = signal_value(rule.signal, s)
                    if rule.holds(value):
                        out.append(
                            ActiveAlert(
                                rule=rule.name,
                                severity=rule.severity,
                                labels=dict(zip(rule.group_by, group, strict=True)),
                                state="pending" if rule.for_s else "firing",
                                value=value,
                                active_since=t,
                            )
                        )
        return out

    def active(self) -> list[ActiveAlert]:
        """Alerts pending or firing now (as of the last :meth:`evaluate`)."""
        by_name = {r.name: r for r in self.rules}
        with self._lock:
            items = list(self._states.items())
        return [
            ActiveAlert(
                rule=name,
                severity=by_name[name].severity,
                labels=dict(zip(by_name[name].group_by, group, strict=True)),
                state="firing" if st.firing else "pending",
                value=st.value,
                active_since=st.active_since,
            )
            for (name, group), st in items
        ]

    def firing(self) -> list[ActiveAlert]:
        """Alerts firing now."""
        return [a for a in self.active() if a.state == "firing"]

    # -- background -----------------------------------------------------------------------
    def start(self, interval_s: float = 15.0) -> None:
        """Evaluate every ``interval_s`` seconds in a background thread."""
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.evaluate()
                except Exception:  # never let the loop die
                    self.errors += 1
                    log.warning("alert evaluation failed", exc_info=True)

        self._thread = threading.Thread(target=loop, name="aiscope-alerts-eval", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the background evaluation and deliver what is queued; returns within
        ``timeout_s`` seconds in all, however many notifiers and however slow their
        receivers (events not delivered by then are counted in their ``failed``)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        # One deadline for all: the deliveries drain in parallel on their own threads,
        # so waiting for each in turn costs the slowest, not the sum.
        for d in self.deliveries:
            d._flush_by(deadline)
        for d in self.deliveries:
            d._begin_stop()
        for d in self.deliveries:
            d._finish_by(deadline)

    def __enter__(self) -> AlertEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ActiveAlert", "AlertEvaluator"]
