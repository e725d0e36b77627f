"""Per-record cost of aiscope's sink pipeline, next to ai-lib-python and rlm-toolkit.

Run it with ``bash bench/run`` (or ``make bench``); ``bash bench/run --quick`` is
a smaller, faster run. ``bench/run`` keeps a separate virtualenv (``.venv-bench``)
holding aiscope (editable) and the two peers from PyPI: ai-lib-python 1.2.0 and
rlm-toolkit 2.3.1.

What is measured, per call (one LLM call = one record):

* ``floor``: the prometheus_client operations aiscope's metrics must do anyway, on
  label children looked up beforehand (requests inc, duration observe, ttft
  observe when present, one inc per non-zero token type, cost inc, errors inc on
  a failed call) plus one ``DDSketch.add``. No label mapping, no lock.
* aiscope ``MetricsCollector.on_record``, ``Pricing.price_record`` and
  ``CostTracker.on_record`` (a $1e12 budget, ``block`` mode, no reservation), each
  alone.
* the whole pipeline: ``Scope(metrics=..., cost_tracker=...).emit(record)``
  (validate, price, cost + budget, metrics + percentiles), and the path a client
  takes, ``scope.emit(record, scope.begin(...))``, which also reserves the
  estimated cost before the call and counts it in flight.
* ai-lib-python ``MetricsCollector.record_request`` (metrics only; its
  ``MetricLabels`` are built beforehand, arguments passed positionally).
* rlm-toolkit ``CostTracker.record`` (cost only; the cost is computed beforehand).

Timing: every contender runs over the same pre-built records (a pool of
``--pool`` records, realistic mix of models, tags, cache tokens, errors and
latencies) once per round; the order of contenders rotates from round to round,
the garbage collector is off during each timed pass, and the table reports the
median over ``--rounds`` rounds (and the spread between the quartiles). Records a
contender mutates (pricing sets ``cost_usd``) are reset outside the timed region.

Memory: after the timing, each contender is built afresh in a forked process
(``--jobs`` at a time) and, after one warm-up pass, tracemalloc measures the
Python heap after N1 and after N2 calls (defaults 100k and 1M; ``--quick``: 20k
and 100k); the table shows the growth per call between the two. tracemalloc
slows the allocation-heavy contenders several-fold, so this is the long part of
a full run.

``--breakdown`` adds timed rows that split ``Scope.emit`` into its parts, using
public API only. ``--strict`` makes a failed goal check exit with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import math
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ai_lib_python.telemetry import MetricLabels
from ai_lib_python.telemetry import MetricsCollector as AiLibMetrics
from ddsketch import DDSketch
from prometheus_client import CollectorRegistry, Counter, Histogram
from rlm_toolkit.observability import CostTracker as RlmCostTracker

from _timing import Contender, one_pass, print_table, progress, quartiles, time_rounds
from aiscope.cost.pricing import Pricing
from aiscope.cost.tracker import CostTracker
from aiscope.metrics.collector import DURATION_BUCKETS, TTFT_BUCKETS, MetricsCollector
from aiscope.record import CallRecord, Usage
from aiscope.scope import Scope

# -- the workload -----------------------------------------------------------------------

#: (provider, model asked for, model that answered, share of calls)
MODELS = (
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 0.35),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.35),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 0.20),
    ("google", "gemini-2.5-flash", "gemini-2.5-flash", 0.10),
)
FEATURES = ("search", "chat", "summarize", "extract", "classify")
TEAMS = ("growth", "core", "platform")
ERRORS = ("rate_limit", "timeout", "server_error")
ERROR_SHARE = 0.05


def build_records(n: int, seed: int = 7) -> list[CallRecord]:
    """``n`` finished, unpriced records with a realistic mix."""
    rng = random.Random(seed)
    weights = [w for *_, w in MODELS]
    now = time.time()
    out = []
    for _ in range(n):
        provider, model, answered, _w = rng.choices(MODELS, weights)[0]
        latency = min(120.0, rng.lognormvariate(math.log(1.2), 0.7))
        streaming = rng.random() < 0.5
        if rng.random() < ERROR_SHARE:
            status, error_type, usage, ttft = "error", rng.choice(ERRORS), Usage(), None
            answered = None
        else:
            status, error_type = "ok", None
            tin = max(1, min(150_000, int(rng.lognormvariate(7.0, 1.0))))
            tout = max(1, min(8_000, int(rng.lognormvariate(5.5, 0.8))))
            cache_read = cache_write = 0
            if provider != "google" and rng.random() < 0.3:
                cache_read = int(tin * rng.uniform(0.2, 0.9))
            if provider == "anthropic" and rng.random() < 0.1:
                cache_write = int((tin - cache_read) * rng.uniform(0.1, 1.0))
            usage = Usage(tin, tout, cache_read, cache_write)
            ttft = latency * rng.uniform(0.05, 0.3) if streaming else None
        tags = (
            {"feature": rng.choice(FEATURES), "team": rng.choice(TEAMS)}
            if rng.random() < 0.9
            else {}
        )
        out.append(
            CallRecord(
                model=model,
                provider=provider,
                response_model=answered,
                start_time=now - rng.uniform(0.0, 3600.0),
                latency_s=latency,
                time_to_first_token_s=ttft,
                status=status,
                error_type=error_type,
                usage=usage,
                tags=tags,
                streaming=streaming,
            )
        )
    return out


def copy_records(records: list[CallRecord]) -> list[CallRecord]:
    """Independent records (usage and tags are shared: no sink mutates them)."""
    return [dataclasses.replace(r) for r in records]


def unprice(records: list[CallRecord]) -> None:
    """Undo pricing, so the next pass prices again (run outside the timed region)."""
    for r in records:
        r.cost_usd = None
        r.cost_status = "not_priced"


# -- contenders -------------------------------------------------------------------------


@dataclass
class Bench:
    """One contender, with its own state: ``run()`` is one timed pass over its items."""

    key: str
    label: str
    run: Callable[[], None]
    calls_per_pass: int
    before: Callable[[], None] | None = None  # untimed preparation of a pass


def make_floor(priced: list[CallRecord]) -> Bench:
    reg = CollectorRegistry()
    base = ["model", "provider", "feature", "team"]
    requests = Counter("f_requests", "x", [*base, "status"], registry=reg)
    duration = Histogram("f_duration_seconds", "x", base, buckets=DURATION_BUCKETS, registry=reg)
    ttft_h = Histogram("f_ttft_seconds", "x", base, buckets=TTFT_BUCKETS, registry=reg)
    tokens = Counter("f_tokens", "x", [*base, "type"], registry=reg)
    cost_c = Counter("f_cost_usd", "x", base, registry=reg)
    errors = Counter("f_errors", "x", [*base, "error_type"], registry=reg)
    sketches: dict[str, DDSketch] = {}
    items = []
    for r in priced:
        labels = (r.model, r.provider, r.tags.get("feature", ""), r.tags.get("team", ""))
        u = r.usage
        toks = tuple(
            (tokens.labels(*labels, name), n)
            for name, n in (
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cache_read", u.cache_read_tokens),
                ("cache_write", u.cache_write_tokens),
                ("reasoning", u.reasoning_tokens),
            )
            if n
        )
        items.append(
            (
                requests.labels(*labels, r.status),
                duration.labels(*labels),
                ttft_h.labels(*labels),
                toks,
                cost_c.labels(*labels),
                errors.labels(*labels, r.error_type) if r.status != "ok" else None,
                sketches.setdefault(r.model, DDSketch(0.01)),
                r.latency_s,
                r.time_to_first_token_s,
                r.cost_usd,
            )
        )

    def one(item: tuple[Any, ...]) -> None:
        req, dur, ttft_c, toks, cost_ch, err, sk, lat, ttft, cost = item
        req.inc()
        dur.observe(lat)
        if ttft is not None:
            ttft_c.observe(ttft)
        for child, n in toks:
            child.inc(n)
        if cost:
            cost_ch.inc(cost)
        if err is not None:
            err.inc()
        sk.add(lat)

    def run() -> None:
        for item in items:
            one(item)

    return Bench("floor", "floor: prometheus ops + 1 sketch add", run, len(items))


def make_metrics(priced: list[CallRecord]) -> Bench:
    on_record = MetricsCollector().on_record

    def run() -> None:
        for r in priced:
            on_record(r)

    return Bench("metrics", "aiscope MetricsCollector.on_record", run, len(priced))


def make_pricing(unpriced: list[CallRecord]) -> Bench:
    recs = copy_records(unpriced)
    price_record = Pricing().price_record

    def run() -> None:
        for r in recs:
            price_record(r)

    return Bench(
        "pricing", "aiscope Pricing.price_record", run, len(recs), before=lambda: unprice(recs)
    )


def make_cost(priced: list[CallRecord]) -> Bench:
    on_record = CostTracker(budget_usd=1e12, mode="block").on_record

    def run() -> None:
        for r in priced:
            on_record(r)

    return Bench("cost", "aiscope CostTracker.on_record (budget)", run, len(priced))


def _scope() -> Scope:
    return Scope(metrics=MetricsCollector(), cost_tracker=CostTracker(budget_usd=1e12))


Factory = Callable[[list[CallRecord], list[CallRecord]], Bench]


def make_emit(key: str, label: str, scope: Callable[[], Scope]) -> Factory:
    """A Scope.emit contender over its own copy of the unpriced records."""

    def factory(unpriced: list[CallRecord], priced: list[CallRecord]) -> Bench:
        recs = copy_records(unpriced)
        emit = scope().emit

        def run() -> None:
            for r in recs:
                emit(r)

        return Bench(key, label, run, len(recs), before=lambda: unprice(recs))

    return factory


def make_begin_emit(unpriced: list[CallRecord]) -> Bench:
    recs = copy_records(unpriced)
    # max_tokens as callers pass it to begin(): unset (the tracker's default), 1024, 4096
    items = [
        (r, r.model, r.provider, r.usage.input_tokens, (None, 1024, 4096)[i % 3])
        for i, r in enumerate(recs)
    ]
    scope = _scope()
    begin, emit = scope.begin, scope.emit

    def run() -> None:
        for r, model, provider, tin, tmax in items:
            emit(r, begin(model, provider, tin, tmax))

    return Bench(
        "begin_emit",
        "aiscope Scope.begin + emit (reservation)",
        run,
        len(recs),
        before=lambda: unprice(recs),
    )


def make_ailib(priced: list[CallRecord]) -> Bench:
    record_request = AiLibMetrics().record_request
    items = [
        (
            MetricLabels(provider=r.provider, model=r.model),
            r.latency_s,
            "success" if r.status == "ok" else "error",
            r.usage.input_tokens,
            r.usage.output_tokens,
        )
        for r in priced
    ]

    def run() -> None:
        for labels, latency, status, tin, tout in items:
            record_request(labels, latency, status, tin, tout)

    return Bench("ailib", "ai-lib-python MetricsCollector.record_request", run, len(items))


def make_rlm(priced: list[CallRecord]) -> Bench:
    record = RlmCostTracker(budget_usd=1e12).record
    items = [
        (r.provider, r.model, r.usage.input_tokens, r.usage.output_tokens, r.cost_usd or 0.0)
        for r in priced
    ]

    def run() -> None:
        for provider, model, tin, tout, cost in items:
            record(provider, model, tin, tout, cost)

    return Bench("rlm", "rlm-toolkit CostTracker.record", run, len(items))


def make_validate(priced: list[CallRecord]) -> Bench:
    def run() -> None:
        for r in priced:
            r.validate()

    return Bench("validate", "  breakdown: CallRecord.validate", run, len(priced))


#: the contenders of the issue, in table order: key -> factory(unpriced, priced)
CONTENDERS: dict[str, Factory] = {
    "floor": lambda u, p: make_floor(p),
    "metrics": lambda u, p: make_metrics(p),
    "pricing": lambda u, p: make_pricing(u),
    "cost": lambda u, p: make_cost(p),
    "pipeline": make_emit("pipeline", "aiscope Scope.emit (whole pipeline)", _scope),
    "begin_emit": lambda u, p: make_begin_emit(u),
    "ailib": lambda u, p: make_ailib(p),
    "rlm": lambda u, p: make_rlm(p),
}
#: where the pipeline's time goes (``--breakdown``; timed only): the same emit with
#: fewer sinks, and validation alone
BREAKDOWN: dict[str, Factory] = {
    "validate": lambda u, p: make_validate(p),
    "emit_bare": make_emit("emit_bare", "  breakdown: emit, no sinks (validate + price)", Scope),
    "emit_metrics": make_emit(
        "emit_metrics",
        "  breakdown: emit, metrics only",
        lambda: Scope(metrics=MetricsCollector()),
    ),
    "emit_cost": make_emit(
        "emit_cost",
        "  breakdown: emit, cost + budget only",
        lambda: Scope(cost_tracker=CostTracker(budget_usd=1e12)),
    ),
    "emit_no_budget": make_emit(
        "emit_no_budget",
        "  breakdown: emit, metrics + cost, no budget",
        lambda: Scope(metrics=MetricsCollector(), cost_tracker=CostTracker()),
    ),
}
FACTORIES: dict[str, Factory] = {**CONTENDERS, **BREAKDOWN}
MEMORY_ORDER = ("begin_emit", "pipeline", "metrics", "ailib", "cost", "floor", "pricing", "rlm")


# -- measuring --------------------------------------------------------------------------


#: the clock of a timed pass: this thread's CPU time by default, which other
#: processes on a shared machine do not inflate; ``--clock wall`` for wall time
CLOCK: Callable[[], int] = time.thread_time_ns


def timed(bench: Bench) -> Callable[[], float]:
    """One pass of ``bench`` for ``_timing``: its untimed preparation, then its run timed
    by :data:`CLOCK`."""

    def run() -> float:
        if bench.before is not None:
            bench.before()
        t0 = CLOCK()
        bench.run()
        return (CLOCK() - t0) / 1e9

    return run


def time_benches(benches: list[Bench], rounds: int) -> dict[str, list[float]]:
    """Per-call seconds of each contender, one value per round (after a warm-up pass:
    label children, price sheets, sketches, caches)."""
    group = [Contender(b.key, b.label, timed(b), b.calls_per_pass) for b in benches]
    return time_rounds([group], rounds)


def memory_growth(bench: Bench, n1: int, n2: int) -> tuple[float, int, int]:
    """Heap growth per call between n1 and n2 calls, and the calls actually made."""
    one_pass(timed(bench))  # warm-up, as in a running process
    gc.collect()
    tracemalloc.start()
    try:
        done = 0
        sizes = []
        for target in (n1, n2):
            while done < target:
                if bench.before is not None:
                    bench.before()
                bench.run()
                done += bench.calls_per_pass
            gc.collect()
            sizes.append((done, tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    (d1, m1), (d2, m2) = sizes
    return (m2 - m1) / (d2 - d1), d1, d2


# Set before the memory workers fork; each worker builds its contender afresh.
_WORKLOAD: tuple[list[CallRecord], list[CallRecord], int, int] | None = None


def _memory_worker(key: str) -> tuple[str, float, int, int]:
    assert _WORKLOAD is not None
    unpriced, priced, n1, n2 = _WORKLOAD
    return (key, *memory_growth(FACTORIES[key](unpriced, priced), n1, n2))


def memory_all(
    keys: list[str],
    unpriced: list[CallRecord],
    priced: list[CallRecord],
    n1: int,
    n2: int,
    jobs: int,
) -> tuple[dict[str, float], int, int]:
    """Memory growth of each contender, each in a fresh forked process."""
    global _WORKLOAD
    _WORKLOAD = (unpriced, priced, n1, n2)
    growth: dict[str, float] = {}
    sizes = (0, 0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        for i, (key, g, d1, d2) in enumerate(pool.imap_unordered(_memory_worker, keys)):
            growth[key] = g
            sizes = (d1, d2)
            progress(f"memory: {i + 1}/{len(keys)} contenders measured")
    progress("")
    _WORKLOAD = None
    return growth, *sizes


# -- reporting --------------------------------------------------------------------------


def versions() -> str:
    names = ("aiscope", "prometheus-client", "ddsketch", "genai-prices")
    peers = ("ai-lib-python", "rlm-toolkit")
    parts = [f"{n} {importlib.metadata.version(n)}" for n in (*names, *peers)]
    return ", ".join(parts)


def source_revision() -> str:
    """The aiscope commit measured, and which files under src/ differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "--no-optional-locks", "-C", root, *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.rstrip("\n") if out.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=all", "--", "src")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    files = [line[3:] for line in changed.splitlines() if line.strip()]
    return f"{head}, clean" if not files else f"{head} + uncommitted {', '.join(files)}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n", 1)[0] if __doc__ else None
    )
    ap.add_argument("--quick", action="store_true", help="smaller pool, fewer rounds and calls")
    ap.add_argument("--rounds", type=int, help="timed rounds (default 31; --quick 9)")
    ap.add_argument("--pool", type=int, help="records per pass (default 20000; --quick 5000)")
    ap.add_argument(
        "--mem-sizes",
        metavar="N1,N2",
        help="calls for the memory growth (default 100000,1000000; --quick 20000,100000)",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes measuring memory, after the timing (default: up to 2)",
    )
    ap.add_argument(
        "--breakdown", action="store_true", help="also time pieces of Scope.emit (timing only)"
    )
    ap.add_argument("--only", metavar="KEYS", help=f"comma-separated, of: {','.join(FACTORIES)}")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a goal check fails")
    ap.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time passes by this thread's CPU time (default; steady on a busy machine) "
        "or by wall time",
    )
    args = ap.parse_args(argv)

    global CLOCK
    CLOCK = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    rounds = args.rounds or (9 if args.quick else 31)
    pool = args.pool or (5_000 if args.quick else 20_000)
    mem = args.mem_sizes or ("20000,100000" if args.quick else "100000,1000000")
    try:
        n1, n2 = (int(x) for x in mem.split(","))
    except ValueError:
        ap.error("--mem-sizes needs two integers N1,N2")
    if not 0 < n1 < n2:
        ap.error("--mem-sizes needs 0 < N1 < N2")
    if rounds < 1 or pool < 1 or args.jobs < 1:
        ap.error("--rounds, --pool and --jobs must be >= 1")
    if args.only:
        keys = args.only.split(",")
        for k in keys:
            if k not in FACTORIES:
                ap.error(f"unknown contender {k!r}; known: {', '.join(FACTORIES)}")
    else:
        keys = list(CONTENDERS) + (list(BREAKDOWN) if args.breakdown else [])

    print("aiscope sink pipeline benchmark: time and memory per LLM call record")
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cpus; {versions()}"
    )
    print(f"aiscope source: {source_revision()}")
    unpriced = build_records(pool, args.seed)
    pricing = Pricing()
    priced = copy_records(unpriced)
    for r in priced:
        pricing.price_record(r)
    errors = sum(r.status != "ok" for r in unpriced)
    streamed = sum(r.time_to_first_token_s is not None for r in unpriced)
    cached = sum(r.usage.cache_read_tokens > 0 for r in unpriced)
    tagged = sum(bool(r.tags) for r in unpriced)
    models = sorted({r.model for r in unpriced})
    print(
        f"workload: {pool:,} pre-built records per pass; {', '.join(models)}; "
        f"{errors / pool:.0%} errors, {streamed / pool:.0%} with ttft, "
        f"{cached / pool:.0%} with cache reads, {tagged / pool:.0%} with feature/team tags"
    )
    print(
        f"timing: median of {rounds} rounds, contenders in rotating order, gc off while timed, "
        f"{'thread CPU time' if args.clock == 'cpu' else 'wall time'}"
    )

    t0 = time.perf_counter()
    benches = [FACTORIES[k](unpriced, priced) for k in keys]
    per_call = time_benches(benches, rounds)
    labels = {b.key: b.label for b in benches}
    del benches
    timing_s = time.perf_counter() - t0

    growth: dict[str, float] = {}
    mem_note = "memory: not measured (--no-memory)"
    # slowest under tracemalloc first, so the workers finish together
    mem_keys = sorted((k for k in keys if k in CONTENDERS), key=MEMORY_ORDER.index)
    if not args.no_memory and mem_keys:
        t0 = time.perf_counter()
        growth, d1, d2 = memory_all(mem_keys, unpriced, priced, n1, n2, args.jobs)
        mem_note = (
            f"memory: tracemalloc heap growth per call from {d1:,} to {d2:,} calls, each contender"
            f" in a fresh process after one warm-up pass ({time.perf_counter() - t0:.0f} s)"
        )

    med = {k: statistics.median(v) for k, v in per_call.items()}
    floor = med.get("floor")
    ailib = med.get("ailib")
    print()
    rows = []
    for k in keys:
        lo, hi = quartiles(per_call[k])
        rows.append(
            [
                labels[k],
                f"{med[k] * 1e6:.2f}",
                f"{lo * 1e6:.2f}..{hi * 1e6:.2f}",
                f"{med[k] / floor:.2f}" if floor else "-",
                f"{med[k] / ailib:.2f}" if ailib else "-",
                f"{growth[k]:.1f}" if k in growth else "-",
            ]
        )
    header = ["contender", "median µs/call", "p25..p75 µs", "x floor", "x ai-lib", "mem B/call"]
    print_table(header, rows)
    print()
    print(f"timing took {timing_s:.0f} s; x floor, x ai-lib: ratios of the medians")
    print(mem_note)
    print()

    failed = False

    def check(ok: bool, text: str) -> None:
        nonlocal failed
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    def paired(a: str, b: str) -> str:
        r = [x / y for x, y in zip(per_call[a], per_call[b], strict=True)]
        return f"same-round ratios: median {statistics.median(r):.2f}, {min(r):.2f}..{max(r):.2f}"

    for key in ("pipeline", "begin_emit"):
        if key not in med:
            continue
        name = "pipeline (emit)" if key == "pipeline" else "pipeline (begin + emit)"
        if ailib:
            check(
                med[key] <= ailib,
                f"{name} no slower than ai-lib-python record_request: "
                f"{med[key] * 1e6:.2f} vs {ailib * 1e6:.2f} µs = {med[key] / ailib:.2f}x "
                f"({paired(key, 'ailib')})",
            )
        if floor:
            check(
                med[key] <= 1.5 * floor,
                f"{name} within 1.5x the floor: {med[key] * 1e6:.2f} vs "
                f"{floor * 1e6:.2f} µs = {med[key] / floor:.2f}x ({paired(key, 'floor')})",
            )
        if key in growth:
            check(
                growth[key] < 1.0,
                f"{name} bounded in memory: grows {growth[key]:.2f} B/call (limit 1 B/call)",
            )
    if "rlm" in growth:
        print(f"info  rlm-toolkit CostTracker.record grows {growth['rlm']:.0f} B/call, never freed")
    if "ailib" in growth:
        print(f"info  ai-lib-python record_request grows {growth['ailib']:.2f} B/call")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
