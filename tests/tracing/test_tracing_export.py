"""Exports over real sockets: OTLP/HTTP and OTLP/gRPC to loopback receivers (decoded
with opentelemetry-proto), Langfuse's endpoint and auth, and the bounded processor."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope import LangfuseExporter, Scope, Tracer, llm_call, use_scope
from aiscope.testing import OtlpReceiver, ReceivedSpan, decode_spans
from aiscope.tracing import BoundedBatchProcessor
from aiscope.tracing import attributes as A


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def _traced_work(tracer: Tracer) -> None:
    with (
        use_scope(Scope(tracer=tracer)),
        tracer.span("handler") as span,
        llm_call("gpt-4o", provider="openai", feature="search", user="u-7") as call,
    ):
        span.set_attribute("input_length", 12)
        call.set_usage(input_tokens=120, output_tokens=30, cache_read_tokens=100)
        call.set_response(
            model="gpt-4o-2024-08-06", finish_reasons=["stop"], response_id="chatcmpl-9"
        )


def _check(spans: Sequence[ReceivedSpan]) -> None:
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"handler", "chat gpt-4o"}
    call, handler = by_name["chat gpt-4o"], by_name["handler"]
    assert call.parent_span_id == handler.span_id and call.trace_id == handler.trace_id
    assert call.kind == 3  # SPAN_KIND_CLIENT
    assert call.resource["service.name"] == "export-test"
    a = call.attributes
    assert a[A.OPERATION_NAME] == "chat" and a[A.PROVIDER_NAME] == "openai"
    assert a[A.REQUEST_MODEL] == "gpt-4o" and a[A.RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert a[A.RESPONSE_ID] == "chatcmpl-9" and a[A.RESPONSE_FINISH_REASONS] == ["stop"]
    assert a[A.USAGE_INPUT_TOKENS] == 120 and a[A.USAGE_OUTPUT_TOKENS] == 30
    assert a[A.USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert a["aiscope.tag.feature"] == "search" and a[A.COST_USD] > 0
    assert handler.attributes["input_length"] == 12


def test_otlp_http_export(receiver: OtlpReceiver) -> None:
    tracer = Tracer(service_name="export-test", endpoint=receiver.endpoint, schedule_delay_s=0.05)
    _traced_work(tracer)
    assert tracer.flush(timeout=5)
    _check(receiver.spans())
    assert {e.path for e in receiver.exports()} == {"/v1/traces"}
    tracer.shutdown(timeout=2)


def test_otlp_http_port_4318_style_url_gets_the_traces_path(receiver: OtlpReceiver) -> None:
    tracer = Tracer(
        service_name="export-test", endpoint=receiver.url, protocol="http", headers={"x-t": "1"}
    )
    _traced_work(tracer)
    tracer.shutdown(timeout=5)
    _check(receiver.spans())
    assert all(e.headers["x-t"] == "1" for e in receiver.exports())


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.metadata: list[dict[str, str]] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.bodies.append(request.SerializeToString())
        self.metadata.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
        return trace_service_pb2.ExportTraceServiceResponse()


def test_otlp_grpc_export() -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        tracer = Tracer(
            service_name="export-test", endpoint=f"grpc://127.0.0.1:{port}", headers={"x-t": "2"}
        )
        _traced_work(tracer)
        assert tracer.flush(timeout=10)
        tracer.shutdown(timeout=2)
    finally:
        server.stop(None)
    _check([s for b in collector.bodies for s in decode_spans(b)])
    assert collector.metadata[0]["x-t"] == "2"


def test_langfuse_exporter_sends_generations_with_basic_auth(receiver: OtlpReceiver) -> None:
    exporter = LangfuseExporter(public_key="pk-lf-123", secret_key="sk-lf-456", host=receiver.url)
    assert "sk-lf-456" not in repr(exporter)
    tracer = Tracer(service_name="export-test", exporter=exporter)
    _traced_work(tracer)
    tracer.shutdown(timeout=5)
    (export,) = receiver.exports()
    assert export.path == "/api/public/otel/v1/traces"
    assert (
        export.headers["authorization"]
        == "Basic " + base64.b64encode(b"pk-lf-123:sk-lf-456").decode()
    )
    by_name = {s.name: s for s in receiver.spans()}
    gen = by_name["chat gpt-4o"].attributes
    assert gen["langfuse.observation.type"] == "generation"
    assert gen["langfuse.observation.model.name"] == "gpt-4o-2024-08-06"
    assert gen["gen_ai.usage.cost"] == gen[A.COST_USD] > 0
    assert json.loads(gen["langfuse.observation.cost_details"]) == {"total": gen[A.COST_USD]}
    usage = json.loads(gen["langfuse.observation.usage_details"])
    assert usage == {"input": 120, "output": 30, "input_cached_tokens": 100, "total": 150}
    assert gen["user.id"] == "u-7"
    assert "langfuse.observation.type" not in by_name["handler"].attributes


def test_flush_returns_false_and_counts_the_spans_when_langfuse_answers_500() -> None:
    with OtlpReceiver(status=500) as down:
        exporter = LangfuseExporter(public_key="pk-lf-1", secret_key="sk-lf-2", host=down.url)
        tracer = Tracer(service_name="export-test", exporter=exporter, schedule_delay_s=60)
        _traced_work(tracer)  # two spans: the handler and the call
        assert tracer.flush(timeout=5) is False  # the spans were lost, not delivered
        assert down.refused == 1 and down.spans() == []
        assert (exporter.exported, exporter.failed) == (0, 2)
        assert tracer.failed_spans == 2
        assert exporter.force_flush() is False  # the exporter itself says so too
        # The next flush with nothing lost since is True again; so is a delivered one.
        assert tracer.flush(timeout=5) is True and exporter.force_flush() is True
        down.status = 200
        _traced_work(tracer)
        assert tracer.flush(timeout=5) is True
        assert len(down.spans()) == 2 and (exporter.exported, exporter.failed) == (2, 2)
        # A failure in a background export (before flush was called) is reported too.
        down.status = 500
        fast = Tracer(service_name="export-test", exporter=exporter, schedule_delay_s=0.01)
        _traced_work(fast)
        deadline = time.monotonic() + 5
        while exporter.failed < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fast.flush(timeout=5) is False and fast.failed_spans == 2
        tracer.shutdown(timeout=2)
        fast.shutdown(timeout=2)


def test_flush_without_batching_reports_a_failed_export_too() -> None:
    with OtlpReceiver(status=500) as down:
        exporter = LangfuseExporter(public_key="pk-lf-1", secret_key="sk-lf-2", host=down.url)
        tracer = Tracer(service_name="export-test", exporter=exporter, batch=False)
        _traced_work(tracer)  # exported on the calling thread, at each span's end
        assert down.refused == 2
        assert tracer.flush(timeout=1) is False and tracer.failed_spans == 2
        assert tracer.flush(timeout=1) is True  # nothing lost since
        tracer.shutdown(timeout=1)


def test_flush_shares_one_deadline_across_exporters() -> None:
    # Three exporters stuck for 30 s: flush(timeout=0.4) returns in about 0.4 s, not 1.2 s.
    stuck = [_SlowExporter(delay=30) for _ in range(3)]
    tracer = Tracer(exporter=stuck, batch=True, schedule_delay_s=0.01)
    with tracer.span("s"):
        pass
    time.sleep(0.1)  # every worker is now inside export()
    t0 = time.monotonic()
    assert tracer.flush(timeout=0.4) is False
    assert time.monotonic() - t0 < 0.8
    for e in stuck:
        e.release.set()
    tracer.shutdown(timeout=1)


def test_langfuse_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-env")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-env")
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:1")
    exporter = LangfuseExporter()
    assert exporter.endpoint == "http://127.0.0.1:1/api/public/otel/v1/traces"
    exporter.shutdown()


class _SlowExporter(SpanExporter):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(self.delay)
        self.batches.append(len(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.wait(self.delay)


def test_full_queue_drops_and_counts() -> None:
    slow = _SlowExporter(delay=30)
    tracer = Tracer(
        exporter=slow, batch=True, max_queue_size=100, max_export_batch_size=10,
        schedule_delay_s=0.01,
    )  # fmt: skip
    for _ in range(1000):
        with tracer.span("s"):
            pass
    (proc,) = tracer.processors
    assert isinstance(proc, BoundedBatchProcessor)
    assert proc.queued <= 100
    # One batch of 10 may be in the exporter's hands; the rest beyond the queue is dropped.
    assert 1000 - 100 - 10 <= tracer.dropped_spans <= 1000 - 100
    t0 = time.monotonic()
    assert tracer.flush(timeout=0.3) is False
    assert time.monotonic() - t0 < 0.6
    t0 = time.monotonic()
    tracer.shutdown(timeout=0.5)
    assert time.monotonic() - t0 < 1.0
    slow.release.set()


def test_flush_exports_everything_queued() -> None:
    slow = _SlowExporter(delay=0)
    tracer = Tracer(exporter=slow, batch=True, schedule_delay_s=60)
    for _ in range(1200):
        with tracer.span("s"):
            pass
    assert tracer.flush(timeout=5)
    assert sum(slow.batches) == 1200 and max(slow.batches) <= 512
    assert tracer.dropped_spans == 0
    tracer.shutdown(timeout=1)
    with tracer.span("after shutdown"):
        pass
    assert tracer.dropped_spans == 1


def test_exporter_exceptions_never_reach_the_caller() -> None:
    class Broken(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise RuntimeError("collector exploded")

        def shutdown(self) -> None:
            raise RuntimeError("and again")

    tracer = Tracer(exporter=Broken(), batch=True, schedule_delay_s=0.01)
    with tracer.span("s"):
        pass
    assert tracer.flush(timeout=2) is False  # the span was lost: flush says so
    (proc,) = tracer.processors
    assert isinstance(proc, BoundedBatchProcessor) and proc.failed == 1
    assert tracer.failed_spans == 1
    tracer.shutdown(timeout=1)


def test_processor_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_queue_size"):
        BoundedBatchProcessor(_SlowExporter(0), max_queue_size=0)
    with pytest.raises(ValueError, match="max_export_batch_size"):
        BoundedBatchProcessor(_SlowExporter(0), max_queue_size=5, max_export_batch_size=10)
