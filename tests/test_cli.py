"""The command line: prices and the demo."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aiscope.cli import app

runner = CliRunner()


def test_prices_json() -> None:
    result = runner.invoke(app, ["prices", "gpt-4o", "anthropic/claude-sonnet-4-5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["gpt-4o"]["input_mtok"] == 2.5 and data["gpt-4o"]["output_mtok"] == 10
    assert data["anthropic/claude-sonnet-4-5"]["cache_write_mtok"] == 3.75


def test_prices_unknown_model_exits_1() -> None:
    result = runner.invoke(app, ["prices", "definitely-not-a-model"])
    assert result.exit_code == 1
    assert "unknown model" in result.output


def test_prices_bad_override_file(tmp_path: object) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "p.yaml"
    p.write_text("m:\n  input_mtok: 1\n  outptu_mtok: 2\n")
    result = runner.invoke(app, ["prices", "m", "--overrides", str(p)])
    assert result.exit_code == 2
    assert "outptu_mtok" in result.output


def test_demo_prints_breakdowns_and_metrics() -> None:
    result = runner.invoke(app, ["demo", "--requests", "20"])
    assert result.exit_code == 0, result.output
    for text in (
        "Cost by model",
        "Cost by feature",
        "Cost by team",
        "p95",
        "gpt-4o",
        "claude-sonnet-4-5",
        "ai_lib_requests_total{",
        # the same workload sent to the aiscope server over OTLP, and checked
        "server totals match the CostTracker",
        "Dashboard: http://127.0.0.1:",
    ):
        assert text in result.output


def test_demo_without_the_server() -> None:
    result = runner.invoke(app, ["demo", "--requests", "5", "--no-server", "--no-prometheus"])
    assert result.exit_code == 0, result.output
    assert "Cost by model" in result.output and "Dashboard" not in result.output
