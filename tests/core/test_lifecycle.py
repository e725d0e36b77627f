"""One call lifecycle for every capture path (issue 13, items 1 and 2): the same
assertions over AiClient, the instrumented openai SDK and the manual API."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import openai
import pytest

import aiscope
from aiscope import (
    CallRecord,
    FeedbackCollector,
    InMemoryExporter,
    MetricsCollector,
    PendingCall,
    SinkBase,
    Tracer,
    configure_logging,
)
from aiscope.client import AiClient
from aiscope.scope import Scope, use_scope
from aiscope.sink import CIRCUIT_WATCH, RETRY, STAGE_START
from aiscope.testing import MockProvider
from aiscope.tracing import attributes as A
from tests.support.sdk_support import Records

PATHS = ["client", "sdk", "manual"]
SYSTEM = "Be brief."
PROMPT = "My password is hunter2, say hello."
REPLY = "Hello! I will not repeat hunter2."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]


def _redact(text: str) -> str:
    return text.replace("hunter2", "[redacted]")


@contextmanager
def _instrumented() -> Iterator[None]:
    aiscope.instrument()
    try:
        yield
    finally:
        aiscope.uninstrument()


def _call(path: str, mock: MockProvider) -> CallRecord | None:
    """One chat call through ``path``, into the current scope; the manual path returns its
    record (the others' come from a sink)."""
    if path == "client":
        client = (
            AiClient.builder().model("openai/gpt-4o").api_key("k")
            .base_url(mock.base_url("openai")).build()
        )  # fmt: skip
        client.chat().system(SYSTEM).user(PROMPT).execute_sync()
        client.close()
        return None
    if path == "sdk":
        with _instrumented():
            sdk = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
            sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        return None
    with aiscope.llm_call("gpt-4o", provider="openai", messages=MESSAGES) as call:
        call.set_usage(input_tokens=20, output_tokens=9)
        call.set_output(REPLY, "stop")
    return call.record


@pytest.fixture
def provider(mock: MockProvider) -> MockProvider:
    mock.reset()
    mock.behave(reply_text=REPLY)
    return mock


@pytest.mark.parametrize("path", PATHS)
def test_every_capture_path_records_redacted_content_and_one_log_line_with_its_trace_id(
    path: str, provider: MockProvider
) -> None:
    spans = InMemoryExporter()
    tracer = Tracer(service_name="t", exporter=spans, capture_content=True, redact=_redact)
    records = Records()
    out = io.StringIO()
    handler = configure_logging("INFO", stream=out)
    try:
        with use_scope(Scope(tracer=tracer, sinks=[records])):
            _call(path, provider)
    finally:
        logging.getLogger("aiscope").removeHandler(handler)
    record = records.one
    (span,) = [s for s in spans.spans() if s.name == "chat gpt-4o"]
    attrs = span.attributes
    assert attrs is not None
    assert json.loads(str(attrs[A.SYSTEM_INSTRUCTIONS])) == [{"type": "text", "content": SYSTEM}]
    assert json.loads(str(attrs[A.INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": _redact(PROMPT)}]}
    ]
    (answer,) = json.loads(str(attrs[A.OUTPUT_MESSAGES]))
    assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
    assert answer["parts"] == [{"type": "text", "content": _redact(REPLY)}]
    assert "hunter2" not in json.dumps(dict(attrs))
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    (summary,) = [x for x in lines if x["logger"] == "aiscope.calls"]
    assert summary["trace_id"] == record.trace_id == format(span.context.trace_id, "032x")
    assert summary["span_id"] == record.span_id == format(span.context.span_id, "016x")
    assert "openai/gpt-4o status=ok" in summary["message"]


def test_content_is_not_captured_by_default(provider: MockProvider) -> None:
    spans = InMemoryExporter()
    tracer = Tracer(service_name="t", exporter=spans, redact=_redact)
    with use_scope(Scope(tracer=tracer)):
        for path in PATHS:
            _call(path, provider)
    calls = [s for s in spans.spans() if s.name == "chat gpt-4o"]
    assert len(calls) == 3
    for span in calls:
        assert span.attributes is not None
        assert not {A.INPUT_MESSAGES, A.OUTPUT_MESSAGES, A.SYSTEM_INSTRUCTIONS} & set(
            span.attributes
        )


def test_captured_content_is_cut_to_the_tracers_limit(provider: MockProvider) -> None:
    spans = InMemoryExporter()
    tracer = Tracer(exporter=spans, capture_content=True, max_content_length=5)
    with use_scope(Scope(tracer=tracer)):
        _call("sdk", provider)
    (span,) = [s for s in spans.spans() if s.name == "chat gpt-4o"]
    assert span.attributes is not None
    (answer,) = json.loads(str(span.attributes[A.OUTPUT_MESSAGES]))
    assert answer["parts"] == [{"type": "text", "content": REPLY[:5] + "…"}]


class Ids:
    """A sink noting the ids a record has when the sink sees it (a later sink may add
    them to the same object)."""

    def __init__(self) -> None:
        self.ids: list[tuple[str | None, str | None]] = []

    def on_record(self, record: CallRecord) -> None:
        self.ids.append((record.trace_id, record.span_id))


@pytest.mark.parametrize("path", [*PATHS, "record_call"])
@pytest.mark.parametrize("position", ["before", "after"])
def test_a_sink_before_or_after_the_tracer_sees_the_calls_trace_and_span_ids(
    path: str, position: str, provider: MockProvider
) -> None:
    spans = InMemoryExporter()
    tracer = Tracer(service_name="t", exporter=spans)
    seen = Ids()
    sinks: list[Any] = [seen, tracer] if position == "before" else [tracer, seen]
    with use_scope(Scope(sinks=sinks)):
        if path == "record_call":
            aiscope.record_call("gpt-4o", "openai", input_tokens=3, output_tokens=4)
        else:
            _call(path, provider)
    (span,) = [s for s in spans.spans() if s.name == "chat gpt-4o"]
    assert seen.ids == [
        (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))
    ]


class Lifecycle(SinkBase):
    """Every hook of the sink contract, as the Scope calls it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.scope: Scope | None = None

    def attach(self, scope: Scope) -> None:
        self.scope = scope

    def on_start(self, call: PendingCall) -> None:
        self.seen.append(f"start {call.model}")

    def on_event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        self.seen.append(event)

    def on_end(self, record: CallRecord, call: PendingCall | None) -> None:
        self.seen.append(f"end {record.status}")

    def on_abandon(self, call: PendingCall) -> None:
        self.seen.append("abandon")


def test_the_scope_drives_every_sink_hook_for_the_client(provider: MockProvider) -> None:
    sink = Lifecycle()
    scope = Scope(sinks=[sink])
    assert sink.scope is scope
    provider.fail_next(500, times=1)
    with use_scope(scope):
        _call("client", provider)
    # the client reports its circuit breaker when it is built, then the call
    assert sink.seen[:2] == [CIRCUIT_WATCH, "start gpt-4o"] and sink.seen[-1] == "end ok"
    assert sink.seen.count(RETRY) == 1 and sink.seen.count(STAGE_START) >= 4
    sink.seen.clear()
    poor = scope.with_sinks(cost_tracker=aiscope.CostTracker(budget_usd=1e-9))
    with pytest.raises(aiscope.BudgetExceededError), use_scope(poor):
        _call("client", provider)
    assert sink.seen == [CIRCUIT_WATCH]  # refused before it started: no sink saw the call
    sink.seen.clear()
    call = scope.begin("gpt-4o", "openai")
    call.abandon()
    assert sink.seen == ["start gpt-4o", "abandon"]


@pytest.mark.parametrize("path", ["client", "sdk"])
def test_feedback_built_without_metrics_feeds_the_scopes_quality_scores(
    path: str, provider: MockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = MetricsCollector()
    fb = FeedbackCollector()
    calls = Records()
    # configure() replaces the process-wide scope: the test's own is put back after
    monkeypatch.setattr("aiscope.scope._default_scope", aiscope.current_scope())
    aiscope.configure(metrics=m, feedback=fb, sinks=[calls])
    _call(path, provider)
    fb.record(request_id=calls.one.stats().request_id, rating=5)
    text = m.export_prometheus()
    assert 'ai_lib_quality_score_count{feature="",model="gpt-4o",source="human"} 1.0' in text


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_calls_capture_content_too(stream: bool, provider: MockProvider) -> None:
    import anthropic

    spans = InMemoryExporter()
    tracer = Tracer(exporter=spans, capture_content=True, redact=_redact)
    claude = anthropic.Anthropic(
        base_url=provider.base_url("anthropic"), api_key="sk-ant-test", max_retries=0
    )
    with use_scope(Scope(tracer=tracer)), _instrumented():
        request: dict[str, Any] = {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        if stream:
            with claude.messages.stream(**request) as s:
                s.get_final_text()
        else:
            claude.messages.create(**request)
    (span,) = [s for s in spans.spans() if s.name == "chat claude-haiku-4-5"]
    attrs = span.attributes
    assert attrs is not None
    assert json.loads(str(attrs[A.SYSTEM_INSTRUCTIONS])) == [{"type": "text", "content": SYSTEM}]
    assert json.loads(str(attrs[A.INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": _redact(PROMPT)}]}
    ]
    (answer,) = json.loads(str(attrs[A.OUTPUT_MESSAGES]))
    assert answer["parts"] == [{"type": "text", "content": _redact(REPLY)}]
