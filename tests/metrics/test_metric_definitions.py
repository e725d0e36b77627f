"""The metric definitions are the one source of what aiscope exposes.

A collector's exposition (fast store and prometheus_client's own metrics) holds
exactly the defined metrics, with their types, help texts, labels and buckets; every
metric name and label the Grafana dashboard and the exported Prometheus rules query
is one the collector exposes; and docs/metrics.md lists every defined metric.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiscope import CallRecord, CostTracker, MetricsCollector, Usage
from aiscope.alerts import AlertRule, default_rules, prometheus_rules
from aiscope.alerts.rules import SIGNALS
from aiscope.dashboards import dashboard_queries, grafana_dashboard
from aiscope.metric_definitions import (
    DEFAULT_NAMESPACE,
    METRICS,
    QUALITY_SCORE,
    REQUEST_DURATION,
    MetricDefinition,
)
from aiscope.resilience import CircuitBreaker

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _populated(namespace: str, tags: tuple[str, ...], native: bool) -> MetricsCollector:
    """A collector with a sample in every metric it has."""
    mc = MetricsCollector(
        namespace=namespace,
        tag_labels=tags,
        native_metrics=native,
        label_allowlist={"model": ["gpt-4o"]},  # another model is folded into "other"
    )
    for i, status in enumerate(("ok", "error")):
        mc.on_record(
            CallRecord(
                model="gpt-4o",
                provider="openai",
                latency_s=0.3 + i,
                time_to_first_token_s=0.1,
                status=status,
                error_type="RateLimitError" if status == "error" else None,
                usage=Usage(100, 20, 10, 5, 3),
                cost_usd=None if i else 0.01,
                cost_status="unknown_model" if i else "ok",
                tags={t: f"{t}-value" for t in tags},
            )
        )
    mc.call_started("gpt-4o", "openai")
    mc.count_retry("gpt-4o", "openai", "RateLimitError")
    mc.watch_circuit(CircuitBreaker("openai"), "openai")
    mc.circuit_transition("anthropic", "closed", "open")
    mc.rate_limit_wait("openai", 0.5)
    mc.watch_budget(CostTracker(budget_usd=5.0, window="daily"))
    mc.observe_quality(0.8, "gpt-4o", "search", "human")
    mc.on_record(CallRecord(model="another-model", provider="openai", latency_s=0.1))
    return mc


def _families(mc: MetricsCollector) -> dict[str, tuple[str, str, set[str], set[str]]]:
    """family name -> (type, help, label names, sample names). The text format prints
    a counter's or histogram's ``_created`` samples as a gauge family of their own:
    they are counted as the samples of the family they belong to."""
    out: dict[str, tuple[str, str, set[str], set[str]]] = {}
    created: list[tuple[str, set[str]]] = []
    for f in text_string_to_metric_families(mc.export_prometheus()):
        names = {s.name for s in f.samples}
        if f.name.endswith("_created") and f.type == "gauge":
            created.append((f.name.removesuffix("_created"), names))
            continue
        labels = {k for s in f.samples for k in s.labels if k != "le"}
        out[f.name] = (f.type, f.documentation, labels, names)
    for owner, names in created:
        out[owner][3].update(names)
    return out


CASES = [
    (DEFAULT_NAMESPACE, ("feature", "team"), False),
    (DEFAULT_NAMESPACE, ("feature", "team"), True),
    ("myapp", ("feature", "tenant", "region"), False),
    ("myapp", ("feature", "tenant", "region"), True),
]


@pytest.mark.parametrize(("namespace", "tags", "native"), CASES)
def test_the_exposition_is_the_definitions(
    namespace: str, tags: tuple[str, ...], native: bool
) -> None:
    mc = _populated(namespace, tags, native)
    families = _families(mc)
    # the text parser names a counter's family without _total: as the definitions do
    assert set(families) == {d.name_in(namespace) for d in METRICS}
    for d in METRICS:
        kind, help_text, labels, samples = families[d.name_in(namespace)]
        assert (kind, help_text) == (d.kind, d.help), d.name
        assert labels == set(d.label_names(tags)), d.name
        assert samples <= set(d.sample_names(namespace)), d.name
    text = mc.export_prometheus()
    for d in (REQUEST_DURATION, QUALITY_SCORE):
        bucket = re.escape(d.series(namespace, "bucket"))
        bounds = re.findall(rf'^{bucket}\{{[^}}]*le="([^"]+)"', text, flags=re.MULTILINE)
        assert sorted({float(b) for b in bounds if b != "+Inf"}) == list(d.buckets), d.name


def _metric_refs(expr: str, namespace: str) -> list[tuple[str, set[str]]]:
    """(metric name, labels in its selector) for every metric an expression reads."""
    out = []
    for m in re.finditer(rf"\b({re.escape(namespace)}_[a-z_]+)(\{{[^}}]*\}})?", expr):
        labels = set(re.findall(r"([a-z_]+)\s*[=!]~?", m.group(2) or ""))
        out.append((m.group(1), labels))
    return out


@pytest.mark.parametrize("namespace", [DEFAULT_NAMESPACE, "myapp"])
def test_dashboard_and_rules_query_only_what_the_collector_exposes(namespace: str) -> None:
    exposed: dict[str, set[str]] = {}
    for _kind, _help, labels, samples in _families(
        _populated(namespace, ("feature", "team"), False)
    ).values():
        for name in samples:
            exposed[name] = labels
    dashboard = grafana_dashboard(namespace=namespace)
    exprs = [expr for _title, expr in dashboard_queries(dashboard)]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    every_signal = [
        AlertRule(f"r{i}", "warning", s, ">", 5000.0 if s.startswith("latency") else 1.0)
        for i, s in enumerate(SIGNALS)
    ]
    by_feature = [r.by("feature") for r in every_signal]
    rules = [*default_rules(), *every_signal, *by_feature]
    for group in prometheus_rules(rules, namespace=namespace)["groups"]:
        exprs += [r["expr"] for r in group["rules"]]
    refs = [ref for expr in exprs for ref in _metric_refs(expr, namespace)]
    assert len({name for name, _ in refs}) >= 15  # the parsing found the queries' metrics
    for name, labels in refs:
        assert name in exposed, f"{name} is queried but not exposed"
        assert labels <= exposed[name], (name, labels - exposed[name])


def _docs_rows() -> dict[str, tuple[str, str]]:
    """metric name -> (type, labels) from docs/metrics.md's table."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[name] = (cells[1], cells[2])
    return rows


def _documented_name(d: MetricDefinition) -> str:
    return d.series() if d.kind == "counter" else d.name_in()


def test_docs_list_every_metric_with_its_type_and_labels() -> None:
    rows = _docs_rows()
    for d in METRICS:
        assert _documented_name(d) in rows, f"docs/metrics.md does not list {d.name}"
        kind, labels = rows[_documented_name(d)]
        assert kind == d.kind, d.name
        # the label cell may explain values in parentheses: "type (`input`, ...)"
        named = [c.strip() for c in re.sub(r"\([^)]*\)", "", labels).split(",")]
        assert named == list(d.label_names()), d.name
