"""The standard OpenTelemetry environment variables configure a Tracer: service and
resource, the batch processor (OTEL_BSP_*) and the OTLP exporter (OTEL_EXPORTER_OTLP_*).
An argument always wins, then the variable, then aiscope's default. Checked on what
real loopback collectors (OTLP/HTTP and OTLP/gRPC) receive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope import Tracer
from aiscope.testing import Blackhole, OtlpReceiver, decode_spans
from aiscope.tracing import BoundedBatchProcessor


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def _one_span(tracer: Tracer, name: str = "work") -> None:
    with tracer.span(name):
        pass
    assert tracer.flush(timeout=5)
    tracer.shutdown(timeout=2)


def test_otel_service_name_and_resource_attributes_apply_when_no_argument_is_given(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment=prod"
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    tracer = Tracer(endpoint=receiver.endpoint)
    assert tracer.service_name == "checkout"
    _one_span(tracer)
    (span,) = receiver.spans()
    assert span.resource["service.name"] == "checkout"
    assert span.resource["deployment.environment"] == "prod"

    # arguments win over the variables
    tracer = Tracer(
        "explicit",
        endpoint=receiver.endpoint,
        resource_attributes={"deployment.environment": "dev"},
    )
    _one_span(tracer, "second")
    (span,) = [s for s in receiver.spans() if s.name == "second"]
    assert span.resource["service.name"] == "explicit"
    assert span.resource["deployment.environment"] == "dev"


def test_service_name_from_resource_attributes_and_the_default_without_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=billing")
    assert Tracer().service_name == "billing"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert Tracer().service_name == "aiscope"


def test_otlp_endpoint_and_headers_come_from_the_environment_without_arguments(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # a base URL
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=search,authorization=Bearer%20tok")
    _one_span(Tracer(service_name="env"))
    (export,) = receiver.exports()
    assert export.path == "/v1/traces"
    assert export.headers["x-team"] == "search" and export.headers["authorization"] == "Bearer tok"

    # the signal-specific variables win, and their URL is used as it is
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/custom/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=billing")
    _one_span(Tracer(service_name="env"))
    export = receiver.exports()[-1]
    assert export.path == "/custom/traces" and export.headers["x-team"] == "billing"
    assert "authorization" not in export.headers

    # an argument wins, header by header
    _one_span(Tracer(service_name="env", endpoint=receiver.endpoint, headers={"X-Team": "arg"}))
    export = receiver.exports()[-1]
    assert export.path == "/v1/traces" and export.headers["x-team"] == "arg"


def test_an_explicit_exporter_or_otel_traces_exporter_none_keeps_the_env_endpoint_out(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert Tracer().processors == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    assert len(Tracer().processors) == 1
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer = Tracer(exporter=Keep())
    assert [type(p.exporter) for p in tracer.processors] == [Keep]  # type: ignore[attr-defined]
    # the application's provider is what the variables configure: no second exporter
    assert Tracer(use_global_provider=True).processors == []


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.bodies.append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()


def test_otlp_protocol_variable_picks_grpc_on_any_port(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        _one_span(Tracer(service_name="grpc-env"))
    finally:
        server.stop(None)
    spans = [s for b in collector.bodies for s in decode_spans(b)]
    assert [s.resource["service.name"] for s in spans] == ["grpc-env"]


def test_otlp_protocol_argument_wins_over_the_variable(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    _one_span(Tracer(service_name="p", endpoint=receiver.url, protocol="http"))
    assert [e.path for e in receiver.exports()] == ["/v1/traces"]


class _Batches(SpanExporter):
    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.times: list[float] = []
        self.delay = delay
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(self.delay)
        self.sizes.append(len(spans))
        self.times.append(time.monotonic())
        return SpanExportResult.SUCCESS


def test_otel_bsp_variables_size_and_pace_the_batch_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "30000")  # ms: no timed export in this test
    exporter = _Batches()
    tracer = Tracer(exporter=exporter, batch=True)
    (proc,) = tracer.processors
    assert isinstance(proc, BoundedBatchProcessor)
    assert (proc.max_queue_size, proc.max_export_batch_size, proc.schedule_delay_s) == (
        100,
        10,
        30.0,
    )
    for _ in range(35):
        with tracer.span("s"):
            pass
    assert tracer.flush(timeout=5)
    assert sorted(exporter.sizes, reverse=True) == [10, 10, 10, 5]
    tracer.shutdown(timeout=1)

    # a short delay exports without any flush
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    exporter = _Batches()
    tracer = Tracer(exporter=exporter, batch=True)
    t0 = time.monotonic()
    with tracer.span("s"):
        pass
    while not exporter.sizes and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    assert exporter.sizes == [1] and exporter.times[0] - t0 < 0.5
    tracer.shutdown(timeout=1)

    # a full queue of OTEL_BSP_MAX_QUEUE_SIZE drops and counts
    slow = _Batches(delay=30)
    tracer = Tracer(exporter=slow, batch=True)
    for _ in range(500):
        with tracer.span("s"):
            pass
    assert 500 - 100 - 10 <= tracer.dropped_spans <= 500 - 100
    tracer.shutdown(timeout=0.2)
    slow.release.set()

    # arguments win
    tracer = Tracer(
        exporter=_Batches(), batch=True, max_queue_size=50, max_export_batch_size=5,
        schedule_delay_s=0.5,
    )  # fmt: skip
    (proc,) = tracer.processors
    assert isinstance(proc, BoundedBatchProcessor)
    assert (proc.max_queue_size, proc.max_export_batch_size, proc.schedule_delay_s) == (
        50,
        5,
        0.5,
    )
    tracer.shutdown(timeout=1)


@pytest.mark.parametrize(
    "name,value",
    [("OTEL_EXPORTER_OTLP_TIMEOUT", "0.3"), ("OTEL_BSP_EXPORT_TIMEOUT", "300")],
)
def test_export_timeout_variables_bound_a_stuck_collector(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with Blackhole() as hole:
        tracer = Tracer(service_name="t", endpoint=f"http://127.0.0.1:{hole.port}/v1/traces")
        with tracer.span("s"):
            pass
        t0 = time.monotonic()
        # with the default 10 s timeout the export would still be waiting at 4 s
        tracer.flush(timeout=4)  # (True or False, as flush reports a lost batch)
        assert time.monotonic() - t0 < 3
        (proc,) = tracer.processors
        assert isinstance(proc, BoundedBatchProcessor) and proc.failed == 1
        tracer.shutdown(timeout=1)


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots", "OTEL_BSP_MAX_QUEUE_SIZE must be an int >= 1"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE .4096. cannot"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-5", "OTEL_BSP_SCHEDULE_DELAY must be a number of millis"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "OTEL_EXPORTER_OTLP_TIMEOUT must be a number of"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
    ],
)
def test_an_unusable_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Tracer(endpoint="http://127.0.0.1:1/v1/traces", batch=True)


def _sampled(tracer: Tracer, n: int = 200) -> int:
    from aiscope import InMemoryExporter

    (proc,) = tracer.processors
    mem = proc.exporter  # type: ignore[attr-defined]
    assert isinstance(mem, InMemoryExporter)
    for _ in range(n):
        with tracer.span("root"):
            pass
    return len(mem.spans())


def test_otel_traces_sampler_picks_the_sampler_when_no_sample_ratio_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiscope import InMemoryExporter

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert _sampled(Tracer(exporter=InMemoryExporter())) == 0
    assert _sampled(Tracer(exporter=InMemoryExporter(), sample_ratio=1.0)) == 200  # arg wins

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    tracer = Tracer(exporter=InMemoryExporter())
    provider = tracer._own_provider
    assert provider is not None
    assert provider.sampler.get_description() == "TraceIdRatioBased{0.25}"  # not parent-based
    assert 20 <= _sampled(tracer, 400) <= 180

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    tracer = Tracer(exporter=InMemoryExporter())
    assert _sampled(tracer) == 0
    parent = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(parent))
    try:
        assert _sampled(tracer, 3) == 3  # a sampled parent's children follow it
    finally:
        context.detach(token)


@pytest.mark.parametrize(
    "sampler,arg,message",
    [
        ("jaeger_remote", None, "OTEL_TRACES_SAMPLER='jaeger_remote' is not supported"),
        ("traceidratio", "2", "OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1"),
        ("traceidratio", "half", "OTEL_TRACES_SAMPLER_ARG must be a ratio"),
    ],
)
def test_an_unusable_sampler_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, sampler: str, arg: str | None, message: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    with pytest.raises(ValueError, match=message):
        Tracer()
