"""One check of the names aiscope gives Prometheus (issue 12 item 23): a metric namespace
is refused or accepted alike by MetricsCollector, the exported rules and the dashboard,
so a name that one accepts is one the others use unchanged."""

from __future__ import annotations

import pytest

import aiscope
from aiscope.alerts import AlertRule, export_prometheus_rules
from aiscope.dashboards import export_grafana_dashboard

BAD_NAMESPACES = ["bad-ns", "9lives", "", "ai lib", "ai_lib\n", "ai:lib", "é"]


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
def test_a_bad_namespace_is_refused_alike_by_metrics_rules_and_dashboards(namespace: str) -> None:
    messages = []
    for make in (
        lambda: aiscope.MetricsCollector(namespace=namespace),
        lambda: export_prometheus_rules(namespace=namespace),
        lambda: export_grafana_dashboard(namespace=namespace),
    ):
        with pytest.raises(ValueError, match="namespace must be") as err:
            make()
        messages.append(str(err.value))
    assert len(set(messages)) == 1 and repr(namespace) in messages[0]


def test_a_good_namespace_names_the_same_series_in_metrics_rules_and_dashboards() -> None:
    mc = aiscope.MetricsCollector(namespace="shop_llm")
    aiscope.record_call(
        "gpt-4o", "openai", input_tokens=1, latency_s=0.2, scope=aiscope.Scope(metrics=mc)
    )
    exposed = mc.export_prometheus()
    for text in (
        export_prometheus_rules(namespace="shop_llm"),
        export_grafana_dashboard(namespace="shop_llm"),
    ):
        assert "shop_llm_request_duration_seconds_bucket" in text
    assert "shop_llm_request_duration_seconds_bucket{" in exposed


@pytest.mark.parametrize("group", ["", "   ", " aiscope", "a\tb"])
def test_a_bad_rule_group_is_refused(group: str) -> None:
    with pytest.raises(ValueError, match="rule group name must"):
        export_prometheus_rules(group=group)


@pytest.mark.parametrize("name", ["p95-slow", "slow\n", "", "9slow", "slow alert"])
def test_a_bad_rule_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="rule name must be"):
        AlertRule(name, "warning", "requests", ">", 1)


@pytest.mark.parametrize("label", ["é", "__reserved", "my-tag", "status", "type"])
def test_a_tag_label_prometheus_cannot_take_or_aiscope_already_sets_is_refused(
    label: str,
) -> None:
    with pytest.raises(ValueError, match="tag_labels"):
        aiscope.MetricsCollector(tag_labels=(label,))


@pytest.mark.parametrize("interval", ["5 minutes", "", "0s", "1.5m", "m"])
def test_a_rule_group_interval_promtool_would_reject_is_refused(interval: str) -> None:
    with pytest.raises(ValueError, match="interval must be"):
        export_prometheus_rules(interval=interval)


def test_a_valid_rule_group_interval_is_written() -> None:
    assert "interval: 1m30s" in export_prometheus_rules(interval="1m30s")


@pytest.mark.parametrize("uid", ["", "has space", "x" * 41, "ü"])
def test_a_dashboard_uid_grafana_would_reject_is_refused(uid: str) -> None:
    with pytest.raises(ValueError, match="dashboard uid must be"):
        export_grafana_dashboard(uid=uid)
