"""Alert rules and the in-process evaluator: states, windows, notifiers against a real
local HTTP receiver (Slack and PagerDuty v2 payloads; slow or dead receivers)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import aiscope
from aiscope.alerts import (
    DAY,
    AlertEvaluator,
    AlertEvent,
    AlertRule,
    LogNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    default_rules,
    histogram_quantile,
)
from aiscope.record import CallRecord, Usage


# -- a local receiver ---------------------------------------------------------------------
class Receiver:
    """A real HTTP server on loopback that records JSON bodies; it can answer with
    given status codes first, or sleep before answering."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered first, one per request
        self.delay_s = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.hits += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # a slow answer to a client that gave up is expected here, not worth a traceback
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there now


def _call(t: float, model: str = "gpt-4o", latency: float = 0.5, cost: float = 0.01) -> CallRecord:
    return CallRecord(
        model=model,
        provider="openai",
        start_time=t - latency,
        latency_s=latency,
        usage=Usage(100, 50),
        cost_usd=cost,
        tags={"feature": "search", "team": "growth"},
    )


SLOW = AlertRule(
    "slow", "critical", "latency_p95_ms", ">", 5000, window="5m", for_="2m", cooldown="10m"
)


def _event(state: str = "firing", **labels: str) -> AlertEvent:
    return AlertEvent(
        rule="slow",
        severity="critical",
        state=state,  # type: ignore[arg-type]
        labels=labels,
        value=7680.0,
        threshold=5000.0,
        comparison=">",
        signal="latency_p95_ms",
        window="5m",
        description="p95 too slow",
        started_at=1_700_000_000.0,
        at=1_700_000_120.0,
    )


# -- rules and states ---------------------------------------------------------------------
def test_defaults_are_the_seed_table_in_aggregate_and_per_model() -> None:
    rules = {r.name: r for r in default_rules()}
    assert len(rules) == 16
    table = {
        "daily_budget_warning": ("warning", "cost_usd", ">", 50.0, DAY),
        "daily_budget_critical": ("critical", "cost_usd", ">", 100.0, DAY),
        "cost_per_request_spike": ("warning", "cost_per_request_usd", ">", 0.10, "15m"),
        "p95_latency_warning": ("warning", "latency_p95_ms", ">", 5000.0, "5m"),
        "p99_latency_critical": ("critical", "latency_p99_ms", ">", 10000.0, "5m"),
        "quality_degradation": ("warning", "quality", "<", 0.7, "1h"),
        "quality_critical_drop": ("critical", "quality", "<", 0.5, "1h"),
        "high_token_usage": ("warning", "tokens", ">", 1_000_000.0, "1h"),
    }
    for name, (sev, signal, cmp, threshold, window) in table.items():
        for r in (rules[name], rules[f"{name}_by_model"]):
            assert (r.severity, r.signal, r.comparison, r.threshold, r.window) == (
                sev,
                signal,
                cmp,
                threshold,
                window,
            )
        assert rules[name].group_by == () and rules[f"{name}_by_model"].group_by == ("model",)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severity": "loud"}, "severity must be one of"),
        ({"signal": "vibes"}, "signal must be one of"),
        ({"comparison": "=="}, "comparison must be one of"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"window": "5 minutes"}, "window must be seconds or a duration"),
        ({"window": 0}, "window must be > 0"),
        ({"for_": -1}, "for_ must be >= 0"),
        ({"group_by": ("user",)}, "group_by must be a tuple of"),
        ({"name": "has space"}, "rule name must be letters, digits and underscores"),
    ],
)
def test_bad_rules_are_clear_errors(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "name": "r",
        "severity": "warning",
        "signal": "requests",
        "comparison": ">",
        "threshold": 1,
    }
    with pytest.raises(ValueError, match=match):
        AlertRule(**{**base, **kwargs})


