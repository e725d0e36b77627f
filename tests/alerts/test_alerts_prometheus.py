"""The exported Prometheus rules: promtool accepts them, ``promtool test rules`` (the
shipped ``tests/alerts/promtool/aiscope-rules.test.yml``) fires each of the 16 rules from
synthetic series and no others, and the in-process evaluator fires exactly the same
rules on the same workloads."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiscope.alerts import AlertRule, default_rules, export_prometheus_rules, signal_promql
from aiscope.alerts.prometheus import check_latency_threshold
from aiscope.alerts.rules import SEED_RULES
from aiscope.metrics.collector import DURATION_BUCKETS
from tests.alerts.alert_scenarios import (
    RULES_FILE,
    SCENARIOS,
    TESTS_FILE,
    Scenario,
    promtool_test,
    promtool_tests_text,
    run_in_process,
)
from tests.conftest import require_binary

RULE_NAMES = [r.name for r in default_rules()]


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "aiscope-rules.yml"
    export_prometheus_rules(path)
    return path


def _run_promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    rules = _rules_file(tmp_path)
    test_file = tmp_path / "aiscope-rules.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
            width=100_000,
        )
    )
    return subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_promtool_checks_the_exported_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    res = subprocess.run(
        [promtool, "check", "rules", str(_rules_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 16 rules found" in res.stdout


def test_scenarios_fire_each_of_the_eight_rules() -> None:
    fired = {name.removesuffix("_by_model") for s in SCENARIOS for name, _ in s.expected}
    assert fired == {r.name for r in SEED_RULES}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_in_process_evaluator_fires_the_expected_rules(scenario: Scenario) -> None:
    assert run_in_process(scenario) == scenario.expected


def test_shipped_rules_file_is_what_aiscope_exports() -> None:
    assert RULES_FILE.read_text(encoding="utf-8") == export_prometheus_rules(), (
        "tests/alerts/promtool/aiscope-rules.yml is stale: "
        "run python tests/alerts/alert_scenarios.py"
    )


def test_shipped_promtool_tests_are_the_scenarios() -> None:
    assert TESTS_FILE.read_text(encoding="utf-8") == promtool_tests_text(), (
        "tests/alerts/promtool/aiscope-rules.test.yml is stale: "
        "run python tests/alerts/alert_scenarios.py"
    )


def test_shipped_promtool_tests_cover_every_exported_rule_firing_and_silent() -> None:
    exported = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    names = {r["alert"] for g in exported["groups"] for r in g["rules"]}
    doc = yaml.safe_load(TESTS_FILE.read_text(encoding="utf-8"))
    fires: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for check in test["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    assert names == set(RULE_NAMES)
    assert fires == names, f"never expected to fire: {sorted(names - fires)}"
    assert silent == names, f"never expected to stay silent: {sorted(names - silent)}"


def test_promtool_passes_the_shipped_rule_tests() -> None:
    """``promtool test rules`` on the shipped file: for every scenario and every one of
    the 16 rules, the alerts firing at the end are exactly the expected ones (none where
    none is expected), the set the in-process evaluator fires (test above)."""
    promtool = require_binary("promtool")
    res = subprocess.run(
        [promtool, "test", "rules", str(TESTS_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert "SUCCESS" in res.stdout


def test_promtool_test_would_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The check above can fail: claiming the quiet workload fires a budget alert does."""
    quiet = next(s for s in SCENARIOS if s.name == "quiet")
    res = _run_promtool(tmp_path, [promtool_test(quiet, {("daily_budget_warning", "")})])
    assert res.returncode != 0
    assert "daily_budget_warning" in res.stdout + res.stderr


def test_every_call_at_5_5s_fires_the_p95_warning_and_not_the_p99_critical() -> None:
    """Issue 12 item 2: in process the p99 of calls all at 5.5 s read 10.19 s (interpolated
    in the 5.12..10.24 s bucket) and raised the critical alert."""
    scenario = next(s for s in SCENARIOS if s.name == "every_call_5_5s")
    fired = run_in_process(scenario)
    assert ("p95_latency_warning", "") in fired
    assert not any(name.startswith("p99_latency_critical") for name, _ in fired)


@pytest.mark.parametrize("rule", [r for r in default_rules() if "latency" in r.name])
def test_every_default_latency_threshold_is_a_duration_bucket_boundary(rule: AlertRule) -> None:
    assert rule.threshold / 1000.0 in DURATION_BUCKETS


def test_a_latency_threshold_between_buckets_is_refused_naming_the_fix() -> None:
    rule = AlertRule("slow", "warning", "latency_p95_ms", ">", 3000, window="5m")
    with pytest.raises(ValueError, match=r"'slow'.*3000 ms is not a bucket boundary.*add 3 "):
        export_prometheus_rules(rules=[rule])
    # with the buckets the collector really has, it is exported
    text = export_prometheus_rules(rules=[rule], duration_buckets=(1.0, 3.0, 10.0))
    assert "> 3000.0" in text
    check_latency_threshold(rule, (3.0,))


def test_custom_signal_cannot_be_exported() -> None:
    rule = AlertRule("custom", "warning", lambda s: s.requests, ">", 1)
    with pytest.raises(ValueError, match="custom signal function cannot be exported"):
        signal_promql(rule)
    with pytest.raises(ValueError, match="has no label 'team'"):
        signal_promql(AlertRule("q", "warning", "quality", "<", 0.5, group_by=("team",)))
