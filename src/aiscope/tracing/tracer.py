"""Tracer: OpenTelemetry spans for LLM calls (GenAI conventions) and for your own code.

::

    tracer = Tracer(service_name="my-app", endpoint="http://jaeger:4317")
    tracer = Tracer(service_name="my-app", exporter=ConsoleExporter(show_attributes=True))
    with tracer.span("data_pipeline") as span:
        span.set_attribute("doc_count", 3)

A Tracer is a sink of the :class:`~aiscope.Scope`. When a capture adapter begins a
call, the Scope asks :meth:`Tracer.start_call` for the call's span (so the span
starts with the call and is the parent of the client's stage spans); the
finished record then goes to :meth:`Tracer.end_call`, which sets every attribute
and ends the span. A record emitted without a begun call gets a span back-dated
by its latency (:meth:`Tracer.on_record`).
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import logging
import weakref
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from aiscope._fork import fork_safe_lock
from aiscope._otel import ActiveSpan
from aiscope.masking import mask_secrets
from aiscope.record import CallRecord
from aiscope.sink import REQUEST, RESPONSE, STAGE_END, STAGE_START
from aiscope.tracing import attributes as A
from aiscope.tracing import env
from aiscope.tracing.callspan import CallSpan, CallSpans
from aiscope.tracing.console import ConsoleExporter
from aiscope.tracing.env import Protocol
from aiscope.tracing.memory import InMemoryExporter
from aiscope.tracing.otlp import otlp_exporter
from aiscope.tracing.processor import BoundedBatchProcessor, LocalSpanProcessor

if TYPE_CHECKING:
    from aiscope.scope import PendingCall

log = logging.getLogger("aiscope.tracing")

F = TypeVar("F", bound=Callable[..., Any])
Redactor = Callable[[str], "str | None"]

#: Exporters that print or keep spans locally are fed synchronously by default.
_SYNC_EXPORTERS = (ConsoleExporter, InMemoryExporter)


class Tracer:
    """Traces LLM calls and custom spans with the OpenTelemetry SDK.

    ``endpoint`` sends OTLP (gRPC on port 4317 or a ``grpc://`` URL, OTLP/HTTP on
    4318 or an ``http(s)://.../v1/traces`` URL); ``exporter`` takes any span
    exporter or a list of them (:class:`ConsoleExporter`, :class:`LangfuseExporter`,
    :class:`InMemoryExporter`, an OTLP exporter). Spans are exported from a
    bounded queue on a background thread (local exporters synchronously unless
    ``batch=True``). Settings not given come from the standard OpenTelemetry
    variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``,
    ``OTEL_EXPORTER_OTLP_*``: see :mod:`aiscope.tracing.env`), then from aiscope's
    defaults; with neither ``endpoint`` nor ``exporter`` (and its own provider), an
    OTLP endpoint variable makes the Tracer export there. The Tracer has its own
    TracerProvider unless ``use_global_provider=True``. Prompt and completion
    content is recorded only with ``capture_content=True``, each text passed through
    ``redact`` (default: API keys masked; return None to drop a text) and cut to
    ``max_content_length`` characters (default 16,384; None: no limit).

    As a sink of the :class:`~aiscope.Scope` (see :mod:`aiscope.sink`), a Tracer
    starts a call's span when the call begins, makes each pipeline stage a child
    span, records the request and answer on it, and ends it with the record.
    """

    #: the call events a tracer takes (the Scope passes no others)
    events = frozenset((STAGE_START, STAGE_END, REQUEST, RESPONSE))

    def __init__(
        self,
        service_name: str | None = None,
        *,
        endpoint: str | None = None,
        exporter: SpanExporter | Sequence[SpanExporter] | None = None,
        protocol: Protocol | None = None,
        headers: Mapping[str, str] | None = None,
        sample_ratio: float | None = None,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
        capture_content: bool = False,
        redact: Redactor | None = None,
        max_content_length: int | None = 16_384,
        use_global_provider: bool = False,
        meter_provider: MeterProvider | None = None,
        batch: bool | None = None,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        schedule_delay_s: float | None = None,
        export_timeout_s: float | None = None,
    ) -> None:
        # an argument wins, then the standard OpenTelemetry variable, then our default
        if service_name is None:
            service_name = env.service_name() or "aiscope"
        if max_queue_size is None:
            max_queue_size = env.positive_int(env.BSP_MAX_QUEUE_SIZE) or 2048
        if max_export_batch_size is None:
            max_export_batch_size = env.positive_int(env.BSP_MAX_EXPORT_BATCH_SIZE)
            if (
                max_export_batch_size is not None
                and isinstance(max_queue_size, int)
                and max_export_batch_size > max_queue_size
            ):
                raise ValueError(
                    f"{env.BSP_MAX_EXPORT_BATCH_SIZE} ({max_export_batch_size}) cannot "
                    f"exceed the queue size ({max_queue_size})"
                )
        if schedule_delay_s is None:
            schedule_delay_s = env.millis_as_seconds(env.BSP_SCHEDULE_DELAY) or 1.0
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"service_name must be a non-empty str, got {service_name!r}")
        parent_based = True
        if sample_ratio is None:
            sample_ratio, parent_based = env.sampler() or (1.0, True)
        if isinstance(sample_ratio, bool) or not isinstance(sample_ratio, int | float):
            raise TypeError(f"sample_ratio must be a number, got {sample_ratio!r}")
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio must be between 0 and 1, got {sample_ratio!r}")
        if not isinstance(capture_content, bool):
            raise TypeError(f"capture_content must be a bool, got {capture_content!r}")
        if redact is not None and not callable(redact):
            raise TypeError(f"redact must be a function str -> str | None, got {redact!r}")
        if max_content_length is not None and (
            isinstance(max_content_length, bool)
            or not isinstance(max_content_length, int)
            or max_content_length < 1
        ):
            raise ValueError(
                f"max_content_length must be an int >= 1 or None, got {max_content_length!r}"
            )
        exporters: list[SpanExporter] = []
        if exporter is not None:
            given = [exporter] if isinstance(exporter, SpanExporter) else list(exporter)
            for e in given:
                if not isinstance(e, SpanExporter):
                    raise TypeError(f"exporter must be an OpenTelemetry SpanExporter, got {e!r}")
            exporters.extend(given)
        if endpoint is not None:
            exporters.append(otlp_exporter(endpoint, protocol, headers, export_timeout_s))
        elif (
            exporter is None
            # the application's own provider is the one the variables configure (by
            # opentelemetry-instrument, say): adding an exporter would send twice
            and not use_global_provider
            and (from_env := env.otlp_endpoint()) is not None
        ):
            url, exact = from_env
            exporters.append(
                otlp_exporter(url, protocol, headers, export_timeout_s, exact_path=exact)
            )
        self.service_name = service_name
        self.capture_content = capture_content
        self.redact: Redactor = redact if redact is not None else mask_secrets
        self.max_content_length = max_content_length
        self.processors: list[SpanProcessor] = []
        for e in exporters:
            use_batch = batch if batch is not None else not isinstance(e, _SYNC_EXPORTERS)
            self.processors.append(
                BoundedBatchProcessor(
                    e,
                    max_queue_size=max_queue_size,
                    # default: 512, or the whole queue when it is smaller
                    max_export_batch_size=max_export_batch_size
                    if max_export_batch_size is not None
                    else min(512, max_queue_size)
                    if isinstance(max_queue_size, int)
                    else 512,
                    schedule_delay_s=schedule_delay_s,
                )
                if use_batch
                else LocalSpanProcessor(e)
            )
        self._own_provider: TracerProvider | None = None
        provider: trace.TracerProvider
        if use_global_provider:
            provider = trace.get_tracer_provider()
            if self.processors:
                if not isinstance(provider, TracerProvider):
                    raise ValueError(
                        "use_global_provider=True with exporters needs the application to set "
                        "an SDK TracerProvider first (trace.set_tracer_provider)"
                    )
                for p in self.processors:
                    provider.add_span_processor(p)
        else:
            resource = Resource.create(
                {"service.name": service_name, **(resource_attributes or {})}
            )
            own = TracerProvider(
                resource=resource,
                sampler=_sampler(sample_ratio, parent_based),
                shutdown_on_exit=False,
            )
            for p in self.processors:
                own.add_span_processor(p)
            self._own_provider = own
            provider = own
        from aiscope._version import __version__

        self._provider = provider
        self._otel = provider.get_tracer("aiscope", __version__)
        # Call spans the fast way where that is exactly what the SDK would export.
        self._calls = CallSpans.for_tracer(self._otel) if self._own_provider is not None else None
        self._closed = False
        self._close_lock = fork_safe_lock()
        self._metrics = _GenAIMetrics(meter_provider, self) if meter_provider is not None else None
        if self.processors:
            # Export what is queued at exit, but never hold the exit up for long.
            atexit.register(_shutdown_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"Tracer(service_name={self.service_name!r}, processors={len(self.processors)})"

    @property
    def tracer_provider(self) -> trace.TracerProvider:
        """The OpenTelemetry TracerProvider this Tracer's spans come from (its own, or the
        global one with ``use_global_provider=True``): give it to other instrumentation
        (HTTP server spans, ...) so their spans share its exporters and sampling."""
        return self._provider

    # -- custom spans -------------------------------------------------------------------
    def span(
        self,
        name: str,
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> _SpanScope:
        """A span around the block (``with``, in sync or async code), child of the
        current span; it is current inside the block.

        An exception is recorded on the span (message with secrets masked) and re-raised.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"span name must be a non-empty str, got {name!r}")
        return _SpanScope(self._otel, name, attributes, kind)

    def bind(self, fn: F) -> F:
        """``fn`` running in the current trace context wherever it is called (threads)."""
        ctx = contextvars.copy_context()

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            return ctx.copy().run(fn, *args, **kwargs)

        return run  # type: ignore[return-value]

    # -- LLM calls (driven by the Scope) ------------------------------------------------
    def start_call(
        self, model: str, provider: str, operation: str = "chat", start_ns: int | None = None
    ) -> Span:
        """Start (not activate) the span of an LLM call beginning now (or at
        ``start_ns``, epoch nanoseconds)."""
        if self._calls is not None:
            return self._calls.start(
                A.span_name(operation, model),
                A.call_start_attributes(operation, model, provider),
                start_ns,
            )
        return self._otel.start_span(
            A.span_name(operation, model),
            kind=SpanKind.CLIENT,
            attributes=A.call_start_attributes(operation, model, provider),
            start_time=start_ns,
        )

    # -- the sink hooks (aiscope.sink): a Scope drives them --------------------------------
    def on_start(self, call: PendingCall) -> None:
        """Start the call's span (back-dated for a record emitted after the fact) and
        give the call its trace and span ids."""
        start_ns = int(call.start_time * 1e9) if call.recorded else None
        span = self.start_call(call.model, call.provider, call.operation, start_ns)
        if call.span is None:
            call.span = span
        else:  # another tracer's span is the call's: keep ours aside
            if call.data is None:
                call.data = {}
            call.data[self] = span
        if call.trace_id is None:
            ctx = span.get_span_context()
            if ctx.is_valid:
                call.trace_id = f"{ctx.trace_id:032x}"
                call.span_id = f"{ctx.span_id:016x}"

    def _span_of(self, call: PendingCall) -> Any:
        data = call.data
        if data is not None:
            span = data.get(self)
            if span is not None:
                return span
        return call.span

    def on_event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        """Stages as child spans (current while they run); the request's parameters and
        messages, and the answer, on the call's span."""
        if call is None:
            return
        if event == STAGE_START:
            stage = _SpanScope(self._otel, data["name"], None, SpanKind.INTERNAL)
            stage.__enter__()
            if call.data is None:
                call.data = {}
            call.data.setdefault((self, "stages"), []).append(stage)
        elif event == STAGE_END:
            stages = call.data.get((self, "stages")) if call.data is not None else None
            if stages:
                err = data.get("error")
                stages.pop().__exit__(None, err if isinstance(err, BaseException) else None, None)
        elif event == REQUEST:
            self.describe_request(
                self._span_of(call),
                max_tokens=data.get("max_tokens"),
                temperature=data.get("temperature"),
                top_p=data.get("top_p"),
                stop_sequences=data.get("stop_sequences"),
                seed=data.get("seed"),
                messages=data.get("messages"),
            )
        elif event == RESPONSE:
            self.describe_response(self._span_of(call), data.get("text"), data.get("finish_reason"))

    def on_end(self, record: CallRecord, call: PendingCall | None) -> None:
        """End the call's span with the record's attributes."""
        span = self._span_of(call) if call is not None else None
        if span is None:
            self.on_record(record)
            return
        end_ns = None
        if call is not None and call.recorded:
            end_ns = int(record.start_time * 1e9) + int(record.latency_s * 1e9)
        self.end_call(record, span, end_ns)

    def on_abandon(self, call: PendingCall) -> None:
        """End the span of a call that produced no record."""
        span = self._span_of(call)
        if span is not None:
            self.abandon_call(span)

    def _content(self, text: str) -> str | None:
        """A text as recorded: redacted, then cut to ``max_content_length``."""
        out = self.redact(text)
        limit = self.max_content_length
        if out is not None and limit is not None and len(out) > limit:
            out = out[:limit] + "…"
        return out

    def activate(self, span: Span | None) -> AbstractContextManager[Any]:
        """Make a call's span current in the block (stage spans become its children,
        outgoing requests carry its trace)."""
        if span is None:
            return _NULL
        return ActiveSpan(span)

    def end_call(self, record: CallRecord, span: Span, end_ns: int | None = None) -> None:
        """Set a finished call's attributes on its span and end it (now, or at
        ``end_ns``)."""
        if type(span) is CallSpan:
            self._finish_call_span(record, span, end_ns)
            return
        name = A.span_name(record.operation, record.model)
        if span.is_recording() and getattr(span, "name", name) != name:
            span.update_name(name)  # begin assumed a chat call
        self._finish(record, span, end_ns)

    def abandon_call(self, span: Span) -> None:
        """End the span of a call that produced no record."""
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, "call abandoned without a record"))
            span.set_attribute(A.ERROR_TYPE, "abandoned")
            span.end()

    def on_record(self, record: CallRecord) -> None:
        """A span for a record made without :meth:`start_call`, back-dated by its latency."""
        start_ns = int(record.start_time * 1e9)
        name = A.span_name(record.operation, record.model)
        attributes = A.call_start_attributes(record.operation, record.model, record.provider)
        end_ns = start_ns + int(record.latency_s * 1e9)
        if self._calls is not None:
            span = self._calls.start(name, attributes, start_ns)
            if type(span) is CallSpan:
                self._finish_call_span(record, span, end_ns)
                return
        else:
            span = self._otel.start_span(
                name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
            )
        self._finish(record, span, end_ns)

    def _finish_call_span(self, record: CallRecord, span: CallSpan, end_ns: int | None) -> None:
        """:meth:`_finish` for aiscope's own call spans: one step, one lock."""
        if record.trace_id is None:  # the Scope gave it the ids when the span started
            ctx = span.get_span_context()
            record.trace_id = f"{ctx.trace_id:032x}"
            record.span_id = f"{ctx.span_id:016x}"
        span.end_call(
            A.span_name(record.operation, record.model),
            A.record_attributes(record),
            Status(StatusCode.ERROR, record.error_type or None)
            if record.status == "error"
            else None,
            end_ns,
        )
        if self._metrics is not None:
            self._metrics.record(record)

    def _finish(self, record: CallRecord, span: Span, end_ns: int | None) -> None:
        if record.trace_id is None:
            ctx = span.get_span_context()
            if ctx.is_valid:
                record.trace_id = format(ctx.trace_id, "032x")
                record.span_id = format(ctx.span_id, "016x")
        if span.is_recording():
            span.set_attributes(A.record_attributes(record))
            if record.status == "error":
                span.set_status(Status(StatusCode.ERROR, record.error_type or None))
            span.end(end_time=end_ns)
        if self._metrics is not None:
            self._metrics.record(record)

    def describe_request(
        self,
        span: Span | None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop_sequences: Sequence[str] | None = None,
        seed: int | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Request parameters of a call (and its messages, with ``capture_content``)."""
        if span is None or not span.is_recording():
            return
        try:
            attrs: dict[str, AttributeValue] = {}
            for key, value in (
                (A.REQUEST_MAX_TOKENS, max_tokens),
                (A.REQUEST_TEMPERATURE, temperature),
                (A.REQUEST_TOP_P, top_p),
                (A.REQUEST_SEED, seed),
            ):
                if value is not None:
                    attrs[key] = value
            if stop_sequences:
                attrs[A.REQUEST_STOP_SEQUENCES] = list(stop_sequences)
            if self.capture_content and messages:
                system, chat = _input_messages(messages, self._content)
                if system:
                    attrs[A.SYSTEM_INSTRUCTIONS] = json.dumps(system, ensure_ascii=False)
                if chat:
                    attrs[A.INPUT_MESSAGES] = json.dumps(chat, ensure_ascii=False)
            span.set_attributes(attrs)
        except Exception:
            log.debug("could not describe the request on its span", exc_info=True)

    def describe_response(
        self, span: Span | None, text: str | None, finish_reason: str | None = None
    ) -> None:
        """The completion text of a call (only with ``capture_content``)."""
        if span is None or not self.capture_content or not span.is_recording() or not text:
            return
        try:
            content = self._content(text)
            if content is None:
                return
            message: dict[str, Any] = {
                "role": "assistant",
                "parts": [{"type": "text", "content": content}],
            }
            if finish_reason:
                message["finish_reason"] = finish_reason
            span.set_attribute(A.OUTPUT_MESSAGES, json.dumps([message], ensure_ascii=False))
        except Exception:
            log.debug("could not describe the response on its span", exc_info=True)

    def inject(self, headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
        """Add the current trace context (W3C ``traceparent``, with the default
        propagators) to outgoing request ``headers``; returns them."""
        try:
            propagate.inject(headers)
        except Exception:
            log.debug("trace context injection failed", exc_info=True)
        return headers

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def dropped_spans(self) -> int:
        """Spans dropped so far because an export queue was full (or shut down)."""
        return sum(getattr(p, "dropped", 0) for p in self.processors)

    @property
    def failed_spans(self) -> int:
        """Spans lost so far because the exporter failed to take them (an HTTP error,
        the collector unreachable)."""
        return sum(getattr(p, "failed", 0) for p in self.processors)

    def force_flush(self, timeout: float = 5.0) -> bool:
        """The sink contract's name for :meth:`flush`."""
        return self.flush(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued; returns within ``timeout`` seconds in all (one deadline
        for every exporter). True only when everything was exported and accepted; False
        when time ran out or an export failed (see :attr:`failed_spans`)."""
        _check_timeout(timeout)
        import time

        deadline = time.monotonic() + timeout
        ok = True
        for p in self.processors:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            ok = p.force_flush(left_ms) and ok
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop exporting; returns within ``timeout`` seconds whatever the
        collector does."""
        _check_timeout(timeout)
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        import time

        deadline = time.monotonic() + timeout
        for p in self.processors:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if isinstance(p, BoundedBatchProcessor):
                p.shutdown(left_ms)
            else:
                p.shutdown()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _shutdown_at_exit(ref: weakref.ref[Tracer]) -> None:
    tracer = ref()
    if tracer is not None:
        tracer.shutdown(timeout=2.0)


class _GenAIMetrics:
    """The GenAI client metrics with their recommended buckets, and dropped spans."""

    def __init__(self, meter_provider: MeterProvider, tracer: Tracer) -> None:
        from aiscope._version import __version__

        meter = meter_provider.get_meter("aiscope", __version__)
        self.tokens = meter.create_histogram(
            A.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=A.TOKEN_USAGE_BUCKETS,
        )
        self.duration = meter.create_histogram(
            A.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=A.DURATION_BUCKETS,
        )
        self.ttfc = meter.create_histogram(
            A.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=A.DURATION_BUCKETS,
        )

        def dropped(_: CallbackOptions) -> list[Observation]:
            return [Observation(tracer.dropped_spans)]

        meter.create_observable_counter(
            "aiscope.tracing.dropped_spans",
            callbacks=[dropped],
            unit="{span}",
            description="Spans dropped because the export queue was full.",
        )

    def record(self, record: CallRecord) -> None:
        attrs = A.metric_attributes(record)
        timing = dict(attrs)
        if record.status == "error":
            timing[A.ERROR_TYPE] = record.error_type or "_OTHER"
        self.duration.record(record.latency_s, timing)
        if record.streaming and record.time_to_first_token_s is not None:
            self.ttfc.record(record.time_to_first_token_s, attrs)
        if record.status == "ok" or record.has_usage:
            u = record.usage
            self.tokens.record(u.input_tokens, {**attrs, A.TOKEN_TYPE: "input"})
            self.tokens.record(u.output_tokens, {**attrs, A.TOKEN_TYPE: "output"})


class _SpanScope:
    """``with tracer.span(name) as span``: start, make current, end (one object, no
    generator-based context managers: stage spans run on every call)."""

    __slots__ = ("_attributes", "_kind", "_name", "_otel", "_span", "_token")

    def __init__(
        self,
        otel: trace.Tracer,
        name: str,
        attributes: Mapping[str, AttributeValue] | None,
        kind: SpanKind,
    ) -> None:
        self._otel = otel
        self._name = name
        self._attributes = attributes
        self._kind = kind

    def __enter__(self) -> Span:
        span = self._otel.start_span(self._name, kind=self._kind, attributes=self._attributes)
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        span = self._span
        try:
            if exc is not None:
                _record_error(span, exc)
        finally:
            otel_context.detach(self._token)
            span.end()


class _NullContext(AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _NullContext()


def _record_error(span: Span, exc: BaseException) -> None:
    message = mask_secrets(str(exc))
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
    span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)
    span.add_event(
        "exception",
        {"exception.type": type(exc).__qualname__, "exception.message": message},
    )


def _text_parts(content: Any, redact: Redactor) -> list[dict[str, Any]]:
    items = [{"type": "text", "text": content}] if isinstance(content, str) else content
    parts: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            text = redact(item["text"])
            if text is not None:
                parts.append({"type": "text", "content": text})
        elif isinstance(item, dict) and "type" in item:
            parts.append({"type": str(item["type"])})  # images, audio...: the kind, not the data
    return parts


def _input_messages(
    messages: Sequence[Mapping[str, Any]], redact: Redactor
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for m in messages:
        role = str(m.get("role", "user"))
        parts = _text_parts(m.get("content"), redact)
        if role == "system":
            system.extend(parts)
        elif parts:
            chat.append({"role": role, "parts": parts})
    return system, chat


def _sampler(ratio: float, parent_based: bool) -> Sampler:
    """Parent-based (a child follows its parent's decision) unless the standard
    ``OTEL_TRACES_SAMPLER`` variable asked for a sampler that is not."""
    root = ALWAYS_ON if ratio == 1 else ALWAYS_OFF if ratio == 0 else TraceIdRatioBased(ratio)
    return ParentBased(root) if parent_based else root


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
