"""Call spans made the fast way (tracing/callspan.py) export exactly what the SDK's
``start_span`` path exports: the same ReadableSpan fields, parents, sampling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from aiscope import CallRecord, InMemoryExporter, Tracer, Usage
from aiscope.tracing.callspan import CallSpan


def _pair(**kwargs: Any) -> tuple[Tracer, InMemoryExporter, Tracer, InMemoryExporter]:
    """A tracer on the fast path and one forced onto the SDK's start_span."""
    fast_mem, sdk_mem = InMemoryExporter(), InMemoryExporter()
    fast = Tracer(service_name="svc", exporter=fast_mem, **kwargs)
    sdk = Tracer(service_name="svc", exporter=sdk_mem, **kwargs)
    assert fast._calls is not None
    sdk._calls = None
    return fast, fast_mem, sdk, sdk_mem


def _record(**overrides: Any) -> CallRecord:
    fields: dict[str, Any] = dict(
        model="gpt-4o",
        provider="openai",
        start_time=time.time(),
        latency_s=0.25,
        usage=Usage(100, 20, 30, 0, 5),
        response_model="gpt-4o-2024-08-06",
        finish_reasons=("stop",),
        operations=("rag", "answer"),
        tags={"feature": "search"},
        server_address="api.openai.com",
        server_port=443,
        time_to_first_token_s=0.1,
        streaming=True,
        request_id="3f1c0ffee",
    )
    fields.update(overrides)
    return CallRecord(**fields)


def _view(span: ReadableSpan) -> dict[str, Any]:
    """Every field an exporter reads, ids and times aside."""
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "links": [
            (link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
            for link in span.links
        ],
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
        "parent_is_none": span.parent is None,
        "flags": span.context.trace_flags if span.context else None,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def _same(action: Callable[[Tracer], None], **kwargs: Any) -> list[ReadableSpan]:
    fast, fast_mem, sdk, sdk_mem = _pair(**kwargs)
    action(fast)
    action(sdk)
    got, want = fast_mem.spans(), sdk_mem.spans()
    assert [_view(s) for s in got] == [_view(s) for s in want]
    return got


def test_a_finished_call_exports_what_the_sdk_would() -> None:
    def call(tracer: Tracer) -> None:
        span = tracer.start_call("gpt-4o", "openai")
        assert isinstance(span, CallSpan) == (tracer._calls is not None)
        tracer.describe_request(span, max_tokens=50, temperature=0.2, stop_sequences=["x"])
        tracer.end_call(_record(), span)

    (span,) = _same(call)
    assert span.attributes is not None
    assert span.attributes["gen_ai.usage.input_tokens"] == 100
    assert span.attributes["gen_ai.request.stop_sequences"] == ("x",)
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time >= span.start_time


def test_errors_renames_events_and_backdated_records_match() -> None:
    def calls(tracer: Tracer) -> None:
        span = tracer.start_call("gpt-4o", "openai")
        span.add_event("retry", {"attempt": 1})
        span.add_link(SpanContext(0x1, 0x2, is_remote=False), {"why": "retried"})
        span.record_exception(TimeoutError("slow"))
        tracer.end_call(
            _record(status="error", error_type="TimeoutError", model="o3", operation="responses"),
            span,
        )
        tracer.on_record(_record(model="claude-sonnet-4-5", provider="anthropic"))

    spans = _same(calls)
    assert spans[0].name == "responses o3" and len(spans[0].links) == 1
    assert spans[0].status.status_code is StatusCode.ERROR
    record = _record()
    # a back-dated span starts at the record's start time
    assert spans[1].start_time is not None and spans[1].end_time is not None
    assert spans[1].end_time - spans[1].start_time == pytest.approx(
        record.latency_s * 1e9, rel=1e-3
    )


def test_a_call_inside_a_span_is_its_child_in_both() -> None:
    def nested(tracer: Tracer) -> None:
        with tracer.span("pipeline") as outer:
            span = tracer.start_call("gpt-4o", "openai")
            tracer.end_call(_record(), span)
            assert span.get_span_context().trace_id == outer.get_span_context().trace_id

    spans = _same(nested)
    call, outer = spans
    assert call.parent is not None and outer.context is not None
    assert call.parent.span_id == outer.context.span_id


@pytest.mark.parametrize("sampled", [True, False])
def test_remote_parents_sampled_or_not_are_honoured(sampled: bool) -> None:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    remote = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags))

    def under_remote(tracer: Tracer) -> None:
        attached = context.attach(trace.set_span_in_context(remote))
        try:
            span = tracer.start_call("gpt-4o", "openai")
            assert span.get_span_context().trace_id == 0xABC
            assert span.is_recording() == sampled
            tracer.end_call(_record(), span)
        finally:
            context.detach(attached)

    spans = _same(under_remote)
    assert len(spans) == (1 if sampled else 0)


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_ratio_samplers_decide_as_in_the_sdk(ratio: float) -> None:
    fast, fast_mem, sdk, sdk_mem = _pair(sample_ratio=ratio)
    for _ in range(300):
        for tracer in (fast, sdk):
            tracer.end_call(_record(), tracer.start_call("gpt-4o", "openai"))
    n_fast, n_sdk = len(fast_mem.spans()), len(sdk_mem.spans())
    if ratio == 0:
        assert n_fast == n_sdk == 0
    else:
        assert 90 < n_fast < 210 and 90 < n_sdk < 210


def test_a_record_with_more_attributes_than_the_limit_is_bounded_as_in_the_sdk() -> None:
    tags = {f"t{i:03d}": "v" for i in range(140)}
    spans = _same(lambda t: t.end_call(_record(tags=tags), t.start_call("gpt-4o", "openai")))
    assert spans[0].dropped_attributes > 0


def test_an_ended_call_span_ignores_changes_and_ends_once() -> None:
    mem = InMemoryExporter()
    tracer = Tracer(service_name="svc", exporter=mem)
    span = tracer.start_call("gpt-4o", "openai")
    tracer.end_call(_record(), span)
    span.set_attribute("late", 1)
    span.end()
    (only,) = mem.spans()
    assert only.attributes is not None and "late" not in only.attributes


def test_limited_attribute_lengths_use_the_sdk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8")
    tracer = Tracer(service_name="svc", exporter=InMemoryExporter())
    assert tracer._calls is None  # values must be truncated by the SDK
