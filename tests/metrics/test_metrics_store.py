"""The fast metric store prints what prometheus_client's own metrics print.

The same records go through a MetricsCollector on its flat per-series store and
through one on prometheus_client's Counter/Histogram/Gauge (``native_metrics=True``,
what multiprocess mode uses); every sample must match, and the percentiles from
the inline DDSketch binning must equal a DDSketch fed the same values.
"""

from __future__ import annotations

import math
import random

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping
from prometheus_client.parser import text_string_to_metric_families

from aiscope import CallRecord, MetricsCollector, Usage
from aiscope.sketch import key_function


def _records(n: int, seed: int = 3) -> list[CallRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        failed = rng.random() < 0.1
        streamed = rng.random() < 0.5
        lat = rng.choice([0.0, 0.005, 0.16, 1.28, 90.0, rng.lognormvariate(0, 1.2)])
        tin = rng.randrange(0, 5000)
        out.append(
            CallRecord(
                model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"]),
                provider=rng.choice(["openai", "anthropic"]),
                latency_s=lat,
                time_to_first_token_s=lat * rng.random() if streamed else None,
                status="error" if failed else "ok",
                error_type=rng.choice([None, "RateLimitError", "Timeout"]) if failed else None,
                usage=Usage(tin, rng.randrange(0, 900), tin // 3, tin // 5, 0),
                cost_usd=rng.choice([None, 0.0, rng.random() / 100]),
                cost_status=rng.choice(["ok", "unknown_model"]),
                tags=rng.choice(
                    [{}, {"feature": "search"}, {"feature": f"f{i % 7}", "team": "core"}]
                ),
            )
        )
    return out


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = 1.0 if s.name.endswith("_created") else s.value  # creation times differ
            out[(s.name, tuple(sorted(s.labels.items())))] = value
    return out


def test_fast_store_exposition_equals_prometheus_client_metrics() -> None:
    fast = MetricsCollector(max_label_values=5, max_series=40)
    native = MetricsCollector(max_label_values=5, max_series=40, native_metrics=True)
    for r in _records(3000):
        fast.on_record(r)
        native.on_record(r)
    for c in (fast, native):
        c.call_started("gpt-4o", "openai")
        c.call_started("gpt-4o", "openai")
        c.call_finished("gpt-4o", "openai")
        c.call_started("model-x", "acme")
    got, want = _samples(fast.export_prometheus()), _samples(native.export_prometheus())
    assert set(got) == set(want), set(got) ^ set(want)
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), (key, got[key], value)
    # the caps really were hit, in both
    assert got[("ai_lib_label_overflow_total", (("label", "series"),))] > 0
    assert fast.latency_percentiles() == native.latency_percentiles()
    assert fast.ttft_percentiles("gpt-4o") == native.ttft_percentiles("gpt-4o")


def test_inline_binning_matches_ddsketch() -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(-1, 2) for _ in range(20_000)] + [0.0, 1e-9, 3600.0]
    mc = MetricsCollector()
    sk = DDSketch(0.01)
    for v in values:
        mc.on_record(CallRecord(model="m", provider="p", latency_s=v))
        sk.add(v * 1000.0)  # the bins are in milliseconds
    got = mc.latency_percentiles("m")
    assert got.count == len(values)
    for q, mine in ((0.5, got.p50_ms), (0.95, got.p95_ms), (0.99, got.p99_ms)):
        assert mine == sk.get_quantile_value(q)


def test_key_function_is_ddsketchs_mapping() -> None:
    multiplier, smallest = key_function(0.02)
    mapping = LogarithmicMapping(0.02)
    rng = random.Random(5)
    for _ in range(10_000):
        v = math.exp(rng.uniform(-20, 12))
        assert math.ceil(math.log(v) / math.log(2.0) * multiplier) == mapping.key(v)
    assert smallest == mapping.min_possible


def test_bins_have_a_hard_bound_and_keep_the_high_quantiles() -> None:
    # values over 20 orders of magnitude need ~2,300 bins at 1%; the cap folds the
    # lowest ones, so memory is bounded and p95/p99 stay within 1%
    mc = MetricsCollector()
    rng = random.Random(2)
    values = [10.0 ** rng.uniform(-15, -6) for _ in range(2000)]
    values += [rng.uniform(1.0, 2.0) for _ in range(100_000)]
    values += [10.0 ** rng.uniform(4, 5) for _ in range(500)]
    for v in values:
        mc.on_record(CallRecord(model="m", provider="p", latency_s=v))
    bins = mc._latency["m"]
    assert len(bins.counts) == bins.limit == 2048  # full: it did fold
    got = mc.latency_percentiles("m")
    assert got.count == len(values)
    ordered = sorted(values)
    for q, mine in ((0.95, got.p95_ms), (0.99, got.p99_ms)):
        exact = ordered[round(q * (len(ordered) - 1))] * 1000.0
        assert mine is not None and abs(mine - exact) <= 0.011 * exact, (q, mine, exact)
