"""The alerts lease and the stored alert state: one holder at a time, taken over after
expiry; each alert change stored and notified once; budgets reading a live ledger."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from aiscope import CallRecord, Usage
from aiscope.alerts import AlertEvent, AlertRule
from aiscope.cost import Budget, CostTracker, RedisLedger, default_pricing
from aiscope.server import create_project
from aiscope.server.alerting import AlertService, save_rule
from aiscope.server.budgets import load, parse_budget, save, status
from aiscope.server.ingest import write
from aiscope.server.leases import Lease
from aiscope.server.records import to_batch
from aiscope.server.tables import alert_states
from tests.support.redis_support import REDIS_ENV, redis_prefix, service_url


def test_one_holder_at_a_time_and_takeover_after_expiry(engine: Engine) -> None:
    a = Lease(engine, "alerts", 0.5, owner="a")
    b = Lease(engine, "alerts", 0.5, owner="b")
    assert a.hold() and not b.hold()
    assert a.hold()  # renewed by its owner
    time.sleep(0.7)
    assert b.hold() and not a.hold()  # expired: taken over, and the old holder is out
    b.release()
    assert a.hold()  # given up: taken at once
    with pytest.raises(ValueError, match="ttl_s"):
        Lease(engine, "alerts", 0)


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def send(self, event: AlertEvent) -> None:
        self.events.append(event)


def _store(engine: Engine, project: str, n: int) -> None:
    now = time.time()
    calls = [
        CallRecord(model="gpt-4o", provider="openai", usage=Usage(1, 1), start_time=now)
        for _ in range(n)
    ]
    write(engine, to_batch(calls, project, default_pricing()))


def test_each_change_is_stored_and_notified_once_by_the_lease_holder(engine: Engine) -> None:
    project = create_project(engine, "p").project_id
    _store(engine, project, 2)
    rule = AlertRule("many", "warning", "requests", ">", 1, window="5m", cooldown="3s")
    save_rule(engine, project, rule)
    sinks = [Collect(), Collect()]
    services = [AlertService(engine, notifiers=[s], lease_s=30, owner=o) for s, o in
                zip(sinks, "ab", strict=True)]  # fmt: skip
    try:
        for _ in range(3):
            for svc in services:
                svc.evaluate_all()
        for svc in services:
            for d in svc.deliveries:
                assert d.flush(5)
        first, second = sinks
        assert [(e.state, e.renotify, e.value) for e in first.events] == [("firing", False, 2)]
        assert second.events == []  # it never held the lease
        with engine.connect() as conn:
            (row,) = conn.execute(select(alert_states)).all()
        assert (row.rule, row.state, row.value) == ("many", "firing", 2)
        # the holder dies: after its lease the other carries on from the stored state,
        # re-notifying after the cooldown, then resolving when the rule stops holding
        services[0].lease.release()
        time.sleep(3.1)
        services[1].evaluate_all()
        save_rule(engine, project, AlertRule("many", "warning", "requests", ">", 10))
        services[1].evaluate_all()
        services[1].evaluate_all()
        assert services[1].deliveries[0].flush(5)
        assert [(e.state, e.renotify) for e in second.events] == [
            ("firing", True),
            ("resolved", False),
        ]
        assert len(first.events) == 1
        assert services[1].active(project) == []
    finally:
        for svc in services:
            svc.close()


def test_budgets_read_live_spend_and_reservations_from_the_applications_ledger(
    engine: Engine,
) -> None:
    url = os.environ.get("AISCOPE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("AISCOPE_TEST_REDIS_URL is not set: CI must run the Redis tests")
        pytest.skip("needs AISCOPE_TEST_REDIS_URL")
    ledger = RedisLedger(url, prefix=f"aiscope-test-server-{uuid.uuid4().hex[:8]}:")
    app = CostTracker(budgets=[Budget(1.0, "daily", name="team")], ledger=ledger, mode="block")
    held = app.reserve("openai", "gpt-4o", input_tokens=1000, max_output_tokens=500)
    assert held is not None
    project = create_project(engine, "p").project_id
    save(engine, project, parse_budget({"name": "team", "limit_usd": 1.0, "period": "day"}))
    (b,) = load(engine, project)
    live = status(engine, project, b, ledger=ledger)
    assert (live["source"], live["reserved_usd"], live["spent_usd"]) == ("ledger", 0.0075, 0.0)
    app.on_record(
        CallRecord(model="gpt-4o", provider="openai", usage=Usage(1000, 100), cost_usd=0.0035),
        held,
    )
    live = status(engine, project, b, ledger=ledger)
    assert live["reserved_usd"] == 0.0 and live["spent_usd"] == pytest.approx(0.0035)
    assert live["recorded_usd"] == 0.0  # nothing stored on the server: the ledger knows
    assert status(engine, project, b)["source"] == "rollups"
    down = RedisLedger("redis://127.0.0.1:1/0", timeout_s=0.2)
    failed = status(engine, project, b, ledger=down)
    assert failed["source"] == "rollups" and "unreachable" in failed["ledger_error"]


def test_budgets_scoped_by_one_key_read_the_sdk_per_value_budget_from_the_ledger(
    engine: Engine,
) -> None:
    """``scope={"team": "search"}`` reads team search's share of the applications'
    ``Budget(per="team")`` of the same name, or their ``Budget(per="team", value="search")``;
    a scope of two keys, which no SDK budget holds, answers from the rollups."""
    url = service_url(REDIS_ENV)
    with redis_prefix(url, "server-scoped") as prefix:
        _check_scoped_budgets(engine, RedisLedger(url, prefix=prefix))


def _check_scoped_budgets(engine: Engine, ledger: RedisLedger) -> None:
    app = CostTracker(
        budgets=[
            Budget(1.0, "daily", name="per-team", per="team"),
            Budget(0.5, "monthly", name="search-only", per="team", value="search"),
            Budget(2.0, "daily", name="per-model", per="model"),
        ],
        ledger=ledger,
        mode="block",
    )
    search = app.reserve("openai", "gpt-4o", 1000, 500, tags={"team": "search"})
    ads = app.reserve("openai", "gpt-4o", 1000, 500, tags={"team": "ads"})
    assert search is not None and ads is not None
    app.on_record(_charged(0.0035, "ads"), ads)  # another team's spend: not search's
    project = create_project(engine, "p").project_id
    for body in (
        {"name": "per-team", "limit_usd": 1.0, "period": "day", "scope": {"team": "search"}},
        {"name": "search-only", "limit_usd": 0.5, "scope": {"team": "search"}},
        {"name": "per-model", "limit_usd": 2.0, "period": "day", "scope": {"model": "gpt-4o"}},
        {"name": "two-keys", "limit_usd": 1.0, "scope": {"team": "search", "feature": "x"}},
    ):
        save(engine, project, parse_budget(body))

    def live() -> dict[str, tuple[object, ...]]:
        return {
            b.budget.name: (s["source"], s["spent_usd"], s["reserved_usd"])
            for b in load(engine, project)
            for s in [status(engine, project, b, ledger=ledger)]
        }

    held = 0.0075  # gpt-4o, 1000 tokens in and at most 500 out
    assert live() == {
        "per-team": ("ledger", 0.0, held),
        "search-only": ("ledger", 0.0, held),
        "per-model": ("ledger", 0.0035, held),  # both teams' calls are gpt-4o's
        "two-keys": ("rollups", 0.0, None),
    }
    assert app.budget_status("per-team", "search").reserved_usd == held
    app.on_record(_charged(0.0035, "search"), search)
    assert live() == {
        "per-team": ("ledger", 0.0035, 0.0),
        "search-only": ("ledger", 0.0035, 0.0),
        "per-model": ("ledger", 0.007, 0.0),
        "two-keys": ("rollups", 0.0, None),
    }


def _charged(cost_usd: float, team: str) -> CallRecord:
    return CallRecord(
        model="gpt-4o",
        provider="openai",
        usage=Usage(1000, 100),
        cost_usd=cost_usd,
        tags={"team": team},
    )


def test_a_lease_shorter_than_the_evaluation_interval_is_refused(engine: Engine) -> None:
    from aiscope.server import Settings, create_app

    with pytest.raises(ValueError, match="alert_lease_s"):
        create_app(Settings(engine=engine, alert_every_s=60, alert_lease_s=30))


def test_serve_options_build_the_sdk_notifiers_and_ledgers(engine: Engine, tmp_path: Path) -> None:
    """``notifiers_from`` (what ``aiscope serve --alert-*`` builds) sends PagerDuty Events
    v2 trigger then resolve with one dedup key, to a real receiver on loopback."""
    from aiscope.alerts import PagerDutyNotifier, SlackNotifier, WebhookNotifier
    from aiscope.cost import SQLiteLedger
    from aiscope.server import notifiers_from, open_ledger
    from tests.server.test_server_replicas import Receiver

    receiver = Receiver()
    built = notifiers_from(["http://127.0.0.1:1/a"], ["https://hooks.slack.com/x"])
    assert [type(n) for n in built] == [WebhookNotifier, SlackNotifier]
    project = create_project(engine, "p").project_id
    _store(engine, project, 1)
    save_rule(engine, project, AlertRule("any", "critical", "requests", ">", 0))
    (pd,) = notifiers_from(pagerduty_key="R0UT1NG", pagerduty_url=receiver.url)
    assert isinstance(pd, PagerDutyNotifier)
    service = AlertService(engine, notifiers=[pd])
    try:
        service.evaluate_all()
        save_rule(engine, project, AlertRule("any", "critical", "requests", ">", 5))
        service.evaluate_all()
        assert service.deliveries[0].flush(10)
    finally:
        service.close()
        receiver.http.shutdown()
    actions = [(e["event_action"], e["routing_key"]) for e in receiver.events]
    assert actions == [("trigger", "R0UT1NG"), ("resolve", "R0UT1NG")]
    assert len({e["dedup_key"] for e in receiver.events}) == 1
    assert receiver.events[0]["payload"]["severity"] == "critical"

    assert isinstance(open_ledger(str(tmp_path / "l.db")), SQLiteLedger)
    assert isinstance(open_ledger(f"sqlite:///{tmp_path}/m.db"), SQLiteLedger)
    with pytest.raises(ValueError, match="ledger url"):
        open_ledger("ftp://example.com/x")
