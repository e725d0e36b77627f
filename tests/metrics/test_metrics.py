"""MetricsCollector on its own: names, labels, bounds, percentiles, failure isolation."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import aiscope
from aiscope import CallRecord, MetricsCollector, Scope, Usage


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_seed_names_and_values() -> None:
    metrics = MetricsCollector()
    scope = Scope(metrics=metrics)
    aiscope.record_call(
        "gpt-4o",
        "openai",
        input_tokens=100,
        output_tokens=20,
        cache_read_tokens=40,
        latency_s=0.7,
        time_to_first_token_s=0.1,
        tags={"feature": "search", "team": "growth"},
        scope=scope,
    )
    aiscope.record_call(
        "gpt-4o",
        "openai",
        latency_s=0.2,
        status="error",
        error_type="RateLimitError",
        scope=scope,
    )
    s = _samples(metrics.export_prometheus())
    base = (("feature", "search"), ("model", "gpt-4o"), ("provider", "openai"), ("team", "growth"))
    assert s[("ai_lib_requests_total", tuple(sorted((*base, ("status", "ok")))))] == 1
    assert s[("ai_lib_tokens_total", tuple(sorted((*base, ("type", "input")))))] == 100
    assert s[("ai_lib_tokens_total", tuple(sorted((*base, ("type", "cache_read")))))] == 40
    assert s[("ai_lib_request_duration_seconds_count", base)] == 1
    assert (
        s[("ai_lib_request_duration_seconds_bucket", tuple(sorted((*base, ("le", "0.64")))))] == 0
    )
    assert (
        s[("ai_lib_request_duration_seconds_bucket", tuple(sorted((*base, ("le", "1.28")))))] == 1
    )
    assert s[("ai_lib_time_to_first_token_seconds_sum", base)] == pytest.approx(0.1)
    assert s[("ai_lib_cost_usd_total", base)] == pytest.approx(
        0.0004
    )  # 60 x 2.5 + 40 x 1.25 + 20 x 10 per MTok
    nobase = (("feature", ""), ("model", "gpt-4o"), ("provider", "openai"), ("team", ""))
    assert (
        s[("ai_lib_errors_total", tuple(sorted((*nobase, ("error_type", "RateLimitError")))))] == 1
    )
    assert s[("ai_lib_requests_total", tuple(sorted((*nobase, ("status", "error")))))] == 1


def test_own_registry_by_default_global_on_request() -> None:
    a, b = MetricsCollector(), MetricsCollector()  # two collectors never clash
    assert a.registry is not b.registry and a.registry is not REGISTRY
    reg = CollectorRegistry()
    assert MetricsCollector(registry=reg).registry is reg
    with pytest.raises(ValueError, match="registry"):
        MetricsCollector(registry=reg, use_global_registry=True)


def test_label_values_are_capped_and_counted() -> None:
    metrics = MetricsCollector(max_label_values=3)
    scope = Scope(metrics=metrics)
    for i in range(10):
        aiscope.record_call(f"model-{i}", "acme", latency_s=0.1, cost_usd=0.0, scope=scope)
    s = _samples(metrics.export_prometheus())
    models = {dict(k[1]).get("model") for k in s if k[0] == "ai_lib_requests_total"}
    assert models == {"model-0", "model-1", "model-2", "other"}
    assert s[("ai_lib_label_overflow_total", (("label", "model"),))] == 7
    assert metrics.latency_percentiles("model-9").count == 0  # folded into other
    assert metrics.latency_percentiles("other").count == 7


def test_allowlist() -> None:
    metrics = MetricsCollector(label_allowlist={"feature": ["search", "chat"]})
    scope = Scope(metrics=metrics)
    for f in ("search", "chat", "secret-user-123"):
        aiscope.record_call("gpt-4o", "openai", tags={"feature": f}, scope=scope)
    text = metrics.export_prometheus()
    assert 'feature="other"' in text and "secret-user-123" not in text


def test_custom_tag_labels() -> None:
    metrics = MetricsCollector(tag_labels=("feature", "team", "tenant"))
    scope = Scope(metrics=metrics)
    aiscope.record_call("gpt-4o", "openai", tags={"tenant": "acme"}, scope=scope)
    assert 'tenant="acme"' in metrics.export_prometheus()
    with pytest.raises(ValueError, match="tag_labels"):
        MetricsCollector(tag_labels=("model",))


def test_inflight_and_budget_gauges() -> None:
    metrics = MetricsCollector()
    tracker = aiscope.CostTracker(budget_usd=2.0)
    scope = Scope(metrics=metrics, cost_tracker=tracker)
    pending = scope.begin("gpt-4o", "openai", 1000, 500)
    assert (
        'ai_lib_inflight_requests{model="gpt-4o",provider="openai"} 1.0'
        in metrics.export_prometheus()
    )
    scope.emit(CallRecord(model="gpt-4o", provider="openai", usage=Usage(1000, 500)), pending)
    text = metrics.export_prometheus()
    assert 'ai_lib_inflight_requests{model="gpt-4o",provider="openai"} 0.0' in text
    assert 'ai_lib_budget_spent_usd{budget="default",window="total"} 0.0075' in text
    assert 'ai_lib_budget_limit_usd{budget="default",window="total"} 2.0' in text


def test_a_failing_sink_never_reaches_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def on_record(self, record: CallRecord) -> None:
            raise RuntimeError("exporter down")

    metrics = MetricsCollector()
    scope = Scope(metrics=metrics, sinks=[Broken()])
    for _ in range(3):
        aiscope.record_call("gpt-4o", "openai", scope=scope)
    assert scope.sink_errors == {"Broken": 3}
    assert metrics.latency_percentiles().count == 3
    assert sum("Broken" in r.getMessage() for r in caplog.records) == 1  # logged once, not per call


def test_label_combinations_are_capped() -> None:
    metrics = MetricsCollector(max_label_values=50, max_series=10)
    scope = Scope(metrics=metrics)
    for i in range(40):
        aiscope.record_call(
            f"m{i % 8}", "acme", cost_usd=0.0, tags={"feature": f"f{i % 5}"}, scope=scope
        )
    s = _samples(metrics.export_prometheus())
    series = [k for k in s if k[0] == "ai_lib_requests_total"]
    assert len(series) == 11  # ten combinations, then everything else under "other"
    assert sum(s[k] for k in series) == 40
    assert s[("ai_lib_label_overflow_total", (("label", "series"),))] == 30  # calls folded
