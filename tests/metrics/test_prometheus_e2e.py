"""End to end with the real Prometheus tools: promtool lints the exposition, a real
Prometheus server scrapes ``serve()`` and answers PromQL, and multiprocess mode
aggregates the calls of several worker processes. No mocks."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import aiscope
from aiscope.metrics.collector import DURATION_BUCKETS
from tests.conftest import require_binary

pytestmark = pytest.mark.prometheus

SCRAPE_JOB = "aiscope"
TIMEOUT_S = 20.0


# -- helpers --------------------------------------------------------------------------------
def _promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _assert_lint_clean(text: str) -> None:
    res = _promtool_check(text)
    report = f"promtool said:\n{res.stdout}{res.stderr}"
    assert res.returncode == 0, report
    # Exit code 0 still allows lint warnings; ours must have none.
    assert res.stdout.strip() == "", report
    assert res.stderr.strip() == "", report


def _sums(text: str, sample: str, by: str, **match: str) -> dict[str, float]:
    """sum by (``by``) of ``sample`` over the series whose labels match ``match``."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name != sample or any(s.labels.get(k) != v for k, v in match.items()):
                continue
            key = s.labels[by]
            out[key] = out.get(key, 0.0) + s.value
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, probe: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{why()}")


def bucket_quantile(q: float, upper_bounds: list[float], cumulative: list[float]) -> float:
    """Prometheus's ``histogram_quantile`` on one set of cumulative buckets (the
    last bound is +Inf): linear interpolation inside the bucket holding the rank,
    as in promql/quantile.go ``bucketQuantile``."""
    assert math.isinf(upper_bounds[-1])
    assert cumulative[-1] > 0
    observations = cumulative[-1]
    rank = q * observations
    # the first bucket, +Inf excluded, whose cumulative count reaches the rank
    b = next((i for i in range(len(cumulative) - 1) if cumulative[i] >= rank), len(cumulative) - 1)
    if b == len(cumulative) - 1:
        return upper_bounds[-2]
    start, end, count = 0.0, upper_bounds[b], cumulative[b]
    if b > 0:
        start = upper_bounds[b - 1]
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    return start + (end - start) * (rank / count)


def _cumulative(latencies: list[float]) -> tuple[list[float], list[float]]:
    bounds = [*DURATION_BUCKETS, math.inf]
    return bounds, [float(sum(1 for x in latencies if x <= le)) for le in bounds]


# -- 1. promtool lints the exposition -----------------------------------------------------
def _varied_workload(scope: aiscope.Scope) -> None:
    for i in range(40):
        aiscope.record_call(
            "gpt-4o",
            "openai",
            input_tokens=200 + i,
            output_tokens=30,
            cache_read_tokens=50,
            cache_write_tokens=10,
            reasoning_tokens=5 if i % 2 else 0,
            latency_s=0.02 * i,
            time_to_first_token_s=0.003 * i,
            tags={"feature": "search", "team": "growth"},
            scope=scope,
        )
        failed = i % 4 == 0
        aiscope.record_call(
            "claude-sonnet-4-20250514",
            "anthropic",
            input_tokens=80,
            output_tokens=0 if failed else 15,
            latency_s=0.4 + i / 10,
            status="error" if failed else "ok",
            error_type="RateLimitError" if failed else None,
            tags={"feature": "chat"},
            scope=scope,
        )
    with aiscope.llm_call("gpt-4o-mini", "openai", scope=scope, team="infra") as call:
        call.first_token()
        call.set_usage(input_tokens=12, output_tokens=3)
    with (
        pytest.raises(TimeoutError),
        aiscope.llm_call("gpt-4o-mini", "openai", scope=scope, feature="search"),
    ):
        raise TimeoutError
    with pytest.warns(aiscope.UnknownModelWarning):
        aiscope.record_call("in-house-llm", "self-hosted", input_tokens=9, scope=scope)


def test_promtool_accepts_a_varied_workload() -> None:
    mc = aiscope.MetricsCollector()
    tracker = aiscope.CostTracker(budget_usd=25.0, window="daily")
    _varied_workload(aiscope.Scope(metrics=mc, cost_tracker=tracker))
    text = mc.export_prometheus()
    # the workload reached every family promtool is asked about
    for name in (
        "ai_lib_requests_total",
        "ai_lib_request_duration_seconds_bucket",
        "ai_lib_time_to_first_token_seconds_bucket",
        'type="cache_read"',
        'type="reasoning"',
        'ai_lib_errors_total{error_type="RateLimitError"',
        'error_type="TimeoutError"',
        "ai_lib_cost_usd_total",
        'ai_lib_unpriced_requests_total{model="in-house-llm"',
        "ai_lib_inflight_requests",
        'ai_lib_budget_remaining_usd{budget="default",window="daily"}',
    ):
        assert name in text
    _assert_lint_clean(text)


