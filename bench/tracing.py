"""Per-call cost of tracing an AiClient call, next to a bare OpenTelemetry span.

Run it with the dev interpreter (``.venv/bin/python bench/tracing.py``; ``--quick``
is a short run; ``bench/run`` runs it after the sink benchmark).

What is timed, per call, in one process and one run (rounds in rotating order,
garbage collector off during each pass, medians over rounds; see ``_timing.py``):

1. ``otel span``: a bare OpenTelemetry SDK span with no attributes
   (``tracer.start_span("x").end()``) on a TracerProvider with the SDK's
   ``BatchSpanProcessor`` exporting to an in-memory exporter.
2. ``record span``: what the Tracer adds to one LLM call's bookkeeping,
   ``Scope.begin()`` + ``Scope.emit()`` with the Tracer minus the same without it:
   the call span started at begin and ended at emit with all its GenAI attributes
   (about twenty), queued to aiscope's bounded batch processor.
3. ``AiClient call``: what the Tracer adds to a whole ``AiClient`` chat call
   (``execute_sync()`` on an in-process ``httpx2.MockTransport`` answering with the
   bytes MockProvider sends): the call span, the stage spans under it, the
   ``traceparent`` header; traced minus untraced client, paired by round.

The exporter is aiscope's ``InMemoryExporter`` behind the batch processor (its
export runs on the background thread; ``--exporter otlp`` exports over OTLP/HTTP
to a loopback receiver instead). Overheads are medians of per-round differences.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import aiscope
from _timing import Contender, paired_differences, quartiles, time_rounds
from aiscope import AiClient, CallRecord, InMemoryExporter, Scope, Tracer, Usage
from aiscope.testing import MockProvider, OtlpReceiver


def _canned_transport() -> httpx2.MockTransport:
    """A transport answering every request with the chat completion MockProvider sends."""
    with MockProvider() as mock:
        r = httpx2.post(
            mock.base_url("openai") + "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]},
            headers={"authorization": "Bearer sk-bench"},
        )
        body, headers = r.content, {k: v for k, v in r.headers.items() if k != "content-length"}

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers=headers)

    return httpx2.MockTransport(answer)


def _passes(n: int, fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--exporter", choices=("memory", "otlp"), default="memory")
    args = parser.parse_args()
    rounds = args.rounds or (7 if args.quick else 25)
    n_span, n_record, n_call = (2000, 1000, 200) if args.quick else (5000, 2000, 500)

    receiver = OtlpReceiver().start() if args.exporter == "otlp" else None

    def exporter() -> object:
        if receiver is not None:
            return aiscope.tracing.otlp_exporter(receiver.endpoint)
        return InMemoryExporter(max_spans=4096)

    # 1. bare OpenTelemetry span, SDK batch processor
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter()))  # type: ignore[arg-type]
    otel = provider.get_tracer("bench")

    def bare_span() -> None:
        otel.start_span("x").end()

    # 2. the LLM call span from Scope.begin/emit
    tracer = Tracer(service_name="bench", exporter=exporter(), batch=True)  # type: ignore[arg-type]
    traced_scope, plain_scope = Scope(tracer=tracer), Scope()

    def record(scope: Scope) -> Callable[[], None]:
        def call() -> None:
            pending = scope.begin("gpt-4o", "openai", 12, 256)
            scope.emit(
                CallRecord(
                    model="gpt-4o",
                    provider="openai",
                    response_model="gpt-4o-2024-08-06",
                    upstream_request_id="chatcmpl-1",
                    latency_s=0.4,
                    usage=Usage(120, 40, 100, 0, 10),
                    finish_reasons=("stop",),
                    tags={"feature": "search", "team": "growth"},
                    server_address="api.openai.com",
                    server_port=443,
                ),
                pending,
            )

        return call

    # 3. a whole AiClient call, traced and not
    transport = _canned_transport()

    def client(traced: bool) -> AiClient:
        b = AiClient.builder().model("openai/gpt-4o").api_key("sk-bench").transport(transport)
        b = b.base_url("https://api.openai.com/v1")
        return (b.tracer(tracer) if traced else b).build()

    c_traced, c_plain = client(True), client(False)

    def chat(c: AiClient) -> Callable[[], None]:
        return lambda: c.chat().system("be brief").user("Hello").execute_sync()

    groups = [
        [Contender("span", "bare OTel span", _passes(n_span, bare_span), n_span)],
        [
            Contender("rec_t", "begin+emit, traced", _passes(n_record, record(traced_scope)),
                      n_record),
            Contender("rec_p", "begin+emit, no tracer", _passes(n_record, record(plain_scope)),
                      n_record),
        ],
        [
            Contender("cli_t", "AiClient call, traced", _passes(n_call, chat(c_traced)), n_call),
            Contender("cli_p", "AiClient call, no tracer", _passes(n_call, chat(c_plain)), n_call),
        ],
    ]  # fmt: skip
    per = time_rounds(groups, rounds)
    med = {k: statistics.median(v) for k, v in per.items()}
    rec_add = paired_differences(per["rec_t"], per["rec_p"])
    cli_add = paired_differences(per["cli_t"], per["cli_p"])
    span = med["span"]

    def us(x: float) -> str:
        return f"{x * 1e6:8.1f} µs"

    print(f"tracing benchmark: {rounds} rounds, exporter={args.exporter}, "
          f"Python {platform.python_version()}, {platform.machine()}")  # fmt: skip
    print(f"{'':44}{'median':>11}  {'IQR':>21}  {'x bare span':>11}")
    rows = [
        ("bare OpenTelemetry span, no attributes", per["span"]),
        ("tracing added to one LLM record (begin+emit)", rec_add),
        ("tracing added to one AiClient call", cli_add),
    ]
    for label, values in rows:
        lo, hi = quartiles(values)
        m = statistics.median(values)
        print(f"{label:44}{us(m)}  {us(lo)} – {us(hi)}  {m / span:10.1f}x")
    print(f"{'(AiClient call without tracer)':44}{us(med['cli_p'])}")
    print(f"{'(begin+emit without tracer)':44}{us(med['rec_p'])}")
    print(f"spans queued/dropped by the Tracer: {tracer.dropped_spans} dropped")
    tracer.shutdown(timeout=2)
    provider.shutdown()
    if receiver is not None:
        receiver.stop()


if __name__ == "__main__":
    main()
