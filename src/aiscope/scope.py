"""Scope: the sinks a record flows through, the process default, and the current one.

A capture adapter asks the current Scope to :meth:`~Scope.begin` a call (which
reserves budget and counts it in flight), then hands it the finished record with
:meth:`~Scope.emit`. The Scope validates the record, prices it once, and passes
it through its sinks in a fixed order: cost, metrics, tracing, feedback, then any
extra sinks. A failing sink is logged and counted; it never reaches the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiscope._fork import fork_safe_lock
from aiscope.context import _operations, _tags
from aiscope.cost.pricing import Pricing, default_pricing
from aiscope.record import CallRecord

if TYPE_CHECKING:
    # imported where a scope is given one: prometheus_client (with its HTTP server)
    # and the budget machinery are not loaded by ``import aiscope``
    from aiscope.cost.tracker import CostTracker, Reservation
    from aiscope.metrics.collector import MetricsCollector

log = logging.getLogger("aiscope")
# bound once: emit() runs on every call
_get_tags = _tags.get
_get_operations = _operations.get


@runtime_checkable
class Sink(Protocol):
    """Anything that takes finished records."""

    def on_record(self, record: CallRecord) -> None:
        """Take one finished, validated, priced record. Must not keep it mutable."""


#: one INFO line a call, whichever adapter captured it (AiClient, the SDK
#: instrumentation, llm_call/record_call), with the call's own trace and span ids
_calls_log = logging.getLogger("aiscope.calls")


def _log_summary(record: CallRecord) -> None:
    ids = {"trace_id": record.trace_id, "span_id": record.span_id} if record.trace_id else {}
    _calls_log.info(
        "%s %s/%s status=%s latency=%.0fms tokens=%d/%d cost=%s retries=%d",
        record.operation,
        record.provider,
        record.model,
        record.status,
        record.latency_s * 1e3,
        record.usage.input_tokens,
        record.usage.output_tokens,
        "?" if record.cost_usd is None else f"${record.cost_usd:.6f}",
        record.retry_count,
        extra=ids,
    )


@dataclass(slots=True)
class PendingCall:
    """A call between :meth:`Scope.begin` and :meth:`Scope.emit`."""

    model: str
    provider: str
    reservation: Reservation | None
    in_flight: Any  # the metrics' in-flight handle, None when not counted
    done: bool = False
    #: the call's span, when the scope has a tracer (started by ``begin``)
    span: Any = None


class Scope:
    """The configured sinks, and the one path every record takes through them."""

    def __init__(
        self,
        *,
        metrics: MetricsCollector | None = None,
        tracer: Sink | None = None,
        cost_tracker: CostTracker | None = None,
        feedback: Sink | None = None,
        sinks: Sequence[Sink] = (),
        pricing: Pricing | None = None,
    ) -> None:
        for name, sink in (
            ("tracer", tracer),
            ("feedback", feedback),
            *(("sinks", s) for s in sinks),
        ):
            if sink is not None and not callable(getattr(sink, "on_record", None)):
                raise TypeError(f"{name} must have an on_record(record) method, got {sink!r}")
        if metrics is not None:
            from aiscope.metrics.collector import MetricsCollector

            if not isinstance(metrics, MetricsCollector):
                raise TypeError(f"metrics must be an aiscope.MetricsCollector, got {metrics!r}")
        if cost_tracker is not None:
            from aiscope.cost.tracker import CostTracker

            if not isinstance(cost_tracker, CostTracker):
                raise TypeError(
                    f"cost_tracker must be an aiscope.CostTracker, got {cost_tracker!r}"
                )
        self.metrics = metrics
        self.tracer = tracer
        self.cost_tracker = cost_tracker
        self.feedback = feedback
        self.extra_sinks = tuple(sinks)
        self._explicit_pricing = pricing
        if pricing is None:
            pricing = cost_tracker.pricing if cost_tracker is not None else default_pricing()
        self.pricing = pricing
        self._others: tuple[tuple[str, Sink], ...] = tuple(
            (name, s) for name, s in (("tracer", tracer), ("feedback", feedback)) if s is not None
        ) + tuple((type(s).__name__, s) for s in sinks)
        #: exceptions raised by sinks, by sink name (they never reach the caller)
        self.sink_errors: dict[str, int] = {}
        self._lock = fork_safe_lock()
        if metrics is not None and cost_tracker is not None:
            metrics.watch_budget(cost_tracker)
        if metrics is not None and getattr(feedback, "metrics", False) is None:
            # a FeedbackCollector() built without metrics (as the seed builds it) feeds
            # the quality scores of the metrics it is configured next to
            feedback.metrics = metrics  # type: ignore[union-attr]

    def begin(
        self,
        model: str,
        provider: str,
        input_tokens: int = 0,
        max_output_tokens: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> PendingCall:
        """Start a call: reserve its estimated cost (or raise
        :class:`~aiscope.BudgetExceededError` before anything is sent) and count it
        in flight. ``tags`` are the call's own (per-tag budgets read them)."""
        reservation = None
        if self.cost_tracker is not None:
            reservation = self.cost_tracker.reserve(
                provider, model, input_tokens, max_output_tokens, tags
            )
        in_flight = None
        if self.metrics is not None:
            try:
                in_flight = self.metrics.call_started(model, provider)
            except Exception:
                self._sink_failed("metrics")
        pending = PendingCall(model, provider, reservation, in_flight)
        if self.tracer is not None:
            # The call's span starts now, so it can parent what happens during the call.
            start_call = getattr(self.tracer, "start_call", None)
            if start_call is not None:
                try:
                    pending.span = start_call(model, provider)
                except Exception:
                    self._sink_failed("tracer")
        return pending

    def abandon(self, pending: PendingCall) -> None:
        """End a call that will produce no record: release its reservation."""
        if pending.done:
            return
        pending.done = True
        if self.cost_tracker is not None:
            self.cost_tracker.release(pending.reservation)
        self._end_in_flight(pending)
        if pending.span is not None:
            try:
                self.tracer.abandon_call(pending.span)  # type: ignore[union-attr]
            except Exception:
                self._sink_failed("tracer")

    def _end_in_flight(self, pending: PendingCall) -> None:
        if pending.in_flight is not None and self.metrics is not None:
            try:
                self.metrics.call_finished(pending.model, pending.provider, pending.in_flight)
            except Exception:
                self._sink_failed("metrics")

    def emit(self, record: CallRecord, pending: PendingCall | None = None) -> CallRecord:
        """Validate, price and pass ``record`` through every sink; returns it.

        A bad record raises ``TypeError``/``ValueError`` naming the field before
        any sink has seen it (the pending call's reservation is released).
        """
        try:
            ctx_tags = _get_tags()
            if ctx_tags:
                record.tags = {**ctx_tags, **record.tags} if record.tags else dict(ctx_tags)
            if not record.operations:
                record.operations = _get_operations()
            record.validate()
        except (TypeError, ValueError):
            if pending is not None:
                self.abandon(pending)
            raise
        try:
            self.pricing.price_record(record)
        except Exception:
            self._sink_failed("pricing")
        reservation = None
        if pending is not None:
            if pending.done:
                pending = None
            else:
                pending.done = True
                reservation = pending.reservation
        tracker = self.cost_tracker
        if tracker is not None:
            try:
                tracker.on_record(record, reservation)
            except Exception:
                self._sink_failed("cost_tracker")
        metrics = self.metrics
        if metrics is not None:
            try:
                metrics.on_record(record)
            except Exception:
                self._sink_failed("metrics")
            if pending is not None:
                self._end_in_flight(pending)
        for name, sink in self._others:
            try:
                if sink is self.tracer and pending is not None and pending.span is not None:
                    sink.end_call(record, pending.span)  # type: ignore[attr-defined]
                else:
                    sink.on_record(record)
            except Exception:
                self._sink_failed(name)
        if _calls_log.isEnabledFor(logging.INFO):
            _log_summary(record)
        return record

    def _sink_failed(self, name: str) -> None:
        with self._lock:
            n = self.sink_errors.get(name, 0) + 1
            self.sink_errors[name] = n
        if n == 1 or n % 1000 == 0:
            log.warning(
                "aiscope sink %r failed (%d so far); the call is unaffected", name, n, exc_info=True
            )

    def with_sinks(self, **changes: Any) -> Scope:
        """A copy of this scope with some sinks replaced."""
        kwargs: dict[str, Any] = {
            "metrics": self.metrics,
            "tracer": self.tracer,
            "cost_tracker": self.cost_tracker,
            "feedback": self.feedback,
            "sinks": self.extra_sinks,
            "pricing": self._explicit_pricing,
        }
        kwargs.update(changes)
        return Scope(**kwargs)


_default_scope = Scope()
_current: ContextVar[Scope | None] = ContextVar("aiscope_scope", default=None)


def configure(
    *,
    metrics: MetricsCollector | None = None,
    tracer: Sink | None = None,
    cost_tracker: CostTracker | None = None,
    feedback: Sink | None = None,
    sinks: Sequence[Sink] = (),
    pricing: Pricing | None = None,
) -> Scope:
    """Set the process-wide default scope (the same names as the client builder's)."""
    global _default_scope
    _default_scope = Scope(
        metrics=metrics,
        tracer=tracer,
        cost_tracker=cost_tracker,
        feedback=feedback,
        sinks=sinks,
        pricing=pricing,
    )
    return _default_scope


def current_scope() -> Scope:
    """The scope in force here: the innermost :func:`use_scope`, else the default."""
    scope = _current.get()
    return scope if scope is not None else _default_scope


@contextmanager
def use_scope(scope: Scope) -> Iterator[Scope]:
    """Send the records made inside the block (this thread/task) to ``scope``."""
    if not isinstance(scope, Scope):
        raise TypeError(f"use_scope needs an aiscope.Scope, got {scope!r}")
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