def test_promtool_rejects_broken_exposition() -> None:
    """The lint check above would catch a real problem (promtool is not a no-op)."""
    res = _promtool_check('# TYPE x counter\nx{a="1" 1\n')
    assert res.returncode != 0


# -- 2. a real Prometheus server ----------------------------------------------------------
@dataclass
class PromServer:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if path.startswith("/api/") else body.decode()

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def by(self, promql: str, label: str) -> dict[str, float]:
        """An instant vector as {value of ``label``: sample value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "prometheus log (tail):\n" + "\n".join(lines[-30:])


@dataclass
class Target:
    collector: aiscope.MetricsCollector
    tracker: aiscope.CostTracker
    scope: aiscope.Scope
    port: int


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """A collector served on a free port, as the scrape target."""
    mc = aiscope.MetricsCollector()
    tracker = aiscope.CostTracker()
    server, port = mc.serve(port=0, addr="127.0.0.1")
    try:
        yield Target(mc, tracker, aiscope.Scope(metrics=mc, cost_tracker=tracker), port)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def prometheus(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    """A real Prometheus scraping ``target`` every second, ready and with the target up."""
    with run_prometheus(tmp_path_factory.mktemp("prometheus"), target.port) as server:
        yield server


@contextmanager
def run_prometheus(tmp: Path, target_port: int, rule_files: str = "[]") -> Iterator[PromServer]:
    """Prometheus on a free loopback port, scraping ``target_port`` (and evaluating
    ``rule_files``, paths relative to ``tmp``) every second; stopped on exit."""
    binary = require_binary("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: {rule_files}
            scrape_configs:
              - job_name: {SCRAPE_JOB}
                scrape_interval: 1s
                scrape_timeout: 1s
                static_configs:
                  - targets: ["127.0.0.1:{target_port}"]
            """
        )
    )
    port = _free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    server = PromServer(f"http://127.0.0.1:{port}", log, proc)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}\n{server.log_tail()}")
            try:
                return "Ready" in server.get("/-/ready")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        def target_up() -> bool:
            return server.by(f'up{{job="{SCRAPE_JOB}"}}', "job") == {SCRAPE_JOB: 1.0}

        _wait_for("prometheus /-/ready", ready, TIMEOUT_S, server.log_tail)
        _wait_for(
            "the aiscope target to be up",
            target_up,
            TIMEOUT_S,
            lambda: f"{server.get('/api/v1/targets')}\n{server.log_tail()}",
        )
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_for_scrape_after(prom: PromServer, t: float) -> None:
    """Block until Prometheus has a scrape of the target that started after ``t``
    (so every sample in it was gathered after the workload ended)."""

    def scraped() -> bool:
        got = prom.by(f'timestamp(up{{job="{SCRAPE_JOB}"}})', "job")
        return got.get(SCRAPE_JOB, 0.0) > t

    _wait_for("a scrape after the workload", scraped, TIMEOUT_S, prom.log_tail)


