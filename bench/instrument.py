"""Per-call overhead of instrumenting the same ``openai`` SDK call: aiscope next to its peers.

    .venv/bin/python bench/instrument.py            # full run
    .venv/bin/python bench/instrument.py --quick    # short run
    .venv/bin/python bench/instrument.py --instructions 200   # instructions per call (valgrind)
    bash bench/setup_peers.sh                       # the peers' virtualenvs (once)

Every contender makes the same call — ``client.chat.completions.create(model=
"gpt-4o", messages=[system, user])`` with openai 3.x — against an in-process
endpoint: an ``httpx2.MockTransport`` answering a fixed Chat Completions body
(usage with ``prompt_tokens_details``/``completion_tokens_details``, as OpenAI
sends it). Each contender runs in a worker process with its own interpreter
(aiscope in the dev venv; each peer in ``.venv-peers/NAME``, since their pins
conflict), which alternates, round after round, passes with the SDK's own
``Completions.create`` and passes with the instrumented one (every contender
patches that class attribute; the worker swaps it), garbage collector off during
each pass. Overhead = the median over rounds of (instrumented − bare) per call,
both measured in the same round of the same process.

Contenders, each exporting to an in-memory or no-op sink:

- aiscope: ``aiscope.instrument()`` with a MetricsCollector (Prometheus) and a
  CostTracker with a budget in ``block`` mode (price lookup, reservation, charge),
  plus the scope's tracer when this aiscope has one (``aiscope.Tracer``).
- otel_v2: ``opentelemetry-instrumentation-openai-v2`` (the official one), SDK
  TracerProvider + InMemorySpanExporter (SimpleSpanProcessor), MeterProvider +
  InMemoryMetricReader.
- openllmetry: ``opentelemetry-instrumentation-openai`` (Traceloop), same sinks.
- openlit: ``openlit.init`` reusing global providers set first with the same
  in-memory sinks, and a local pricing file (no download at init).
- langfuse: ``from langfuse.openai import openai``; its OTel exporter replaced by an
  in-memory one (nothing sent anywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT / ".venv-peers"))

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the benchmark."},
]
BODY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, benchmark.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 21,
        "completion_tokens": 5,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "system_fingerprint": "fp_bench",
}

#: CPU time of the whole process (background exporter threads included): on a shared
#: machine, wall-clock time mostly measures the neighbours' load.
CLOCK = time.process_time

CONTENDERS = {
    "aiscope": "aiscope (metrics + span + cost + budget)",
    "otel_v2": "opentelemetry-instrumentation-openai-v2",
    "openllmetry": "OpenLLMetry (opentelemetry-instrumentation-openai)",
    "openlit": "openlit",
    "langfuse": "langfuse.openai",
}


# ----------------------------------------------------------------------------- worker
def _client() -> Any:
    import httpx2
    import openai

    body = json.dumps(BODY).encode()
    headers = {"content-type": "application/json", "x-request-id": "req_bench"}

    def answer(request: Any) -> Any:
        return httpx2.Response(200, headers=headers, content=body)

    return openai.OpenAI(
        base_url="http://bench.local/v1",
        api_key="sk-bench",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )


def _otel_sinks() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, exporter


def _setup(kind: str) -> tuple[Any, Any]:
    """Instrument the SDK as ``kind`` does; returns (a function clearing the sink between
    passes, a function checking that the last call was observed)."""
    if kind == "aiscope":
        import aiscope

        metrics = aiscope.MetricsCollector()
        tracker = aiscope.CostTracker(budget_usd=1e12, mode="block")
        # spans to an in-memory exporter, as the peers' (the tracer's own batch
        # processor exports on a background thread, whose CPU time counts too)
        spans = aiscope.InMemoryExporter()
        tracer = aiscope.Tracer(service_name="bench", exporter=spans)
        aiscope.configure(metrics=metrics, cost_tracker=tracker, tracer=tracer)
        aiscope.instrument()
        calls = [0]

        def seen() -> bool:
            n = tracker.get_report().call_count
            tracer.flush(timeout=5)
            ok, calls[0] = n > calls[0] and bool(spans.spans()), n
            return ok

        return spans.clear, seen
    if kind in ("otel_v2", "openllmetry"):
        tracer_provider, meter_provider, exporter = _otel_sinks()
        if kind == "otel_v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        else:
            from opentelemetry.instrumentation.openai import (  # type: ignore[no-redef]
                OpenAIInstrumentor,
            )
        OpenAIInstrumentor().instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        return exporter.clear, lambda: bool(exporter.get_finished_spans())
    if kind == "openlit":
        import openlit
        from opentelemetry import metrics, trace

        tracer_provider, meter_provider, exporter = _otel_sinks()
        # openlit reuses providers already set (and then adds no exporter of its own)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        prices = Path(tempfile.mkdtemp()) / "pricing.json"  # no download at init
        prices.write_text(
            json.dumps({"chat": {"gpt-4o": {"promptPrice": 0.0025, "completionPrice": 0.01}}})
        )
        openlit.init(pricing_json=str(prices), disable_batch=True, collect_gpu_stats=False)
        return exporter.clear, lambda: bool(exporter.get_finished_spans())
    if kind == "langfuse":
        os.environ.setdefault("LANGFUSE_PUBLIC_KEY", "pk-lf-bench")
        os.environ.setdefault("LANGFUSE_SECRET_KEY", "sk-lf-bench")
        os.environ.setdefault("LANGFUSE_HOST", "http://127.0.0.1:9")
        from langfuse import Langfuse
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        lf = Langfuse(span_exporter=exporter)  # its batch processor exports here, not to a host
        import langfuse.openai  # noqa: F401 - patches the openai SDK on import

        def flushed() -> bool:
            lf.flush()
            return bool(exporter.get_finished_spans())

        return exporter.clear, flushed
    raise SystemExit(f"unknown contender {kind!r}")


def worker(kind: str, rounds: int, calls: int) -> dict[str, Any]:
    import gc

    from openai.resources.chat.completions import Completions

    client = _client()
    completions = client.chat.completions  # .create looked up per call: it is swapped
    bare_fn = Completions.__dict__["create"]
    clear, seen = _setup(kind)
    inst_fn = Completions.__dict__["create"]
    if inst_fn is bare_fn:
        raise SystemExit(f"{kind}: Completions.create was not patched")

    def one_pass() -> float:
        gc.disable()
        try:
            t0 = CLOCK()
            for _ in range(calls):
                completions.create(model="gpt-4o", messages=MESSAGES)
            return (CLOCK() - t0) / calls
        finally:
            gc.enable()

    # check the instrumented call is really observed (and warm both paths up)
    Completions.create = inst_fn
    completions.create(model="gpt-4o", messages=MESSAGES)
    observed = seen()
    Completions.create = bare_fn
    one_pass()
    Completions.create = inst_fn
    one_pass()
    bare: list[float] = []
    inst: list[float] = []
    for i in range(rounds):
        clear()
        gc.collect()
        order = [(bare_fn, bare), (inst_fn, inst)]
        if i % 2:
            order.reverse()
        for fn, out in order:
            Completions.create = fn
            out.append(one_pass())
    import openai

    return {"bare": bare, "inst": inst, "observed": observed, "openai": openai.__version__}


def count_worker(kind: str, variant: str, calls: int) -> None:
    """Set up ``kind``, warm both paths, then make ``calls`` calls through ``variant``
    ("bare" or "inst") with nothing else: run under valgrind, the instructions of a
    run with 0 calls subtracted give the instructions per call (deterministic)."""
    import gc

    from openai.resources.chat.completions import Completions

    client = _client()
    completions = client.chat.completions
    bare_fn = Completions.__dict__["create"]
    clear, _seen = _setup(kind)
    inst_fn = Completions.__dict__["create"]
    for fn in (inst_fn, bare_fn):
        Completions.create = fn
        for _ in range(30):
            completions.create(model="gpt-4o", messages=MESSAGES)
    clear()
    gc.collect()
    gc.disable()
    Completions.create = inst_fn if variant == "inst" else bare_fn
    for _ in range(calls):
        completions.create(model="gpt-4o", messages=MESSAGES)


def _instructions(py: Path, kind: str, variant: str, calls: int) -> int:
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        str(py),
        str(Path(__file__)),
        "--count-worker",
        kind,
        variant,
        str(calls),
    ]
    # one hash seed for every run: string hashing otherwise varies the count run to run
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    for line in proc.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.rsplit(":", 1)[1].replace(",", "").strip())
    raise RuntimeError(f"{kind}: no instruction count from valgrind: {proc.stderr[-300:]}")


def instructions(kinds: list[str], calls: int) -> int:
    """Instructions per call, bare and instrumented, for each contender (valgrind)."""
    import functools
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind (apt-get install valgrind)")
        return 1
    print(
        f"instructions per call (valgrind cachegrind, {calls} calls minus 0 calls; "
        "deterministic, unlike CPU time)\n"
    )
    print(
        f"{'contender':<52}{'bare':>12}{'instrumented':>14}{'overhead':>12}{'vs leanest peer':>17}"
    )
    rows: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        py = _python_for(kind)
        if py is None:
            print(f"{CONTENDERS[kind]:<52}  skipped: no virtualenv")
            continue
        print(f"  counting {kind} ...", file=sys.stderr, flush=True)
        jobs = [(v, n) for v in ("bare", "inst") for n in (0, calls)]
        with ThreadPoolExecutor(2) as pool:
            counts = pool.map(functools.partial(_instructions, py, kind), *zip(*jobs, strict=True))
            got = dict(zip(jobs, counts, strict=True))
        bare = (got["bare", calls] - got["bare", 0]) / calls
        inst = (got["inst", calls] - got["inst", 0]) / calls
        rows[kind] = (bare, inst)
    peers = {k: i - b for k, (b, i) in rows.items() if k != "aiscope"}
    leanest = min(peers.values()) if peers else None
    for kind, (bare, inst) in rows.items():
        ratio = f"{(inst - bare) / leanest:.2f}x" if leanest else "-"
        print(f"{CONTENDERS[kind]:<52}{bare:>12,.0f}{inst:>14,.0f}{inst - bare:>12,.0f}{ratio:>17}")
    return 0


# ----------------------------------------------------------------------------- orchestrator
def _python_for(kind: str) -> Path | None:
    if kind == "aiscope":
        return Path(sys.executable)
    py = PEERS_DIR / kind / "bin" / "python"
    return py if py.exists() else None


def _run_worker(kind: str, rounds: int, calls: int) -> dict[str, Any] | str:
    py = _python_for(kind)
    if py is None:
        return f"no virtualenv {PEERS_DIR / kind} (run bash bench/setup_peers.sh {kind})"
    cmd = [
        str(py),
        str(Path(__file__)),
        "--worker",
        kind,
        "--rounds",
        str(rounds),
        "--calls",
        str(calls),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return "failed: " + " | ".join(tail)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _us(x: float) -> str:
    return f"{x * 1e6:8.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--calls", type=int, default=None, help="calls per pass")
    ap.add_argument("--only", nargs="*", default=None, help="contenders to run")
    ap.add_argument(
        "--instructions",
        type=int,
        default=None,
        metavar="CALLS",
        help="count instructions per call under valgrind instead of timing",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--count-worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.count_worker:
        sys.path.insert(0, str(ROOT / "src"))
        kind, variant, n = args.count_worker
        count_worker(kind, variant, int(n))
        return 0
    if args.instructions:
        return instructions(args.only or list(CONTENDERS), args.instructions)
    rounds = args.rounds or (7 if args.quick else 21)
    calls = args.calls or (200 if args.quick else 500)
    if args.worker:
        sys.path.insert(0, str(ROOT / "src"))
        print(json.dumps(worker(args.worker, rounds, calls)))
        return 0
    kinds = args.only or list(CONTENDERS)
    results: dict[str, dict[str, Any]] = {}
    print(
        f"instrumentation overhead, openai {'3.x'} chat.completions.create, in-process "
        f"endpoint; {rounds} rounds x {calls} calls per pass\n"
    )
    for kind in kinds:
        print(f"  running {kind} ...", file=sys.stderr, flush=True)
        got = _run_worker(kind, rounds, calls)
        if isinstance(got, str):
            print(f"  {CONTENDERS[kind]}: skipped: {got}")
            continue
        results[kind] = got
    if not results:
        return 1
    rows = []
    for kind, got in results.items():
        diffs = [a - b for a, b in zip(got["inst"], got["bare"], strict=True)]
        q = statistics.quantiles(diffs, n=4) if len(diffs) >= 4 else [min(diffs), 0, max(diffs)]
        rows.append(
            (
                kind,
                statistics.median(got["bare"]),
                statistics.median(got["inst"]),
                statistics.median(diffs),
                q[0],
                q[2],
                got["observed"],
                got["openai"],
            )
        )
    peers = [r for r in rows if r[0] != "aiscope"]
    leanest = min(peers, key=lambda r: r[3]) if peers else None
    print(
        f"{'contender':<52}{'bare µs':>9}{'instr. µs':>11}{'overhead µs':>13}"
        f"{'  (IQR)':>18}{'  vs leanest peer':>18}  observed  openai"
    )
    for kind, bare, inst, over, lo, hi, observed, version in rows:
        ratio = f"{over / leanest[3]:.2f}x" if leanest and leanest[3] > 0 else "-"
        print(
            f"{CONTENDERS[kind]:<52}{_us(bare):>9}{_us(inst):>11}{_us(over):>13}"
            f"  ({_us(lo).strip()}..{_us(hi).strip()}){ratio:>14}  {observed!s:>8}  {version}"
        )
    if leanest is not None and "aiscope" in results:
        ours = next(r for r in rows if r[0] == "aiscope")[3]
        goal = ours <= leanest[3] / 2
        print(
            f"\ngoal (aiscope overhead <= half the leanest peer's, {CONTENDERS[leanest[0]]}): "
            f"{'met' if goal else 'NOT met'} ({ours * 1e6:.1f} µs vs {leanest[3] * 1e6:.1f} µs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
