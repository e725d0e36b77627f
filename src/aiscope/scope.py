"""Scope: the sinks a record flows through, the process default, and the current one.

Every capture adapter (AiClient, the SDK instrumentation, ``llm_call``/``observe``,
``record_call``) drives one call lifecycle through the current Scope:
:meth:`~Scope.begin` returns a :class:`PendingCall` (budget reserved, counted in
flight, span started, context tags and operations fixed); during the call the
adapter reports events on it (:meth:`PendingCall.event`, :meth:`PendingCall.stage`);
at the end it hands the record to :meth:`PendingCall.finish` (or
:meth:`Scope.emit`) or gives up with :meth:`PendingCall.abandon`.

At the end the Scope first runs its record processors, in order: the call's
context tags and operations, validation, pricing, the trace and span ids of the
call's span, the budget's commit. Then every sink (metrics, tracer, feedback, any
extra sinks, and the ``aiscope.calls`` log line) sees the same finished record,
through the hooks of :mod:`aiscope.sink`, so sink order does not matter. A failing
sink is logged and counted; it never reaches the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from aiscope._fork import fork_safe_lock
from aiscope.context import read_operations, read_tags
from aiscope.cost.pricing import Pricing, default_pricing
from aiscope.logs import CallLog
from aiscope.record import CallRecord
from aiscope.sink import (
    FIRST_TOKEN,
    STAGE_END,
    STAGE_START,
    Sink,
    SinkBase,
)

if TYPE_CHECKING:
    # imported where a scope is given one: prometheus_client (with its HTTP server)
    # and the budget machinery are not loaded by ``import aiscope``
    from aiscope.cost.tracker import CostTracker, Reservation
    from aiscope.metrics.collector import MetricsCollector

__all__ = ["PendingCall", "Scope", "Sink", "SinkBase", "configure", "current_scope", "use_scope"]

log = logging.getLogger("aiscope")
_NO_TAGS: Mapping[str, str] = MappingProxyType({})

Start = Callable[["PendingCall"], None]
Event = Callable[["PendingCall | None", str, Mapping[str, Any]], None]
End = Callable[[CallRecord, "PendingCall | None"], None]
Abandon = Callable[["PendingCall"], None]


class PendingCall:
    """One LLM call in progress, between :meth:`Scope.begin` and its record.

    Made by the Scope; sinks fill in what they own (the tracer its ``span`` and
    ids, the metrics their in-flight handle, others anything in ``data``).
    """

    # slots and a plain __init__: one is made per call
    __slots__ = (
        "data",
        "done",
        "in_flight",
        "model",
        "operation",
        "operations",
        "provider",
        "recorded",
        "reservation",
        "scope",
        "span",
        "span_id",
        "start_time",
        "tags",
        "trace_id",
    )

    def __init__(
        self,
        model: str,
        provider: str,
        reservation: Reservation | None = None,
        in_flight: Any = None,
        done: bool = False,
        span: Any = None,
        operation: str = "chat",
        scope: Scope | None = None,
        tags: Mapping[str, str] = _NO_TAGS,
        operations: tuple[str, ...] = (),
        *,
        recorded: bool = False,
        start_time: float = 0.0,
    ) -> None:
        self.model = model
        self.provider = provider
        self.reservation = reservation
        #: the metrics' in-flight handle, None when not counted
        self.in_flight = in_flight
        #: True once the call has its record (or was abandoned)
        self.done = done
        #: the call's span, when the scope has a tracer (started by ``begin``)
        self.span = span
        self.operation = operation
        #: the scope the call belongs to
        self.scope = scope
        #: the context tags and operations in force where the call started
        self.tags = tags
        self.operations = operations
        #: the trace and span ids of the call's span (hex), set when it starts
        self.trace_id: str | None = None
        self.span_id: str | None = None
        #: True for a record emitted after the fact (``record_call``)
        self.recorded = recorded
        #: when a recorded call started (epoch seconds)
        self.start_time = start_time
        #: per-call state of sinks that need some (keyed by the sink)
        self.data: dict[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"PendingCall({self.model!r}, {self.provider!r}, done={self.done})"

    def listens(self, event: str) -> bool:
        """True when some sink of the call's scope takes ``event`` (worth reporting)."""
        return self.scope is not None and bool(self.scope.listeners(event))

    @property
    def captures_content(self) -> bool:
        """True when some sink records prompts and completions: report them then."""
        return self.scope is not None and self.scope.capture_content

    def event(self, event: str, **data: Any) -> None:
        """Report ``event`` (see :mod:`aiscope.sink`) to the sinks that take events."""
        scope = self.scope
        if scope is not None and scope.listeners(event):
            scope.event(self, event, data)

    def first_token(self, seconds: float) -> None:
        """The first streamed token arrived ``seconds`` after the call started."""
        scope = self.scope
        if scope is not None and scope.listeners(FIRST_TOKEN):
            scope.event(self, FIRST_TOKEN, {"seconds": seconds})

    def stage(self, name: str) -> _Stage | _NoStage:
        """A named pipeline stage around the block: STAGE_START/STAGE_END events (a
        tracer makes it a span, current inside the block) and a DEBUG line with its
        time."""
        scope = self.scope
        if (scope is None or not scope.listeners(STAGE_START)) and not _stage_log.isEnabledFor(
            logging.DEBUG
        ):
            return _NO_STAGE  # the hot path: nothing would see the stage
        return _Stage(self, name)

    def activate(self) -> AbstractContextManager[Any]:
        """Make the call's span current in the block (what runs inside is part of the
        call's trace); nothing when the call has no span."""
        if self.span is None:
            return _NO_STAGE
        from aiscope._otel import ActiveSpan

        return ActiveSpan(self.span)

    def inject(self, headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
        """Add the current trace context (W3C ``traceparent``) to outgoing ``headers``
        when the call is traced; returns them."""
        if self.span is None:
            return headers
        try:
            from opentelemetry import propagate

            propagate.inject(headers)
        except Exception:
            log.debug("trace context injection failed", exc_info=True)
        return headers

    def finish(self, record: CallRecord) -> CallRecord:
        """End the call with its record (see :meth:`Scope.emit`); returns the record."""
        scope = self.scope if self.scope is not None else current_scope()
        return scope.emit(record, self)

    def abandon(self) -> None:
        """End the call without a record (its reservation is released)."""
        scope = self.scope if self.scope is not None else current_scope()
        scope.abandon(self)


_stage_log = logging.getLogger("aiscope.client")


class _NoStage(AbstractContextManager[None]):
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_STAGE = _NoStage()


class _Stage:
    """``with call.stage(name)``: one object, no generator (stages run on every call)."""

    __slots__ = ("_call", "_name", "_t0")

    def __init__(self, call: PendingCall, name: str) -> None:
        self._call = call
        self._name = name

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()
        scope = self._call.scope
        if scope is not None and scope.listeners(STAGE_START):
            scope.event(self._call, STAGE_START, {"name": self._name})

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        seconds = time.perf_counter() - self._t0
        call = self._call
        scope = call.scope
        if scope is not None and scope.listeners(STAGE_END):
            scope.event(call, STAGE_END, {"name": self._name, "seconds": seconds, "error": exc})
        if _stage_log.isEnabledFor(logging.DEBUG):
            _stage_log.debug(
                "stage %s provider=%s model=%s took %.3f ms",
                self._name,
                call.provider,
                call.model,
                seconds * 1e3,
            )


class _Hooks(NamedTuple):
    """A sink's hooks (see :mod:`aiscope.sink`), resolved once when a Scope is built."""

    start: Start | None
    event: Event | None
    #: the end of a call: (hook, True: it takes the call too)
    end: tuple[Callable[..., None], bool]
    #: the end of a record emitted without a call
    record_end: tuple[Callable[..., None], bool]
    abandon: Abandon | None
    #: on_start only for calls in progress
    live_only: bool
    events: frozenset[str] | None


def _hooks(name: str, sink: Any) -> _Hooks:
    """A sink's hooks: a plain object with only ``on_record`` has just an end. A hook
    left as SinkBase's no-op is not called at all."""

    def overridden(hook: str) -> Any:
        fn = getattr(sink, hook, None)
        if not callable(fn):
            return None
        if getattr(type(sink), hook, None) is getattr(SinkBase, hook):
            return None
        return fn

    on_end = overridden("on_end")
    on_record = getattr(sink, "on_record", None)
    if not callable(on_record):
        on_record = None
    if on_end is None and on_record is None:
        raise TypeError(
            f"{name} must have an on_record(record) or on_end(record, call) method, got {sink!r}"
        )
    live_only = bool(getattr(sink, "live_calls_only", False))
    end: tuple[Callable[..., None], bool] = (
        (on_end, True) if on_end is not None else (on_record, False)  # type: ignore[assignment]
    )
    # a live-calls-only sink does nothing more than on_record for a record without a call
    record_end = (
        (on_record, False) if on_record is not None and (live_only or on_end is None) else end
    )
    return _Hooks(
        overridden("on_start"),
        overridden("on_event"),
        end,
        record_end,
        overridden("on_abandon"),
        live_only,
        _event_names(getattr(sink, "events", None)),
    )


def _event_names(events: Any) -> frozenset[str] | None:
    if events is None:
        return None
    if isinstance(events, str) or not all(isinstance(e, str) for e in events):
        raise TypeError(f"a sink's events must be a collection of event names, got {events!r}")
    return frozenset(events)


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
        named: list[tuple[str, Any]] = [
            (name, s)
            for name, s in (("metrics", metrics), ("tracer", tracer), ("feedback", feedback))
            if s is not None
        ]
        named += [("sinks", s) for s in sinks]
        resolved = [(name, s, _hooks(name, s)) for name, s in named]
        # the sinks' names in sink_errors: the role, or the class of an extra sink
        labelled = [
            (name if name != "sinks" else type(s).__name__, s, h) for name, s, h in resolved
        ]
        labelled.append(("logs", _CALL_LOG, _hooks("logs", _CALL_LOG)))
        self._sinks: tuple[tuple[str, Any], ...] = tuple((n, s) for n, s, _ in labelled)
        self._starts = tuple((n, h.start) for n, _, h in labelled if h.start is not None)
        self._record_starts = tuple(
            (n, h.start) for n, _, h in labelled if h.start is not None and not h.live_only
        )
        self._events = tuple((n, h.event, h.events) for n, _, h in labelled if h.event is not None)
        self._listeners: dict[str, tuple[tuple[str, Event], ...]] = {}
        self._ends = tuple((n, *h.end) for n, _, h in labelled)
        self._record_ends = tuple((n, *h.record_end) for n, _, h in labelled)
        self._abandons = tuple((n, h.abandon) for n, _, h in labelled if h.abandon is not None)
        #: True when some sink records prompt and completion text
        self.capture_content = any(getattr(s, "capture_content", False) is True for _, s in named)
        #: exceptions raised by sinks, by sink name (they never reach the caller)
        self.sink_errors: dict[str, int] = {}
        self._lock = fork_safe_lock()
        for name, s in self._sinks:
            attach = getattr(s, "attach", None)
            if callable(attach):
                try:
                    attach(self)
                except Exception:
                    self._sink_failed(name)

    @property
    def sinks(self) -> tuple[Any, ...]:
        """Every sink of this scope, in the order they see records."""
        return tuple(s for _, s in self._sinks)

    # -- the call lifecycle ---------------------------------------------------------------
    def begin(
        self,
        model: str,
        provider: str,
        input_tokens: int = 0,
        max_output_tokens: int | None = None,
        operation: str = "chat",
        *,
        tags: Mapping[str, str] | None = None,
    ) -> PendingCall:
        """Start a call: reserve its estimated cost (or raise
        :class:`~aiscope.BudgetExceededError` before anything is sent), fix the
        context tags and operations in force here, and start it in every sink
        (in-flight count, span). ``tags`` are the call's own (per-tag budgets read
        them, with the context tags in force)."""
        reservation = None
        if self.cost_tracker is not None:
            reservation = self.cost_tracker.reserve(
                provider, model, input_tokens, max_output_tokens, tags
            )
        pending = PendingCall(
            model,
            provider,
            reservation,
            None,
            False,
            None,
            operation,
            self,
            read_tags(),
            read_operations(),
        )
        for name, start in self._starts:
            try:
                start(pending)
            except Exception:
                self._sink_failed(name)
        return pending

    def event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        """Pass ``event`` (see :mod:`aiscope.sink`) to every sink that takes events;
        ``call`` is None for an event outside any call (a circuit transition)."""
        for name, on_event in self.listeners(event):
            try:
                on_event(call, event, data)
            except Exception:
                self._sink_failed(name)

    def listeners(self, event: str) -> tuple[tuple[str, Event], ...]:
        """The sinks' ``on_event`` hooks that take ``event`` (by sink name)."""
        found = self._listeners.get(event)
        if found is None:
            found = tuple(
                (name, fn) for name, fn, names in self._events if names is None or event in names
            )
            self._listeners[event] = found
        return found

    def abandon(self, pending: PendingCall) -> None:
        """End a call that will produce no record: release its reservation."""
        if pending.done:
            return
        pending.done = True
        if self.cost_tracker is not None:
            self.cost_tracker.release(pending.reservation)
        for name, on_abandon in self._abandons:
            try:
                on_abandon(pending)
            except Exception:
                self._sink_failed(name)

    def emit(self, record: CallRecord, pending: PendingCall | None = None) -> CallRecord:
        """Run the record processors over ``record`` and pass it to every sink; returns it.

        A bad record raises ``TypeError``/``ValueError`` naming the field before
        any sink has seen it (the pending call's reservation is released).
        """
        if pending is not None and pending.done:
            pending = None
        try:
            # the tags and operations in force where the call started (now, without one)
            ctx_tags = pending.tags if pending is not None else read_tags()
            if ctx_tags:
                record.tags = {**ctx_tags, **record.tags} if record.tags else dict(ctx_tags)
            if not record.operations:
                record.operations = pending.operations if pending is not None else read_operations()
            record.validate()
        except (TypeError, ValueError):
            if pending is not None:
                self.abandon(pending)
            raise
        if pending is None and self._record_starts:
            # a record after the fact: its call starts (back-dated) in the sinks now,
            # so that its span and ids exist before any sink sees the record
            pending = self._recorded(record)
        try:
            self.pricing.price_record(record)
        except Exception:
            self._sink_failed("pricing")
        reservation = None
        if pending is not None:
            pending.done = True
            reservation = pending.reservation
            if pending.trace_id is not None and record.trace_id is None:
                record.trace_id = pending.trace_id
                record.span_id = pending.span_id
        tracker = self.cost_tracker
        if tracker is not None:
            try:
                tracker.on_record(record, reservation)
            except Exception:
                self._sink_failed("cost_tracker")
        for name, on_end, takes_call in self._ends if pending is not None else self._record_ends:
            try:
                if takes_call:
                    on_end(record, pending)
                else:
                    on_end(record)
            except Exception:
                self._sink_failed(name)
        return record

    def _recorded(self, record: CallRecord) -> PendingCall:
        pending = PendingCall(
            record.model,
            record.provider,
            None,
            None,
            False,
            None,
            record.operation,
            self,
            record.tags,
            record.operations,
            recorded=True,
            start_time=record.start_time,
        )
        for name, start in self._record_starts:
            try:
                start(pending)
            except Exception:
                self._sink_failed(name)
        return pending

    def _sink_failed(self, name: str) -> None:
        with self._lock:
            n = self.sink_errors.get(name, 0) + 1
            self.sink_errors[name] = n
        if n == 1 or n % 1000 == 0:
            log.warning(
                "aiscope sink %r failed (%d so far); the call is unaffected", name, n, exc_info=True
            )

    # -- flushing -------------------------------------------------------------------------
    def force_flush(self, timeout: float = 5.0) -> bool:
        """Ask every sink that buffers (``force_flush`` or ``flush``) to send what it
        holds, within ``timeout`` seconds in all; True when all of it went out."""
        deadline = time.monotonic() + timeout
        ok = True
        for name, s in self._sinks:
            flush = getattr(s, "force_flush", None) or getattr(s, "flush", None)
            if not callable(flush):
                continue
            try:
                ok = bool(flush(max(0.0, deadline - time.monotonic()))) and ok
            except Exception:
                self._sink_failed(name)
                ok = False
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        """Shut down every sink that has ``shutdown``, within ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        for name, s in self._sinks:
            stop = getattr(s, "shutdown", None)
            if not callable(stop):
                continue
            try:
                stop(max(0.0, deadline - time.monotonic()))
            except Exception:
                self._sink_failed(name)

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


#: the one summary line a call in the ``aiscope.calls`` logger, in every scope
_CALL_LOG = CallLog()


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
