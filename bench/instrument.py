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
each pass (``--gc``: on). Overhead = the median over rounds of (instrumented − bare)
per call, both measured in the same round of the same process, on four clocks read
around the same passes: process CPU time, wall clock, the calling thread's CPU time,
and the median single call of a call-by-call alternating pass (wall clock). The
rounds are split in ``--chunks`` worker runs per contender, contenders alternating,
so that the machine's load drifting hits every contender alike.

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

from _timing import paired_differences, print_table, quartiles

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

#: The clocks read around every pass, all three in the same pass: CPU time of the
#: whole process (background exporter threads included; on a shared machine the
#: steadiest), wall-clock time (what the application waits; it also counts time the
#: neighbours' load takes the core away, and background threads competing for the
#: GIL), and CPU time of the calling thread only (what runs on the caller's thread).
CLOCKS: dict[str, Any] = {
    "cpu": time.process_time,
    "wall": time.perf_counter,
    "thread": time.thread_time,
}
CLOCK_TITLES = {
    "cpu": "process CPU time (all threads)",
    "wall": "wall clock",
    "thread": "CPU time of the calling thread",
    "call": "wall clock, median single call (bare and instrumented alternating call by call)",
}

#: Parts of aiscope's set-up that ``--aiscope-sinks`` can pick (for a breakdown by sink).
AISCOPE_SINKS = ("metrics", "cost", "tracer")

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

    url = os.environ.get("BENCH_HTTP")
    if url:  # --http: real HTTP on loopback to serve_http() in another process
        return openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
    return openai.OpenAI(
        base_url="http://bench.local/v1",
        api_key="sk-bench",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )


def serve_http(port_file: str) -> None:
    """Answer every POST with BODY over keep-alive HTTP/1.1 on a free loopback port
    (written to ``port_file``), until killed: the endpoint of ``--http``."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(BODY).encode()
    # one write per answer: headers and body written apart meet Nagle's algorithm and
    # the client's delayed ACK (40 ms a call)
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req_bench\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def _otel_sinks() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    # simple: exported on the caller's thread; batch: queued, exported on the SDK's
    # background thread (--otel-processor)
    batch = os.environ.get("BENCH_OTEL_PROCESSOR", "simple") == "batch"
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, exporter


def _setup(kind: str) -> tuple[Any, Any]:
    """Instrument the SDK as ``kind`` does; returns (a function clearing the sink between
    passes, a function checking that the last call was observed)."""
    if kind == "aiscope":
        import aiscope

        picked = os.environ.get("BENCH_AISCOPE_SINKS", ",".join(AISCOPE_SINKS)).split(",")
        sinks: dict[str, Any] = {}
        if "metrics" in picked:
            sinks["metrics"] = aiscope.MetricsCollector()
        if "cost" in picked:
            sinks["cost_tracker"] = aiscope.CostTracker(budget_usd=1e12, mode="block")
        # spans to an in-memory exporter, as the peers' (a local exporter is handed
        # each span on the caller's thread, as the SDK's SimpleSpanProcessor does)
        spans = aiscope.InMemoryExporter()
        if "tracer" in picked:
            sinks["tracer"] = aiscope.Tracer(service_name="bench", exporter=spans)
        aiscope.configure(**sinks)
        aiscope.instrument()
        calls = [0]

        def seen() -> bool:
            ok = True
            if "cost_tracker" in sinks:
                n = sinks["cost_tracker"].get_report().call_count
                ok, calls[0] = n > calls[0], n
            if "metrics" in sinks:
                ok = ok and "ai_lib_requests_total" in sinks["metrics"].export_prometheus()
            if "tracer" in sinks:
                sinks["tracer"].flush(timeout=5)
                ok = ok and bool(spans.spans())
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

        def exported() -> bool:
            tracer_provider.force_flush()  # a batch processor holds spans until then
            return bool(exporter.get_finished_spans())

        return exporter.clear, exported
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

    keep_gc = os.environ.get("BENCH_GC") == "on"
    clocks = list(CLOCKS.items())

    def one_by_one() -> dict[str, float]:
        """Median wall-clock seconds of single calls, bare and instrumented alternating
        call by call: a call that the neighbours' load preempted (or a collection hit)
        is an outlier the median drops, where it would land in a whole pass's time."""
        # by position, not keyed by function: a wrapt proxy compares equal to the
        # function it wraps
        times: tuple[list[int], list[int]] = ([], [])
        fns = (inst_fn, bare_fn)
        clock = time.perf_counter_ns
        if not keep_gc:
            gc.disable()
        try:
            for j in range(calls):
                Completions.create = fns[j % 2]
                t0 = clock()
                completions.create(model="gpt-4o", messages=MESSAGES)
                times[j % 2].append(clock() - t0)
        finally:
            gc.enable()
        return {
            "inst": statistics.median(times[0]) / 1e9,
            "bare": statistics.median(times[1]) / 1e9,
        }

    def one_pass() -> dict[str, float]:
        """Seconds per call on every clock (the garbage collector off unless --gc)."""
        if not keep_gc:
            gc.disable()
        try:
            t0 = {name: clock() for name, clock in clocks}
            for _ in range(calls):
                completions.create(model="gpt-4o", messages=MESSAGES)
            t1 = {name: clock() for name, clock in clocks}
            return {name: (t1[name] - t0[name]) / calls for name in t0}
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
    bare: list[dict[str, float]] = []
    inst: list[dict[str, float]] = []
    for i in range(rounds):
        clear()
        gc.collect()
        order = [(bare_fn, bare), (inst_fn, inst)]
        if i % 2:
            order.reverse()
        for fn, out in order:
            Completions.create = fn
            out.append(one_pass())
        single = one_by_one()
        bare[-1]["call"], inst[-1]["call"] = single["bare"], single["inst"]
    import openai

    return {
        "bare": {name: [p[name] for p in bare] for name in CLOCK_TITLES},
        "inst": {name: [p[name] for p in inst] for name in CLOCK_TITLES},
        "observed": observed,
        "openai": openai.__version__,
    }


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
        _base(kind),
        variant,
        str(calls),
    ]
    # one hash seed for every run: string hashing otherwise varies the count run to run
    env = {**os.environ, "PYTHONHASHSEED": "0", **_sinks_env(kind)}
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
            print(f"{_label(kind):<52}  skipped: no virtualenv")
            continue
        print(f"  counting {kind} ...", file=sys.stderr, flush=True)
        jobs = [(v, n) for v in ("bare", "inst") for n in (0, calls)]
        with ThreadPoolExecutor(2) as pool:
            counts = pool.map(functools.partial(_instructions, py, kind), *zip(*jobs, strict=True))
            got = dict(zip(jobs, counts, strict=True))
        bare = (got["bare", calls] - got["bare", 0]) / calls
        inst = (got["inst", calls] - got["inst", 0]) / calls
        rows[kind] = (bare, inst)
    peers = {k: i - b for k, (b, i) in rows.items() if _base(k) != "aiscope"}
    leanest = min(peers.values()) if peers else None
    for kind, (bare, inst) in rows.items():
        ratio = f"{(inst - bare) / leanest:.2f}x" if leanest else "-"
        print(f"{_label(kind):<52}{bare:>12,.0f}{inst:>14,.0f}{inst - bare:>12,.0f}{ratio:>17}")
    return 0


