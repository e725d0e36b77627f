"""The command line: alerts check / export-prometheus, dashboard export, alerts in the demo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aiscope.cli import app
from tests.conftest import require_binary

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


RULES_YAML = """\
rules:
  - name: judge_unhappy
    severity: critical
    signal: quality
    comparison: "<"
    threshold: 0.6
    window: 1h
    group_by: [model]
  - name: any_traffic
    severity: info
    signal: requests
    comparison: ">"
    threshold: 5
    window: 10m
    for: 1m
"""


def test_rules_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULES_YAML)
    result = runner.invoke(
        app, ["alerts", "check", "--requests", "12", "--json", "--rules", str(path)]
    )
    assert result.exit_code == 0, result.output
    found = {
        (a["rule"], a["labels"].get("model", ""), a["state"]) for a in json.loads(result.output)
    }
    assert found == {
        ("judge_unhappy", "claude-sonnet-4-5", "firing"),
        ("any_traffic", "", "pending"),
    }
    out = tmp_path / "out.yml"
    result = runner.invoke(
        app, ["alerts", "export-prometheus", "--rules", str(path), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    (group,) = yaml.safe_load(out.read_text())["groups"]
    assert [r["alert"] for r in group["rules"]] == ["judge_unhappy", "any_traffic"]
    assert group["rules"][1]["for"] == "1m"


def test_a_bad_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULES_YAML.replace("window: 10m", "windw: 10m"))
    result = runner.invoke(app, ["alerts", "check", "--rules", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "rules.yml: rules[1]: unknown key 'windw'" in result.output
    path.write_text(RULES_YAML.replace("threshold: 0.6", "threshold: high"))
    result = runner.invoke(
        app, ["alerts", "export-prometheus", "--rules", str(path)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2 and "rules[0]: threshold must be a finite number" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alerts", "export-prometheus", "--namespace", "bad-ns"], "did you mean 'bad_ns'?"),
        (["alerts", "export-prometheus", "--group", ""], "rule group name must not be empty"),
        (["alerts", "export-prometheus", "--group", " "], "rule group name must not be empty"),
        (["dashboard", "export", "--namespace", "bad-ns"], "got 'bad-ns'"),
        (["alerts", "export-prometheus", "--duration-buckets", "1,x"], "'x' is not a number"),
    ],
)
def test_a_name_promtool_or_prometheus_would_refuse_exits_2_naming_it(
    args: list[str], message: str
) -> None:
    """Issue 12 item 23: --namespace bad-ns and --group '' exited 0 with a file promtool
    rejects (and rules that never match MetricsCollector's escaped bad_ns_ names)."""
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "error:" in result.stderr
    assert result.stdout == ""  # no half-written file on stdout


def test_export_prometheus_writes_what_promtool_accepts_for_a_valid_namespace(
    tmp_path: Path,
) -> None:
    promtool = require_binary("promtool")
    out = tmp_path / "rules.yml"
    args = ["alerts", "export-prometheus", "--namespace", "shop_llm", "--group", "shop llm"]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "shop_llm_request_duration_seconds_bucket" in out.read_text()
    check = subprocess.run(
        [promtool, "check", "rules", str(out)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_latency_rule_off_the_default_buckets_exports_with_the_collectors_buckets(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "- {name: slow, severity: warning, signal: latency_p95_ms, comparison: '>', "
        "threshold: 3000}\n"
    )
    result = runner.invoke(app, ["alerts", "export-prometheus", "--rules", str(path)])
    assert result.exit_code == 2 and "add 3 to the buckets" in result.stderr
    result = runner.invoke(
        app, ["alerts", "export-prometheus", "--rules", str(path), "--duration-buckets", "1,3,10"]
    )
    assert result.exit_code == 0, result.output
    assert "> 3000.0" in result.stdout