def test_pending_firing_renotify_resolved() -> None:
    ev = AlertEvaluator([SLOW])
    t0 = 1_700_000_000.0
    for i in range(10):  # 2 in 10 calls take 7 s: the p95 is 7 s
        ev.on_record(_call(t0 + i, latency=7.0 if i < 2 else 0.5))
    assert ev.evaluate(t0 + 10) == []
    assert [a.state for a in ev.active()] == ["pending"]
    (fired,) = ev.evaluate(t0 + 130)  # held for 2 min: fires, once
    assert (fired.state, fired.rule, fired.renotify) == ("firing", "slow", False)
    assert fired.value == pytest.approx(7000, rel=0.01)  # the sketch: within 1%
    assert ev.evaluate(t0 + 200) == []
    for start in (400, 700):  # still slow later on
        for i in range(10):
            ev.on_record(_call(t0 + start + i, latency=7.0 if i < 2 else 0.5))
    assert ev.evaluate(t0 + 420) == []  # within the cooldown
    (again,) = ev.evaluate(t0 + 130 + 600)
    assert again.renotify and again.state == "firing"
    (resolved,) = ev.evaluate(t0 + 2000)  # the slow calls left the 5-minute window
    assert resolved.state == "resolved" and resolved.value is None
    assert ev.active() == [] and [e.state for e in ev.history] == ["firing", "firing", "resolved"]


def test_condition_gone_before_for_elapsed_never_fires() -> None:
    ev = AlertEvaluator([SLOW])
    ev.on_record(_call(100.0, latency=9.0))
    assert ev.evaluate(101.0) == [] and len(ev.active()) == 1
    assert ev.evaluate(1000.0) == [] and ev.active() == []


def test_daily_window_resets_at_utc_midnight() -> None:
    rule = AlertRule("spend", "warning", "cost_usd", ">", 50.0, window=DAY)
    ev = AlertEvaluator([rule])
    midnight = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
    assert midnight % 86400 == 0
    ev.on_record(_call(midnight - 3600, cost=40.0))  # 23:00 the day before
    ev.on_record(_call(midnight + 60, cost=30.0))
    assert ev.evaluate(midnight + 120) == []  # 40 + 30 across midnight: not today's 70
    ev.on_record(_call(midnight + 180, cost=25.0))
    (e,) = ev.evaluate(midnight + 240)
    assert e.value == pytest.approx(55.0) and e.window == "day (UTC)"
    (r,) = ev.evaluate(midnight + 86400 + 10)  # next day: nothing spent yet
    assert r.state == "resolved"


def test_groups_and_custom_signal() -> None:
    def error_count(stats: Any) -> float:
        return float(stats.errors)

    rule = AlertRule("errors", "warning", error_count, ">=", 2, window="1m", group_by=("model",))
    ev = AlertEvaluator([rule])
    for model in ("a", "a", "b"):
        rec = _call(50.0, model=model)
        rec.status, rec.error_type = "error", "Timeout"
        ev.on_record(rec)
    (e,) = ev.evaluate(60.0)
    assert e.labels == {"model": "a"} and e.value == 2.0 and e.signal == "error_count"


def test_memory_is_bounded_by_window_not_calls() -> None:
    ev = AlertEvaluator([AlertRule("r", "info", "requests", ">", 1e12, window="1m")])
    for i in range(20_000):
        ev.on_record(_call(1000.0 + i * 0.5))
        if i % 1000 == 0:
            ev.evaluate(1000.0 + i * 0.5)
    ev.evaluate(1000.0 + 10_000)
    assert ev._store.size() <= 8  # 1-minute window, 10-s buckets (+ the day's total)


def test_memory_is_bounded_without_evaluations() -> None:
    ev = AlertEvaluator([AlertRule("r", "info", "requests", ">", 1e12, window="1m")])
    for i in range(5_000):
        ev.on_record(_call(1000.0 + i * 2.0))
    assert ev._store.size() <= 9


def test_histogram_quantile_matches_prometheus_edge_cases() -> None:
    bounds = [1.0, 2.0]
    assert histogram_quantile(0.5, bounds, [0, 0, 0]) is None  # NaN in Prometheus
    assert histogram_quantile(0.99, bounds, [0, 0, 5]) == 2.0  # rank in +Inf: last bound
    assert histogram_quantile(0.5, bounds, [2, 2, 0]) == 1.0
    assert histogram_quantile(0.75, bounds, [2, 2, 0]) == pytest.approx(1.5)


