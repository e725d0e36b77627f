"""Bounded memory and accurate percentiles over a million calls.

Acceptance: memory of MetricsCollector + CostTracker after 1,000,000 recorded
calls is within 10% of after 10,000 (bounded); percentiles are within 2%
relative error of the exact ones.

The workload is what a busy service sends: four priced models, features that
belong to teams, a unique ``user`` tag on every call (not a metric label, so it
must leave nothing behind), a tenth of the calls with a never-seen-before
``feature`` (far past the label cap, so it must fold into ``other``), 5% errors
(half of them with never-seen-before error types), streamed calls with a time to
first token, operations, and a block-mode daily budget whose reservations are
taken and settled or abandoned. Every label value this workload can produce is
met within the first 10,000 calls; what the caps do is what keeps it so.

Memory is measured three ways, none of which slows the million calls:

* the bytes of every object reachable from the Scope (its collector, tracker,
  pricing, registry and ledger) by ``gc.get_referents``, stopping only at
  classes, modules, code and the bundled genai-prices database (shared constants);
* the number of live blocks of the whole interpreter (``sys.getallocatedblocks``),
  which also sees anything kept outside those objects;
* tracemalloc over two consecutive 10,000-call windows once warm: the second
  window's net traced growth is what each further call keeps.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterable
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, ModuleType

import pytest

from aiscope import (
    CallRecord,
    CostTracker,
    LatencyPercentiles,
    MetricsCollector,
    Scope,
    Usage,
)

MODELS = (
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-3-5-sonnet-latest", "anthropic"),
    ("gemini-1.5-flash", "google"),
)
FEATURES = tuple(f"feature-{i}" for i in range(12))
TEAMS = tuple(f"team-{i % 4}" for i in range(12))
ERRORS = ("RateLimitError", "APITimeoutError")


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.8), 0.6)


def _uniform(rng: random.Random) -> float:
    return rng.uniform(0.05, 2.0)


def _bimodal(rng: random.Random) -> float:
    if rng.random() < 0.7:
        return max(0.01, rng.gauss(0.3, 0.05))
    return max(0.01, rng.gauss(2.5, 0.4))


def _exponential(rng: random.Random) -> float:
    return 0.02 + rng.expovariate(1 / 0.7)


#: each model's latency distribution (seconds)
LATENCY: tuple[Callable[[random.Random], float], ...] = (
    _lognormal,
    _uniform,
    _bimodal,
    _exponential,
)


# -- memory -----------------------------------------------------------------------------------
def _retained(roots: Iterable[object]) -> tuple[int, int]:
    """(bytes, objects) reachable from ``roots``, shared constants excluded."""
    seen: set[int] = set()
    stack = list(roots)
    size = count = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, type | ModuleType | BuiltinFunctionType | CodeType | FrameType):
            continue
        if type(obj).__module__.startswith("genai_prices"):
            continue  # the bundled price database: loaded once, shared, constant
        if isinstance(obj, FunctionType):  # its state, not its module's globals
            stack.extend(obj.__closure__ or ())
            stack.extend(obj.__defaults__ or ())
            continue
        size += sys.getsizeof(obj)
        count += 1
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, dict):  # str-keyed dicts do not report their keys as referents
            stack.extend(obj)
    return size, count


def _measure(scope: Scope) -> dict[str, int]:
    gc.collect()
    size, objects = _retained([scope])
    return {"bytes": size, "objects": objects, "blocks": sys.getallocatedblocks()}


class Workload:
    """Deterministic calls through one Scope; keeps each call's latency for checking."""

    def __init__(self, n_max: int, seed: int = 20240229) -> None:
        self.tracker = CostTracker(budget_usd=1e9, window="daily")
        self.metrics = MetricsCollector()
        self.scope = Scope(metrics=self.metrics, cost_tracker=self.tracker)
        self.rng = random.Random(seed)
        self.i = 0
        # preallocated, so keeping the latencies allocates nothing per call
        self.latency = array("d", bytes(8 * n_max))
        self.model = bytearray(n_max)

    def run(self, n: int) -> None:
        rng, scope, i = self.rng, self.scope, self.i
        latency, model_of = self.latency, self.model
        for i in range(self.i, self.i + n):
            k = rng.randrange(4)
            model, provider = MODELS[k]
            lat = LATENCY[k](rng)
            latency[i] = lat
            model_of[i] = k
            f = rng.randrange(len(FEATURES) + 1)
            if f == len(FEATURES) or rng.random() < 0.02:
                feature, team = f"adhoc-{i}", "team-x"  # unbounded: past the label cap
            else:
                feature, team = FEATURES[f], TEAMS[f]
            failed = rng.random() < 0.05
            error = None
            if failed:
                error = ERRORS[i & 1] if rng.random() < 0.5 else f"Error{i}"
            streamed = i % 3 == 0
            out = 0 if failed else 1 + i % 700
            record = CallRecord(
                model=model,
                provider=provider,
                request_id=f"req-{i}",
                latency_s=lat,
                time_to_first_token_s=lat * 0.2 if streamed else None,
                streaming=streamed,
                status="error" if failed else "ok",
                error_type=error,
                usage=Usage(100 + i % 1900, out, i % 50, 0, min(out, i % 5)),
                tags={"feature": feature, "team": team, "user": f"user-{i}"},
                operations=("batch", f"step-{i % 3}") if i % 5 == 0 else (),
            )
            if i % 8 == 0:
                scope.emit(record, scope.begin(model, provider, record.usage.input_tokens, 800))
            else:
                if i % 16 == 1:
                    scope.abandon(scope.begin(model, provider, 1000, 800))
                scope.emit(record)
        self.i = i + 1


