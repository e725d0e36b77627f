"""The command line: prices and the demo."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
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


def _aiscope(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from aiscope.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("args", [("anthropic/gpt-4o",), ("--provider", "nosuchprov", "gpt-4o")])
def test_prices_at_a_wrong_provider_is_an_error_naming_the_providers_that_have_it(
    args: tuple[str, ...],
) -> None:
    done = _aiscope("prices", *args)
    assert done.returncode == 1, done.stdout
    assert "providers that do: " in done.stderr and "openai" in done.stderr
    assert "2.5" not in done.stdout  # not OpenAI's input price under another provider


def test_prices_errors_go_to_stderr_and_json_stays_parseable() -> None:
    done = _aiscope("prices", "--json", "nosuch", "gpt-4o")
    assert done.returncode == 1
    data = json.loads(done.stdout)  # stdout is JSON alone
    assert data["nosuch"] is None and data["gpt-4o"]["input_mtok"] == 2.5
    assert "unknown model 'nosuch'" in done.stderr


def test_prices_suggests_the_model_meant() -> None:
    done = _aiscope("prices", "gpt4o")
    assert done.returncode == 1 and "did you mean gpt-4o" in done.stderr


def _taken_port() -> tuple[socket.socket, int]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, taken.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--db", "postgresql://postgres@127.0.0.1:1/x"), "database cannot be used"),
        (("serve", "--port", "70000"), "--port"),
        (("dashboard", "export", "-o", "/no/such/dir/x.json"), "/no/such/dir/x.json"),
        (("alerts", "export-prometheus", "-o", "/no/such/dir/x"), "/no/such/dir/x"),
        (("mock-provider", "--port", "{taken}"), "cannot listen on 127.0.0.1:{taken}"),
        (("serve", "--db", "sqlite:///{tmp}/s.db", "--port", "{taken}"), "cannot listen on"),
    ],
)
def test_cli_failures_are_one_line_on_stderr_and_exit_2(
    args: tuple[str, ...], words: str, tmp_path: object
) -> None:
    taken, port = _taken_port()
    with taken:
        fill = {"taken": str(port), "tmp": str(tmp_path)}
        done = _aiscope(*(a.format(**fill) for a in args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and words.format(**fill) in done.stderr
    assert "aiscope server on" not in done.stdout  # no banner for a server that never listened