def test_evaluator_as_a_scope_sink_and_feedback_listener() -> None:
    ev = AlertEvaluator()
    fc = aiscope.FeedbackCollector(listeners=[ev.on_feedback])
    scope = aiscope.Scope(feedback=fc, sinks=[ev])
    stats = aiscope.record_call(
        "gpt-4o", "openai", input_tokens=900_000, output_tokens=200_000, latency_s=0.2, scope=scope
    )
    fc.record(stats.request_id, score=0.2, source="llm-judge")
    ev.evaluate()
    firing = {(a.rule, a.labels.get("model", "")) for a in ev.firing()}
    assert ("high_token_usage", "") in firing and ("high_token_usage_by_model", "gpt-4o") in firing
    assert ("cost_per_request_spike_by_model", "gpt-4o") in firing  # ~$4.25 for one call
    pending = {a.rule for a in ev.active() if a.state == "pending"}
    assert {"quality_degradation", "quality_critical_drop"} <= pending  # for 10m first


# -- notifiers ----------------------------------------------------------------------------
def test_slack_payload(receiver: Receiver) -> None:
    slack = SlackNotifier(receiver.url)
    slack.send(_event(model="gpt-4o"))
    (body,) = receiver.bodies
    assert body["text"].startswith(":rotating_light: [CRITICAL] slow model=gpt-4o firing")
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "slow firing"}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].endswith("p95 too slow")
    assert {"type": "mrkdwn", "text": "*model*\ngpt-4o"} in section["fields"]
    assert all(f["type"] == "mrkdwn" for f in section["fields"])
    assert context["type"] == "context"
    slack.close()


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(receiver: Receiver) -> None:
    pd = PagerDutyNotifier("R0UTINGKEY", url=receiver.url, source="api-1")
    pd.send(_event(model="gpt-4o"))
    pd.send(_event("resolved", model="gpt-4o"))
    trigger, resolve = receiver.bodies
    assert trigger["routing_key"] == "R0UTINGKEY" and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "aiscope/slow/model=gpt-4o" == resolve["dedup_key"]
    p = trigger["payload"]
    assert set(p) >= {"summary", "source", "severity"}  # required by Events API v2
    assert (p["source"], p["severity"], p["component"], p["class"]) == (
        "api-1",
        "critical",
        "gpt-4o",
        "latency_p95_ms",
    )
    assert p["timestamp"] == "2023-11-14T22:15:20.000Z"
    assert p["custom_details"]["value"] == 7680.0
    assert resolve == {
        "routing_key": "R0UTINGKEY",
        "event_action": "resolve",
        "dedup_key": "aiscope/slow/model=gpt-4o",
    }
    pd.close()


def test_webhook_retries_with_backoff_then_delivers(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    with AlertEvaluator([SLOW], [WebhookNotifier(receiver.url)], backoff_s=0.05) as ev:
        d = ev.deliveries[0]
        d.submit(_event())
        assert d.flush(5)
    assert (receiver.hits, d.delivered, d.retries, d.failed) == (3, 1, 2, 0)
    assert receiver.bodies[0]["rule"] == "slow" and receiver.bodies[0]["state"] == "firing"


def test_a_refused_event_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400]
    with AlertEvaluator([SLOW], [WebhookNotifier(receiver.url)], backoff_s=0.05) as ev:
        d = ev.deliveries[0]
        d.submit(_event())
        assert d.flush(5) is False  # the event was lost: flush says so
        assert d.flush(5) is True  # nothing lost since
    assert (receiver.hits, d.failed, d.retries) == (1, 1, 0)


def test_close_shares_one_deadline_with_slow_receivers(receiver: Receiver) -> None:
    receiver.delay_s = 1.5  # each answer takes 1.5 s
    hooks = [WebhookNotifier(receiver.url, timeout_s=10) for _ in range(2)]
    ev = AlertEvaluator([SLOW], hooks, backoff_s=0.05)
    ev.start(interval_s=60)
    for d in ev.deliveries:
        d.submit(_event())  # goes out at once, answered after 1.5 s
        d.submit(_event())  # still queued when close() runs out of time
    time.sleep(0.1)
    t0 = time.perf_counter()
    ev.close(timeout_s=0.5)  # flush and join per delivery used to take 0.5 s each
    elapsed = time.perf_counter() - t0
    assert 0.45 <= elapsed < 0.9, f"close(timeout_s=0.5) took {elapsed:.2f}s"
    # The sends in flight finish in the background; what was still queued is counted,
    # not sent, and each notifier is closed once its thread is done.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(d._thread.is_alive() for d in ev.deliveries):
        time.sleep(0.02)
    assert [(d.delivered, d.failed) for d in ev.deliveries] == [(1, 1), (1, 1)]
    assert receiver.hits == 2 and all(h._client.is_closed for h in hooks)