@pytest.mark.slow
def test_memory_after_a_million_calls_is_within_10_percent_of_after_10_000() -> None:
    small, big, window = 10_000, 1_000_000, 10_000
    w = Workload(big + 2 * window)
    t0 = time.perf_counter()
    w.run(small)
    at_small = _measure(w.scope)
    w.run(big - small)
    elapsed = time.perf_counter() - t0
    at_big = _measure(w.scope)

    # steady-state growth per call, traced: the first window replaces what every
    # later window replaces too (e.g. counter values), the second shows what stays
    tracemalloc.start()
    try:
        w.run(window)
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        w.run(window)
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    traced_per_call = (second - first) / window

    growth = at_big["bytes"] / at_small["bytes"] - 1
    print(
        f"\n{small:,} calls: {at_small}\n{big:,} calls: {at_big} "
        f"(+{growth:.2%} bytes, {elapsed:.1f}s, {elapsed / big * 1e6:.1f} us/call)\n"
        f"traced steady-state growth: {traced_per_call:.3f} bytes/call "
        f"(window {first:,} B, then {second - first:+,} B)"
    )
    assert w.i == big + 2 * window
    report = w.tracker.get_report()
    assert report.call_count == big + 2 * window and w.scope.sink_errors == {}
    assert len(report.by_feature) <= 201 and "other" in report.by_feature
    assert w.metrics.labels.overflow["feature"] > 50_000
    assert w.metrics.labels.overflow["error_type"] > 1_000
    assert w.tracker.budget_statuses()[0].reserved_usd == 0.0

    assert at_big["bytes"] <= 1.10 * at_small["bytes"]
    assert at_big["objects"] <= 1.10 * at_small["objects"]
    # the whole interpreter: less than one block kept per hundred calls
    assert at_big["blocks"] - at_small["blocks"] < (big - small) / 100
    # extrapolated over the 990,000 calls, what each call keeps stays under 10%
    assert traced_per_call * (big - small) <= 0.10 * at_small["bytes"]

    # and the percentiles of all those calls are still accurate
    by_model: list[list[float]] = [[] for _ in MODELS]
    for lat, k in zip(w.latency, w.model, strict=True):
        by_model[k].append(lat)
    worst = max(
        _check_percentiles(w.metrics.latency_percentiles(model), values)
        for (model, _), values in zip(MODELS, by_model, strict=True)
    )
    overall = _check_percentiles(w.metrics.latency_percentiles(), list(w.latency))
    print(f"percentiles: worst relative error {worst:.3%} by model, {overall:.3%} overall")


# -- percentiles ------------------------------------------------------------------------------
def _exact(values: list[float], q: float) -> tuple[float, float]:
    """The q-quantile by DDSketch's definition (the value of rank q*(n-1), rounded down)
    and by nearest rank (the ceil(q*n)-th smallest), in milliseconds."""
    s = sorted(values)
    n = len(s)
    return s[math.floor(q * (n - 1))] * 1000, s[max(0, math.ceil(q * n) - 1)] * 1000


def _check_percentiles(got: LatencyPercentiles, values: list[float]) -> float:
    """Assert p50/p95/p99 are within 2% of the exact ones; returns the worst error."""
    assert got.count == len(values)
    worst = 0.0
    for q, value in ((0.5, got.p50_ms), (0.95, got.p95_ms), (0.99, got.p99_ms)):
        assert value is not None
        for exact in _exact(values, q):
            err = abs(value - exact) / exact
            worst = max(worst, err)
            assert err <= 0.02, (got.model, q, value, exact)
    return worst


def test_percentiles_are_within_2_percent_of_exact() -> None:
    rng = random.Random(7)
    metrics = MetricsCollector()
    scope = Scope(metrics=metrics, cost_tracker=CostTracker())
    values: dict[str, list[float]] = {m: [] for m, _ in MODELS}
    ttft: list[float] = []
    for i in range(200_000):
        k = i % 4
        model, provider = MODELS[k]
        lat = LATENCY[k](rng)
        first = lat * rng.uniform(0.05, 0.5) if k == 0 else None
        values[model].append(lat)
        if first is not None:
            ttft.append(first)
        scope.emit(
            CallRecord(
                model=model,
                provider=provider,
                latency_s=lat,
                time_to_first_token_s=first,
                usage=Usage(10, 10),
            )
        )
    worst: dict[str, float] = {}
    for model, v in values.items():
        worst[model] = _check_percentiles(metrics.latency_percentiles(model), v)
    every = [x for v in values.values() for x in v]
    worst["all models"] = _check_percentiles(metrics.latency_percentiles(), every)
    worst["ttft"] = _check_percentiles(metrics.ttft_percentiles("gpt-4o"), ttft)
    print("\nworst relative error:", {k: f"{v:.3%}" for k, v in worst.items()})
    assert metrics.latency_percentiles("no-such-model") == LatencyPercentiles(
        "no-such-model", 0, None, None, None
    )


def test_small_samples_and_extremes() -> None:
    metrics = MetricsCollector()
    scope = Scope(metrics=metrics)
    one = [0.123]
    scope.emit(CallRecord(model="gpt-4o", provider="openai", latency_s=one[0]))
    _check_percentiles(metrics.latency_percentiles("gpt-4o"), one)
    # latencies spanning six orders of magnitude, in a heavy-tailed mix
    rng = random.Random(3)
    values = [10 ** rng.uniform(-4, 2) for _ in range(5_000)]
    for v in values:
        scope.emit(CallRecord(model="gpt-4o-mini", provider="openai", latency_s=v))
    _check_percentiles(metrics.latency_percentiles("gpt-4o-mini"), values)