def test_prometheus_scrapes_and_queries(prometheus: PromServer, target: Target) -> None:
    scope = target.scope
    # model A: 100 calls, latencies 0.015 .. 4.965 s over two features, 10 errors
    # (no latency sits on a bucket bound)
    a_latencies = [0.015 + 0.05 * i for i in range(100)]
    a_input = 0
    for i, latency in enumerate(a_latencies):
        failed = i % 10 == 9
        a_input += 300 + i
        aiscope.record_call(
            "gpt-4o",
            "openai",
            input_tokens=300 + i,
            output_tokens=0 if failed else 40,
            cache_read_tokens=100 if i % 3 == 0 else 0,
            latency_s=latency,
            time_to_first_token_s=latency / 4,
            status="error" if failed else "ok",
            error_type="APITimeoutError" if failed else None,
            tags={"feature": "search" if i % 2 else "chat", "team": "growth"},
            scope=scope,
        )
    # model B: 50 calls, 0.3025 .. 0.5475 s
    b_latencies = [0.3025 + 0.005 * i for i in range(50)]
    for i, latency in enumerate(b_latencies):
        aiscope.record_call(
            "claude-sonnet-4-20250514",
            "anthropic",
            input_tokens=1000,
            output_tokens=200,
            cache_write_tokens=500 if i == 0 else 0,
            latency_s=latency,
            tags={"feature": "summarize", "team": "docs"},
            scope=scope,
        )
    b_input = 50 * 1000
    _wait_for_scrape_after(prometheus, time.time())

    assert prometheus.by("sum by (model) (ai_lib_requests_total)", "model") == {
        "gpt-4o": 100.0,
        "claude-sonnet-4-20250514": 50.0,
    }
    assert prometheus.by('sum by (model) (ai_lib_requests_total{status="error"})', "model") == {
        "gpt-4o": 10.0
    }
    assert prometheus.by("sum by (model) (ai_lib_errors_total)", "model") == {"gpt-4o": 10.0}
    assert prometheus.by('sum by (model) (ai_lib_tokens_total{type="input"})', "model") == {
        "gpt-4o": float(a_input),
        "claude-sonnet-4-20250514": float(b_input),
    }
    assert prometheus.by("sum by (model) (ai_lib_time_to_first_token_seconds_count)", "model") == {
        "gpt-4o": 100.0,
        "claude-sonnet-4-20250514": 0.0,
    }

    # p95 from the raw cumulative buckets, interpolated exactly as Prometheus does
    p95 = prometheus.by(
        "histogram_quantile(0.95, sum by (le, model) (ai_lib_request_duration_seconds_bucket))",
        "model",
    )
    expected = {
        "gpt-4o": bucket_quantile(0.95, *_cumulative(a_latencies)),
        "claude-sonnet-4-20250514": bucket_quantile(0.95, *_cumulative(b_latencies)),
    }
    # rank 95 of 100 lies in (2.56, 5.0]: 51 calls up to 2.56 s, 49 above
    assert 2.56 < expected["gpt-4o"] <= 5.0
    assert expected["gpt-4o"] == pytest.approx(2.56 + 2.44 * (95 - 51) / 49, abs=1e-12)
    # rank 47.5 of 50 lies in (0.32, 0.64]: 4 calls up to 0.32 s, 46 above
    assert expected["claude-sonnet-4-20250514"] == pytest.approx(
        0.32 + 0.32 * (47.5 - 4) / 46, abs=1e-12
    )
    assert p95.keys() == expected.keys()
    for model, value in expected.items():
        assert p95[model] == pytest.approx(value, abs=1e-6), model
    # the in-process DDSketch agrees with the true p95 within its 1% accuracy
    true_p95 = sorted(a_latencies)[94]
    sketch_p95 = target.collector.latency_percentiles("gpt-4o").p95_ms
    assert sketch_p95 is not None
    assert sketch_p95 / 1000 == pytest.approx(true_p95, rel=0.011)

    # cost in Prometheus is what the CostTracker charged, model by model
    by_model = target.tracker.get_report().by_model
    assert set(by_model) == {"gpt-4o", "claude-sonnet-4-20250514"}
    assert all(v > 0 for v in by_model.values())
    cost = prometheus.by("sum by (model) (ai_lib_cost_usd_total)", "model")
    assert cost.keys() == by_model.keys()
    for model, usd in by_model.items():
        assert cost[model] == pytest.approx(usd, rel=1e-9, abs=1e-12), model

    # a later workload shows up as an increase at the next scrape
    for _ in range(7):
        aiscope.record_call("gpt-4o", "openai", input_tokens=1, latency_s=0.05, scope=scope)
    _wait_for_scrape_after(prometheus, time.time())
    assert prometheus.by("sum by (model) (ai_lib_requests_total)", "model") == {
        "gpt-4o": 107.0,
        "claude-sonnet-4-20250514": 50.0,
    }


# -- 3. multiprocess mode -----------------------------------------------------------------
WORKER = """
import json, sys
import aiscope
from prometheus_client import values
assert values.ValueClass is not values.MutexValue, "not in multiprocess mode"
n = int(sys.argv[1])
mc = aiscope.MetricsCollector()
tracker = aiscope.CostTracker(budget_usd=100.0)
scope = aiscope.Scope(metrics=mc, cost_tracker=tracker)
for i in range(n):
    failed = i % 5 == 0
    aiscope.record_call(
        "gpt-4o", "openai", input_tokens=100 + i, output_tokens=0 if failed else 10,
        cache_read_tokens=20, latency_s=0.05 * (i % 7), time_to_first_token_s=0.01,
        status="error" if failed else "ok", error_type="RateLimitError" if failed else None,
        tags={"feature": "search", "team": "t%d" % (i % 2)}, scope=scope,
    )
with aiscope.llm_call("gpt-4o-mini", "openai", scope=scope, feature="chat") as call:
    call.set_usage(input_tokens=10, output_tokens=2)
report = tracker.get_report()
print(json.dumps({"cost": report.by_model, "input": report.input_tokens}))
"""


