"""The span of one LLM call, made for the call's hot path.

The OpenTelemetry SDK's ``Tracer.start_span`` validates and copies every attribute
as it is set (through ``BoundedAttributes``) and takes a lock per change. A call's
span gets about twenty attributes, all produced by aiscope from a validated
:class:`~aiscope.CallRecord` (strings, ints, floats, bools, lists of strings), so
that work buys nothing there and costs more than the rest of the call's
bookkeeping. :class:`CallSpans` starts a call's span with the SDK's own sampler,
id generator, resource, scope and span processors, keeps the attributes in a
plain dict, and at the end hands the processors the SDK's ``ReadableSpan`` they
would have received from ``Span.end()`` — exporters see the same object.

It is used only where it is exactly equivalent: on a Tracer's own TracerProvider,
whose processors are aiscope's (they ignore ``on_start``/``_on_ending``), with the
default attribute limits. Elsewhere the SDK's ``start_span`` is used as is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AttributeValue

log = logging.getLogger("aiscope.tracing")

_PARENT_BASED_ALWAYS_ON = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


class CallSpans:
    """Starts call spans on one SDK tracer the fast way, or says it cannot."""

    __slots__ = (
        "_always_on",
        "_child_flags",
        "_ids",
        "_limit",
        "_processor",
        "_resource",
        "_root_flags",
        "_scope",
        "_tracer",
    )

    def __init__(self, tracer: SdkTracer) -> None:
        self._tracer = tracer
        self._processor = tracer.span_processor
        self._ids = tracer.id_generator
        # a sampled parent's child: sampled, random trace id if the parent's is
        self._child_flags = {
            False: TraceFlags(TraceFlags.SAMPLED),
            True: TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
        }
        self._root_flags = TraceFlags(
            TraceFlags.SAMPLED
            | (TraceFlags.RANDOM_TRACE_ID if self._ids.is_trace_id_random() else TraceFlags.DEFAULT)
        )
        self._resource = tracer.resource
        self._scope = tracer._instrumentation_scope  # what Span.end() passes
        sampler = tracer.sampler
        # ParentBased(ALWAYS_ON) with its default delegates: sampled unless the parent
        # is not; any other sampler is asked.
        self._always_on = (
            isinstance(sampler, ParentBased)
            and sampler.get_description() == _PARENT_BASED_ALWAYS_ON  # type: ignore[no-untyped-call]
        )
        limits: SpanLimits = tracer._span_limits
        self._limit = limits.max_span_attributes or 0

    @classmethod
    def for_tracer(cls, tracer: object) -> CallSpans | None:
        """Call spans on ``tracer``, or None if it is not an SDK tracer this module can
        start spans on exactly (attribute value lengths limited, say)."""
        if not isinstance(tracer, SdkTracer):
            return None
        limits = getattr(tracer, "_span_limits", None)
        usable = (
            isinstance(limits, SpanLimits)
            and limits.max_attribute_length is None
            and limits.max_span_attribute_length is None
            and isinstance(limits.max_span_attributes, int)
            and hasattr(tracer, "_instrumentation_scope")
        )
        return cls(tracer) if usable else None

    def start(
        self, name: str, attributes: dict[str, AttributeValue], start_ns: int | None = None
    ) -> Span:
        """The span of a call starting now or at ``start_ns`` (a child of the current
        span), not current. ``attributes`` is the caller's fresh dict: the span keeps it."""
        tracer = self._tracer
        if not tracer._is_enabled():  # a tracer configurator disabled it
            return INVALID_SPAN
        # trace.get_current_span(), one call instead of four (this runs on every call)
        current: Span = otel_context.get_current().get(_SPAN_KEY, INVALID_SPAN)  # type: ignore[assignment]
        parent: SpanContext | None = current.get_span_context()
        ids = self._ids
        if parent is None or not parent.is_valid:
            parent = None
        if self._always_on:
            # what ParentBased(ALWAYS_ON) answers, without building its SamplingResult
            if parent is None:
                trace_id, flags, state = ids.generate_trace_id(), self._root_flags, None
            elif parent.trace_flags.sampled:
                trace_id, state = parent.trace_id, parent.trace_state
                flags = self._child_flags[parent.trace_flags.random_trace_id]
            else:
                return self._sampled(parent, name, attributes, start_ns)
            context = SpanContext(trace_id, ids.generate_span_id(), False, flags, state)
            return CallSpan(self, name, context, parent, attributes, start_ns)
        return self._sampled(parent, name, attributes, start_ns)

    def _sampled(
        self,
        parent: SpanContext | None,
        name: str,
        attributes: dict[str, AttributeValue],
        start_ns: int | None,
    ) -> Span:
        """A span as the tracer's sampler decides (what ``start_span`` does)."""
        ids = self._ids
        if parent is None:
            trace_id, random_id = ids.generate_trace_id(), ids.is_trace_id_random()
        else:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        result = self._tracer.sampler.should_sample(
            None, trace_id, name, SpanKind.CLIENT, attributes, ()
        )
        flags = TraceFlags(
            (TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT)  # type: ignore[no-untyped-call]
            | (TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT)
        )
        context = SpanContext(trace_id, ids.generate_span_id(), False, flags, result.trace_state)
        if not result.decision.is_recording():  # type: ignore[no-untyped-call]
            return NonRecordingSpan(context)
        return CallSpan(self, name, context, parent, dict(result.attributes or {}), start_ns)

    def finish(self, span: CallSpan) -> None:
        """Hand the ended span to the processors as the SDK's ReadableSpan."""
        attrs: Any = span._attributes
        if len(attrs) > self._limit:
            attrs = BoundedAttributes(self._limit, attrs, immutable=True)
        readable = ReadableSpan(
            name=span._name,
            context=span._context,
            parent=span._parent,
            resource=self._resource,
            attributes=attrs,
            events=tuple(span._events),
            links=tuple(span._links),
            kind=SpanKind.CLIENT,
            status=span._status,
            start_time=span._start,
            end_time=span._end,
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(readable)


#: One lock for every call span's rare changes after start: held for a dict update,
#: it is cheaper than a lock allocated per call. Looked up as a global at each use (no
#: span keeps it), so a forked child can replace it: another thread of the parent may
#: have held it at the fork, and that copy would never be released.
_LOCK = threading.Lock()


def _new_lock_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


class CallSpan(Span):
    """A recording span of one LLM call (see the module's docstring)."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_factory",
        "_links",
        "_name",
        "_parent",
        "_start",
        "_status",
    )

    def __init__(
        self,
        factory: CallSpans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
        start_ns: int | None = None,
    ) -> None:
        self._factory = factory
        self._name = name
        self._context = context
        self._parent = parent
        self._attributes = attributes  # the caller's fresh dict: owned from here
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._status = Status(StatusCode.UNSET)
        self._start = start_ns if start_ns is not None else time.time_ns()
        self._end: int | None = None

    @property
    def name(self) -> str:
        """The span's name."""
        return self._name

    def get_span_context(self) -> SpanContext:
        """The span's context (trace and span ids)."""
        return self._context

    def is_recording(self) -> bool:
        """True until the span ends."""
        return self._end is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Set attributes (invalid values are dropped with a warning, as the SDK does)."""
        # the SDK's own cleaning: the same keys and values kept, the same ones dropped
        clean = _clean_attribute_value(dict(attributes), None)
        with _LOCK:
            if self._end is None and isinstance(clean, Mapping):
                self._attributes.update(clean)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute."""
        self.set_attributes({key: value})

    def end_call(
        self,
        name: str,
        attributes: dict[str, AttributeValue],
        error: Status | None,
        end_ns: int | None = None,
    ) -> None:
        """End the span of a finished call: its final name, its attributes (aiscope's
        own, already valid: set without cleaning) and an error status, in one step."""
        with _LOCK:
            if self._end is not None:
                return
            self._name = name
            self._attributes.update(attributes)
            if error is not None and self._status.status_code is not StatusCode.OK:
                self._status = error
            self._end = end_ns if end_ns is not None else time.time_ns()
        self._export()

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Add an event (with the SDK's Event type, as exporters expect)."""
        with _LOCK:
            if self._end is None:
                self._events.append(Event(name, dict(attributes or {}), timestamp))

    def add_link(
        self, context: SpanContext, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Link another span (a valid context, or one with attributes, as the SDK takes)."""
        if not context.is_valid and not attributes:
            return
        with _LOCK:
            if self._end is None:
                self._links.append(Link(context, dict(attributes or {})))

    def update_name(self, name: str) -> None:
        """Rename the span."""
        with _LOCK:
            if self._end is None:
                self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status (an OK status is final, as in the SDK)."""
        if isinstance(status, StatusCode):
            status = Status(status, description)
        with _LOCK:
            if self._end is None and self._status.status_code is not StatusCode.OK:
                self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record an exception as an ``exception`` event (the SDK's attributes)."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        attrs: dict[str, AttributeValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        attrs.update(attributes or {})
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span and export it (once)."""
        with _LOCK:
            if self._end is not None:
                return
            self._end = end_time if end_time is not None else time.time_ns()
        self._export()

    def _export(self) -> None:
        try:
            self._factory.finish(self)
        except Exception:
            log.warning("could not hand a call span to its processors", exc_info=True)


__all__ = [
    "CallSpan",
    "CallSpans",
]
