"""The command line: alerts check / export-prometheus, dashboard export, alerts in the demo."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from aiscope.cli import app

runner = CliRunner()


def test_alerts_check_reports_what_the_workload_sets_off() -> None:
    result = runner.invoke(app, ["alerts", "check", "--requests", "20", "--json"])
    assert result.exit_code == 0, result.output
    found = {(a["rule"], a["labels"].get("model", "")): a for a in json.loads(result.output)}
    # the demo's simulated judge scores claude's answers in [0.3, 0.6]
    claude = found[("quality_critical_drop_by_model", "claude-sonnet-4-5")]
    assert 0.3 <= claude["value"] <= 0.6 and claude["state"] == "pending"
    assert ("quality_critical_drop_by_model", "gpt-4o") not in found
    assert not any(rule.startswith("daily_budget") for rule, _ in found)


def test_demo_prints_its_alerts() -> None:
    # wide enough that rich does not fold the table's cells
    result = runner.invoke(
        app, ["demo", "--requests", "20", "--no-prometheus"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "Alerts (default rules" in result.output
    line = next(x for x in result.output.splitlines() if "quality_critical_drop_by_model" in x)
    assert "model=claude-sonnet-4-5" in line and "pending" in line


def test_export_prometheus_rules(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["alerts", "export-prometheus", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rules = yaml.safe_load(out.read_text())["groups"][0]["rules"]
    assert len(rules) == 16 and rules[0]["alert"] == "daily_budget_warning"
    stdout = runner.invoke(app, ["alerts", "export-prometheus"]).output
    assert yaml.safe_load(stdout) == yaml.safe_load(out.read_text())


def test_dashboard_export(tmp_path: Path) -> None:
    out = tmp_path / "dash.json"
    result = runner.invoke(app, ["dashboard", "export", "--format", "grafana", "-o", str(out)])
    assert result.exit_code == 0, result.output
    dashboard = json.loads(out.read_text())
    assert dashboard["uid"] == "aiscope-llm" and dashboard["schemaVersion"] >= 39
    bad = runner.invoke(app, ["dashboard", "export", "--format", "datadog"])
    assert bad.exit_code == 2 and "unknown --format 'datadog'" in bad.output