def test_prometheus_sees_an_idle_clients_circuit_closed_on_the_dashboard(
    prometheus: PromServer, target: Target
) -> None:
    """Issue 12 item 6: a configured breaker's state is scraped before any call or
    transition, and the dashboard's "Provider circuit state" panel reads it (0 closed)."""
    from aiscope.dashboards import dashboard_queries, expand_variables, grafana_dashboard

    client = aiscope.AiClient(
        "anthropic/claude-sonnet-4-5",
        api_key="k",
        base_url="http://127.0.0.1:9",  # never called
        metrics=target.collector,
    )
    _wait_for_scrape_after(prometheus, time.time())
    states = {
        r["metric"]["state"]: float(r["value"][1])
        for r in prometheus.query('ai_lib_circuit_state{provider="anthropic"}')
    }
    assert states == {"closed": 1.0, "half_open": 0.0, "open": 0.0}
    (panel,) = [
        e for t, e in dashboard_queries(grafana_dashboard()) if t == "Provider circuit state"
    ]
    assert prometheus.by(expand_variables(panel, rate_interval="1m"), "provider") == {
        "anthropic": 0.0
    }
    client.close()


EXPORTER = """
import json, urllib.request
import aiscope
mc = aiscope.MetricsCollector()
text = mc.export_prometheus()
server, port = mc.serve()
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
    served = resp.read().decode()
server.shutdown()
print(json.dumps({"text": text, "served": served}))
"""


def _run_python(code: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_multiprocess_mode_aggregates_workers(tmp_path: Path) -> None:
    mp_dir = tmp_path / "multiproc"
    mp_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    env.pop("prometheus_multiproc_dir", None)
    calls = [37, 23, 11]
    workers = [_run_python(WORKER, env, str(n)) for n in calls]  # concurrently
    reports = [json.loads(_finish(w)) for w in workers]
    assert len(list(mp_dir.glob("counter_*.db"))) == len(calls)

    exported = json.loads(_finish(_run_python(EXPORTER, env)))
    text: str = exported["text"]

    requests = _sums(text, "ai_lib_requests_total", "model")
    assert requests == {"gpt-4o": float(sum(calls)), "gpt-4o-mini": float(len(calls))}
    errors = _sums(text, "ai_lib_errors_total", "model")
    assert errors == {"gpt-4o": float(sum(len(range(0, n, 5)) for n in calls))}
    count = _sums(text, "ai_lib_request_duration_seconds_count", "model")
    assert count == requests
    inf = _sums(text, "ai_lib_request_duration_seconds_bucket", "model", le="+Inf")
    assert inf == requests
    ttft = _sums(text, "ai_lib_time_to_first_token_seconds_count", "model")
    assert ttft == {"gpt-4o": float(sum(calls)), "gpt-4o-mini": 0.0}
    tokens = _sums(text, "ai_lib_tokens_total", "type")
    assert tokens["input"] == sum(r["input"] for r in reports)
    assert tokens["cache_read"] == 20 * sum(calls)
    cost = _sums(text, "ai_lib_cost_usd_total", "model")
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert cost[model] == pytest.approx(sum(r["cost"][model] for r in reports), rel=1e-9)
    # the in-flight gauge (livesum; only llm_call counts in flight) is back to zero
    assert _sums(text, "ai_lib_inflight_requests", "model") == {"gpt-4o-mini": 0.0}
    # budget gauges (mostrecent): one process's value, not a sum over processes
    limit = _sums(text, "ai_lib_budget_limit_usd", "budget")
    assert limit == {"default": 100.0}

    # serve() aggregates the same way as export_prometheus()
    served: str = exported["served"]
    assert _sums(served, "ai_lib_requests_total", "model") == requests
    _assert_lint_clean(text)
    _assert_lint_clean(served)


CIRCUIT_WORKER = """
import sys
import aiscope
from aiscope.resilience import CircuitBreaker
mc = aiscope.MetricsCollector()
healthy = aiscope.AiClient("openai/gpt-4o", api_key="k", base_url="http://127.0.0.1:9",
                           metrics=mc)
failing = aiscope.AiClient("anthropic/claude-sonnet-4-5", api_key="k",
                           base_url="http://127.0.0.1:9", metrics=mc,
                           circuit_breaker=CircuitBreaker("anthropic", failure_threshold=1))
failing.breaker.record_failure()
print(failing.circuit_state())
"""


def test_multiprocess_mode_exports_each_breakers_state_from_the_start(tmp_path: Path) -> None:
    mp_dir = tmp_path / "multiproc"
    mp_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    env.pop("prometheus_multiproc_dir", None)
    assert _finish(_run_python(CIRCUIT_WORKER, env)).strip() == "open"
    text = json.loads(_finish(_run_python(EXPORTER, env)))["text"]
    states = {
        (s.labels["provider"], s.labels["state"]): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "ai_lib_circuit_state"
        for s in f.samples
    }
    assert states == {
        ("openai", "closed"): 1.0,
        ("openai", "half_open"): 0.0,
        ("openai", "open"): 0.0,
        ("anthropic", "closed"): 0.0,
        ("anthropic", "half_open"): 0.0,
        ("anthropic", "open"): 1.0,
    }