def _timed_calls(scope: aiscope.Scope, ev: AlertEvaluator, n: int) -> float:
    """Seconds taken by ``n`` recorded calls, each followed by an evaluation that fires
    or resolves an alert (so every one of them hands the notifier an event)."""
    t0 = time.perf_counter()
    for i in range(n):
        aiscope.record_call("gpt-4o", "openai", latency_s=9.0 if i % 2 == 0 else 0.1, scope=scope)
        ev.evaluate(time.time() + (0 if i % 2 == 0 else 10_000))
    return time.perf_counter() - t0


@pytest.mark.parametrize("kind", ["slow", "down"])
def test_slow_or_dead_receiver_never_delays_calls(receiver: Receiver, kind: str) -> None:
    rule = AlertRule("slow", "critical", "latency_p95_ms", ">", 5000, window="1h")
    url = receiver.url if kind == "slow" else _dead_url()
    receiver.delay_s = 2.0
    ev = AlertEvaluator(
        [rule], [SlackNotifier(url, timeout_s=5), PagerDutyNotifier("k", url=url)], backoff_s=0.2
    )
    scope = aiscope.Scope(sinks=[ev])
    elapsed = _timed_calls(scope, ev, 20)
    assert len(ev.history) == 20  # 10 fired + 10 resolved, each handed to both notifiers
    assert elapsed < 1.0, f"20 calls took {elapsed:.2f}s with a {kind} receiver"
    t0 = time.perf_counter()
    ev.close(timeout_s=0.5)  # bounded shutdown, even with a backlog
    assert time.perf_counter() - t0 < 3.0
    if kind == "down":
        assert all(d.delivered == 0 for d in ev.deliveries)
        assert sum(d.retries + d.failed for d in ev.deliveries) > 0


def test_full_queue_drops_and_counts() -> None:
    gate = threading.Event()

    class Stuck:
        name = "stuck"

        def send(self, event: AlertEvent) -> None:
            gate.wait(10)

    ev = AlertEvaluator([SLOW], [Stuck()], max_queue=2)
    d = ev.deliveries[0]
    results = [d.submit(_event()) for _ in range(5)]
    assert results.count(False) == d.dropped >= 2
    gate.set()
    ev.close()


def test_log_notifier(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="aiscope.alerts"):
        LogNotifier().send(_event(model="m"))
        LogNotifier().send(_event("resolved"))
    firing, resolved = caplog.records
    assert firing.levelno == logging.ERROR and "slow model=m firing" in firing.getMessage()
    assert resolved.levelno == logging.INFO and "resolved" in resolved.getMessage()


def test_bad_notifier_config() -> None:
    with pytest.raises(ValueError, match="url must be an http"):
        WebhookNotifier("ftp://x")
    with pytest.raises(ValueError, match="routing_key"):
        PagerDutyNotifier("")
    with pytest.raises(TypeError, match="send"):
        AlertEvaluator([SLOW], [object()])  # type: ignore[list-item]


def test_recording_from_many_threads_while_evaluating() -> None:
    rule = AlertRule("volume", "info", "requests", ">", 1e9, window="1h", group_by=("model",))
    ev = AlertEvaluator([rule])
    now = time.time()
    stop = threading.Event()

    def evaluate() -> None:
        while not stop.is_set():
            ev.evaluate(now)

    def record(model: str) -> None:
        for i in range(2000):
            ev.on_record(_call(now - 1 - (i % 100), model=model, cost=0.001))

    checker = threading.Thread(target=evaluate)
    checker.start()
    workers = [threading.Thread(target=record, args=(f"m{k % 2}",)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    checker.join()
    stats = ev._store.stats(now, 3600, False, ("model",))
    assert {g: s.requests for g, s in stats.items()} == {("m0",): 4000.0, ("m1",): 4000.0}
    assert sum(s.cost_usd for s in stats.values()) == pytest.approx(8.0)
