"""A real Prometheus scrapes a process running a workload through aiscope and loads the
exported alert rules: every PromQL expression of the Grafana dashboard and of the rules
returns data (a non-empty result with a number in it) through Prometheus' HTTP API."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiscope
from aiscope.alerts import alert_promql, default_rules, export_prometheus_rules, signal_promql
from aiscope.client import AiClientError
from aiscope.dashboards import dashboard_queries, expand_variables, grafana_dashboard
from aiscope.resilience import CircuitBreaker, CircuitOpenError, RetryPolicy
from aiscope.testing import MockProvider
from tests.metrics.test_prometheus_e2e import (
    TIMEOUT_S,
    PromServer,
    _wait_for,
    _wait_for_scrape_after,
    run_prometheus,
)

pytestmark = pytest.mark.prometheus


def _workload(
    scope: aiscope.Scope,
    feedback: aiscope.FeedbackCollector,
    client: aiscope.AiClient,
    mock: MockProvider,
    bad: bool,
) -> None:
    """The same label combinations every time (so rates see every series twice); with
    ``bad`` the gpt-4o calls are slow, expensive and token-hungry and every answer is
    scored low, which sets off all eight default rules."""
    for i in range(10):
        gpt = i % 2 == 0
        slow = bad and gpt
        failed = i in (3, 7)
        stats = aiscope.record_call(
            "gpt-4o" if gpt else "claude-sonnet-4-5",
            "openai" if gpt else "anthropic",
            input_tokens=600_000 if slow else 500,
            output_tokens=10_000 if slow else 100,
            cache_read_tokens=100,
            latency_s=15.0 if slow else 0.4,
            time_to_first_token_s=0.2,
            cost_usd=30.0 if slow else None,
            status="error" if failed else "ok",
            error_type="RateLimitError" if failed else None,
            tags={"feature": "search" if gpt else "chat", "team": "growth"},
            scope=scope,
        )
        feedback.record(stats.request_id, score=0.2 if bad else 0.9, source="llm-judge")
    with warnings.catch_warnings():  # warned once per model, and known: it has no price
        warnings.simplefilter("ignore", aiscope.UnknownModelWarning)
        aiscope.record_call("alerts-e2e-llm", "self-hosted", input_tokens=9, scope=scope)
    # a real AiClient call that fails and is retried; the third failure opens the circuit
    mock.fail_next(500, times=2)
    with pytest.raises((AiClientError, CircuitOpenError)):
        client.chat().user("hi").execute_sync()


@pytest.fixture
def prometheus_with_rules(tmp_path: Path) -> Iterator[tuple[PromServer, aiscope.MetricsCollector]]:
    """A collector served on a free port, scraped by a Prometheus that evaluates the
    exported rules."""
    mc = aiscope.MetricsCollector()
    server, target_port = mc.serve(port=0, addr="127.0.0.1")
    export_prometheus_rules(tmp_path / "rules.yml")
    try:
        with run_prometheus(tmp_path, target_port, rule_files="[rules.yml]") as prom:
            yield prom, mc
    finally:
        server.shutdown()
        server.server_close()


def _has_number(result: list[dict[str, object]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)  # type: ignore[index]


@pytest.mark.slow
def test_every_dashboard_and_rule_expression_returns_data(
    prometheus_with_rules: tuple[PromServer, aiscope.MetricsCollector],
) -> None:
    prom, mc = prometheus_with_rules
    tracker = aiscope.CostTracker(budget_usd=10_000.0, window="daily")
    feedback = aiscope.FeedbackCollector(mc)
    scope = aiscope.Scope(metrics=mc, cost_tracker=tracker, feedback=feedback)
    with MockProvider(api_key="k") as mock:
        client = aiscope.AiClient(
            "openai/gpt-4o",
            api_key="k",
            base_url=mock.base_url("openai"),
            metrics=mc,
            cost_tracker=tracker,
            retry=RetryPolicy(max_retries=1, base_delay_s=0.01, max_delay_s=0.01),
            circuit_breaker=CircuitBreaker("openai", failure_threshold=3),
        )
        _workload(scope, feedback, client, mock, bad=False)
        _wait_for_scrape_after(prom, time.time())
        _wait_for_scrape_after(prom, time.time())  # every series has two samples
        _workload(scope, feedback, client, mock, bad=True)
        client.close()
    _wait_for_scrape_after(prom, time.time())
    every_rule = {r.name for r in default_rules()}

    def active() -> set[str]:
        return {r["metric"]["alertname"] for r in prom.query("ALERTS")}

    # the eight rules, in aggregate and per model, pending or firing in Prometheus
    _wait_for(
        "every rule to be active",
        lambda: active() == every_rule,
        TIMEOUT_S,
        lambda: f"active: {sorted(active())}\n{prom.log_tail()}",
    )

    queries: list[tuple[str, str]] = []
    for rule in default_rules():
        queries.append((f"rule {rule.name} (signal)", signal_promql(rule)))
        queries.append((f"rule {rule.name} (alert)", alert_promql(rule)))
    for title, expr in dashboard_queries(grafana_dashboard()):
        queries.append((f"panel {title!r}", expand_variables(expr, rate_interval="1m")))
    assert len(queries) == 32 + sum(1 for _ in dashboard_queries(grafana_dashboard()))
    empty = [f"{what}: {expr}" for what, expr in queries if not _has_number(prom.query(expr))]
    assert not empty, "no data for:\n" + "\n".join(empty)

    # the rules without a for-duration fire at once
    firing = {r["metric"]["alertname"] for r in prom.query('ALERTS{alertstate="firing"}')}
    assert {r.name for r in default_rules() if not r.for_s} <= firing


def test_dashboard_is_importable_json() -> None:
    import json

    d = json.loads(json.dumps(grafana_dashboard()))
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "model", "feature", "team"]
    assert d["templating"]["list"][0] == {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Cost Overview", "Latency", "Token Usage", "Quality", "Operational Health"]
    ids = [p["id"] for p in d["panels"]]
    assert len(set(ids)) == len(ids)
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
    # panels never overlap
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))
