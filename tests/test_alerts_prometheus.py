"""The exported Prometheus rules: promtool accepts them, ``promtool test rules`` fires
each of the eight seed rules from synthetic series, and the in-process evaluator fires
exactly the same rules on the same workloads."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiscope.alerts import AlertRule, default_rules, export_prometheus_rules, signal_promql
from aiscope.alerts.rules import SEED_RULES
from alert_scenarios import MINUTES, SCENARIOS, Scenario, run_in_process, series_of
from conftest import require_binary

RULE_NAMES = [r.name for r in default_rules()]


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "aiscope-rules.yml"
    export_prometheus_rules(path)
    return path


def _exp_alert(rule: AlertRule, model: str) -> dict[str, Any]:
    labels = {"severity": rule.severity}
    where = ""
    if model:
        labels["model"] = model
        where = f" model={model}"
    return {
        "exp_labels": labels,
        "exp_annotations": {
            "summary": f"{rule.name}{where}: {rule.signal_name} {rule.comparison} "
            f"{rule.threshold:g}",
            "description": rule.description,
        },
    }


def _promtool_test(scenario: Scenario, expected: set[tuple[str, str]]) -> dict[str, Any]:
    by_name = {r.name: r for r in default_rules()}
    return {
        "interval": "1m",
        "input_series": [
            {"series": name, "values": " ".join(f"{v:g}" for v in values)}
            for name, values in sorted(series_of(scenario).items())
        ],
        "alert_rule_test": [
            {
                "eval_time": f"{MINUTES}m",
                "alertname": name,
                "exp_alerts": [
                    _exp_alert(by_name[name], model)
                    for rule_name, model in sorted(expected)
                    if rule_name == name
                ],
            }
            for name in RULE_NAMES
        ],
    }


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


def test_promtool_fires_the_same_rules_as_the_evaluator(tmp_path: Path) -> None:
    """One ``promtool test rules`` run: for every scenario and every one of the 16 rules,
    the alerts firing at the end are exactly the expected ones (none where none is
    expected) — the set the in-process evaluator fires (test above)."""
    tests = [_promtool_test(s, run_in_process(s)) for s in SCENARIOS]
    res = _run_promtool(tmp_path, tests)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert "SUCCESS" in res.stdout


def test_promtool_test_would_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The check above can fail: claiming the quiet workload fires a budget alert does."""
    quiet = next(s for s in SCENARIOS if s.name == "quiet")
    res = _run_promtool(tmp_path, [_promtool_test(quiet, {("daily_budget_warning", "")})])
    assert res.returncode != 0
    assert "daily_budget_warning" in res.stdout + res.stderr


def test_custom_signal_cannot_be_exported() -> None:
    rule = AlertRule("custom", "warning", lambda s: s.requests, ">", 1)
    with pytest.raises(ValueError, match="custom signal function cannot be exported"):
        signal_promql(rule)
    with pytest.raises(ValueError, match="has no label 'team'"):
        signal_promql(AlertRule("q", "warning", "quality", "<", 0.5, group_by=("team",)))