# ----------------------------------------------------------------------------- orchestrator
def _base(kind: str) -> str:
    """The contender a worker key names: ``aiscope[metrics,cost]`` is aiscope with
    only those sinks (``--breakdown``)."""
    return kind.split("[", 1)[0]


def _sinks_env(kind: str) -> dict[str, str]:
    """The worker's environment for ``aiscope[...]``: only those sinks configured."""
    return {"BENCH_AISCOPE_SINKS": kind.split("[", 1)[1].rstrip("]")} if "[" in kind else {}


def _label(kind: str) -> str:
    if "[" in kind:
        picked = kind.split("[", 1)[1].rstrip("]")
        return f"aiscope ({picked.replace(',', ' + ') or 'no sink'})"
    return CONTENDERS[kind]


def _python_for(kind: str) -> Path | None:
    if _base(kind) == "aiscope":
        return Path(sys.executable)
    py = PEERS_DIR / kind / "bin" / "python"
    return py if py.exists() else None


def _run_worker(kind: str, rounds: int, calls: int, env: dict[str, str]) -> dict[str, Any] | str:
    py = _python_for(kind)
    if py is None:
        return f"no virtualenv {PEERS_DIR / kind} (run bash bench/setup_peers.sh {kind})"
    cmd = [
        str(py),
        str(Path(__file__)),
        "--worker",
        _base(kind),
        "--rounds",
        str(rounds),
        "--calls",
        str(calls),
    ]
    env = {**os.environ, **env, **_sinks_env(kind)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return "failed: " + " | ".join(tail)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _us(x: float) -> str:
    return f"{x * 1e6:.1f}"


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def report(results: dict[str, dict[str, Any]], clock: str) -> bool | None:
    """Print the table of one clock; True/False whether aiscope met the goal on it
    (None when there is no aiscope or no peer to compare with)."""
    rows = []
    for kind, got in results.items():
        bare, inst = got["bare"][clock], got["inst"][clock]
        diffs = paired_differences(inst, bare)
        lo, hi = quartiles(diffs)
        over = statistics.median(diffs)
        rows.append((kind, statistics.median(bare), statistics.median(inst), over, lo, hi, got))
    peers = [r for r in rows if _base(r[0]) != "aiscope"]
    leanest = min(peers, key=lambda r: r[3]) if peers else None
    table = []
    for kind, bare, inst, over, lo, hi, got in rows:
        ratio = f"{over / leanest[3]:.2f}x" if leanest and leanest[3] > 0 else "-"
        table.append(
            [
                _label(kind),
                _us(bare),
                _us(inst),
                _us(over),
                f"{_us(lo)}..{_us(hi)}",
                ratio,
                str(got["observed"]),
                got["openai"],
            ]
        )
    print(f"\n{CLOCK_TITLES[clock]} ({clock}):")
    print_table(
        [
            "contender",
            "bare µs",
            "instr. µs",
            "overhead µs",
            "IQR",
            "vs leanest peer",
            "observed",
            "openai",
        ],
        table,
    )
    ours = next((r for r in rows if r[0] == "aiscope"), None)
    if leanest is None or ours is None:
        return None
    return bool(ours[3] <= leanest[3] / 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--calls", type=int, default=None, help="calls per pass")
    ap.add_argument("--only", nargs="*", default=None, help="contenders to run")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also run aiscope with each sink alone (metrics, cost, tracer) and with none",
    )
    ap.add_argument(
        "--otel-processor",
        choices=("simple", "batch"),
        default="simple",
        help="the OpenTelemetry peers' span processor (batch exports on a background thread)",
    )
    ap.add_argument(
        "--http",
        action="store_true",
        help="real HTTP to a loopback server in another process instead of a MockTransport",
    )
    ap.add_argument(
        "--chunks",
        type=int,
        default=3,
        help="split the rounds in this many worker runs per contender, alternating contenders",
    )
    ap.add_argument("--serve-http", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--gc", action="store_true", help="leave the garbage collector on during timed passes"
    )
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
    if args.serve_http:
        serve_http(args.serve_http)
        return 0
    if args.count_worker:
        sys.path.insert(0, str(ROOT / "src"))
        kind, variant, n = args.count_worker
        count_worker(kind, variant, int(n))
        return 0
    kinds = args.only or list(CONTENDERS)
    if args.breakdown:
        kinds += [f"aiscope[{s}]" for s in (*AISCOPE_SINKS, "")]
    if args.instructions:
        return instructions(kinds, args.instructions)
    rounds = args.rounds or (7 if args.quick else 21)
    calls = args.calls or (200 if args.quick else 500)
    if args.worker:
        sys.path.insert(0, str(ROOT / "src"))
        print(json.dumps(worker(args.worker, rounds, calls)))
        return 0
    env = {"BENCH_OTEL_PROCESSOR": args.otel_processor, "BENCH_GC": "on" if args.gc else "off"}
    server = None
    if args.http:
        port_file = Path(tempfile.mkdtemp()) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve-http", str(port_file)])
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        env["BENCH_HTTP"] = f"http://127.0.0.1:{port_file.read_text()}/v1"
    try:
        return _compare(kinds, rounds, calls, env, args)
    finally:
        if server is not None:
            server.kill()
            server.wait()


def _compare(
    kinds: list[str], rounds: int, calls: int, env: dict[str, str], args: argparse.Namespace
) -> int:
    """Run every contender's worker in turn and print the tables of every clock."""
    results: dict[str, dict[str, Any]] = {}
    print(
        "instrumentation overhead, openai chat.completions.create, in-process endpoint; "
        f"{rounds} rounds x {calls} calls per pass, instrumented and bare passes paired "
        f"in each round; OTel peers' span processor: {args.otel_processor}; "
        f"gc {'on' if args.gc else 'off'} in passes; "
        f"{'real HTTP on loopback' if args.http else 'httpx2.MockTransport'}"
    )
    print(f"at start: {_load()}")
    # the rounds split in chunks, the contenders' workers alternating chunk by chunk:
    # the machine's load drifts, and it scales every clock (CPU time too), so
    # contenders run one after the other would be compared under different loads
    chunks = max(1, min(args.chunks, rounds))
    skipped: set[str] = set()
    for c in range(chunks):
        n = rounds // chunks + (1 if c < rounds % chunks else 0)
        order = kinds[c % len(kinds) :] + kinds[: c % len(kinds)]
        for kind in order:
            if kind in skipped:
                continue
            print(f"  running {kind} (chunk {c + 1}/{chunks}) ...", file=sys.stderr, flush=True)
            got = _run_worker(kind, n, calls, env)
            if isinstance(got, str):
                print(f"  {_label(kind)}: skipped: {got}")
                skipped.add(kind)
                results.pop(kind, None)
                continue
            if kind not in results:
                results[kind] = got
                continue
            for side in ("bare", "inst"):
                for clock, values in got[side].items():
                    results[kind][side][clock].extend(values)
            results[kind]["observed"] = results[kind]["observed"] and got["observed"]
    print(f"at end: {_load()}")
    if not results:
        return 1
    goals = {clock: report(results, clock) for clock in CLOCK_TITLES}
    if any(v is not None for v in goals.values()):
        print("\ngoal (aiscope overhead <= half the leanest peer's):")
        for clock, met in goals.items():
            if met is not None and clock != "thread":
                print(f"  {CLOCK_TITLES[clock]}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
