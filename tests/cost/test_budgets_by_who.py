"""Budgets by who spends: per key, team, user, feature and model, several on one call
(issue 14 item 4), on every ledger: in memory, SQLite, Redis and PostgreSQL.

Calls go through :class:`aiscope.AiClient` over real HTTP to aiscope.testing's mock
provider, each costing exactly $0.01 (see test_ledgers_remote), so the number of
calls a limit admits is known; the mock counts the requests that were really sent.
The Redis and PostgreSQL cases read ``AISCOPE_TEST_REDIS_URL`` /
``AISCOPE_TEST_POSTGRES_URL`` (skipped without them, failing when ``CI=true``), each
under its own key prefix or schema.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import aiscope
from aiscope.cost import (
    Budget,
    BudgetExceededError,
    CostTracker,
    Ledger,
    MemoryLedger,
    Pricing,
)
from aiscope.testing import MockProvider
from tests.cost.test_ledgers_remote import CALL_USD, OUT_TOKENS, PRICES, _client, _sent_ids


def _try(client: aiscope.AiClient, run: str, **tags: str) -> bool:
    """One $0.01 call with these tags: True if it was made, False if a budget refused."""
    try:
        client.chat().user(f"call {run}-{uuid.uuid4().hex}").max_tokens(OUT_TOKENS).tags(
            **tags
        ).execute_sync()
    except BudgetExceededError:
        return False
    return True


def _tracker(ledger: Ledger, *budgets: Budget) -> CostTracker:
    return CostTracker(budgets=list(budgets), ledger=ledger, pricing=Pricing(PRICES))


# -- the acceptance case --------------------------------------------------------------------
def test_key_team_and_total_budgets_on_one_call_refuse_if_any_would_be_exceeded(
    make_ledger: Callable[[], Any], mock: MockProvider
) -> None:
    """key + team + total on every call: each refuses when it is the one that is full,
    nothing is sent then, and no budget keeps a reservation of the refused call."""
    ledger = make_ledger()
    run = f"who-{uuid.uuid4().hex[:8]}"
    tracker = _tracker(
        ledger,
        Budget(0.05, name="total"),
        Budget(0.03, name="per-key", per="key"),
        Budget(0.04, name="per-team", per="team"),
    )
    client = _client(mock.url, tracker)
    # key k1 has room for 3 calls: the 4th is refused by the key budget
    assert [_try(client, run, key="k1", team="search") for _ in range(4)] == [True] * 3 + [False]
    # another key of the same team: the team's 4th call fits, its 5th does not
    assert [_try(client, run, key="k2", team="search") for _ in range(2)] == [True, False]
    # another team and key: room in both, but the total ($0.05) takes just one more
    assert [_try(client, run, key="k3", team="ads") for _ in range(2)] == [True, False]
    assert len(_sent_ids(mock, run)) == 5  # refused calls sent nothing
    status = {
        ("total", None): 0.05,
        ("per-key", "k1"): 0.03,
        ("per-key", "k2"): 0.01,
        ("per-key", "k3"): 0.01,
        ("per-team", "search"): 0.04,
        ("per-team", "ads"): 0.01,
    }
    for (name, value), spent in status.items():
        st = tracker.budget_status(name, value)
        assert (st.spent_usd, st.reserved_usd) == (pytest.approx(spent, abs=1e-12), 0.0), (
            name,
            value,
        )
    report = tracker.get_report()
    assert report.refused_calls == 3 and report.call_count == 5
    assert report.by_team == {"search": pytest.approx(0.04), "ads": pytest.approx(0.01)}


def test_a_refusal_by_one_budget_holds_nothing_in_the_others_at_any_moment(
    make_ledger: Callable[[], Any],
) -> None:
    """All or none: while one budget refuses calls over and over, another thread reading
    the other budgets never sees a reservation of a refused call (a reserve-then-release
    ledger would show one for a moment)."""
    ledger = make_ledger()
    tracker = _tracker(
        ledger, Budget(1.0, name="total"), Budget(0.0, name="team", per="team", value="full")
    )
    stop = threading.Event()
    seen: list[float] = []

    def watch() -> None:
        reader = _tracker(make_ledger(), Budget(1.0, name="total"))
        while not stop.is_set():
            seen.append(reader.budget_status("total").reserved_usd)

    t = threading.Thread(target=watch)
    t.start()
    try:
        refused = 0
        for _ in range(300):
            with pytest.raises(BudgetExceededError) as err:
                tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS, {"team": "full"})
            refused += 1
            assert err.value.budget == "team[team=full]"
    finally:
        stop.set()
        t.join()
    assert refused == 300 and seen and max(seen) == 0.0


def test_several_budgets_under_16_threads_never_overspend_any_nor_leak(
    make_ledger: Callable[[], Any],
) -> None:
    ledger = make_ledger()
    tracker = _tracker(
        ledger,
        Budget(0.25, name="total"),
        Budget(0.12, name="per-team", per="team"),
        Budget(0.07, name="per-user", per="user"),
    )
    teams, users = ["a", "b", "c"], ["u1", "u2", "u3", "u4"]
    admitted: dict[tuple[str, str], int] = {}
    lock = threading.Lock()

    def worker(i: int) -> None:
        for j in range(12):
            team, user = teams[(i + j) % 3], users[(i * 7 + j) % 4]
            try:
                r = tracker.reserve(
                    "openai", "gpt-4o", 10, OUT_TOKENS, {"team": team, "user": user}
                )
            except BudgetExceededError:
                continue
            tracker.on_record(
                aiscope.CallRecord(
                    model="gpt-4o",
                    provider="openai",
                    usage=aiscope.Usage(input_tokens=10, output_tokens=OUT_TOKENS),
                    cost_usd=CALL_USD,
                    tags={"team": team, "user": user},
                ),
                r,
            )
            with lock:
                admitted[team, user] = admitted.get((team, user), 0) + 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(admitted.values())
    assert total == 25  # 16 x 12 attempts: the total budget is the one that binds at last
    for team in teams:
        n = sum(v for (t, _), v in admitted.items() if t == team)
        assert n <= 12
        assert tracker.budget_status("per-team", team).spent_usd == pytest.approx(n * CALL_USD)
    for user in users:
        n = sum(v for (_, u), v in admitted.items() if u == user)
        assert n <= 7
        st = tracker.budget_status("per-user", user)
        assert (st.spent_usd, st.reserved_usd) == (pytest.approx(n * CALL_USD), 0.0)
    st = tracker.budget_status("total")
    assert (st.spent_usd, st.reserved_usd) == (pytest.approx(0.25), 0.0)


def test_every_ledger_reserves_several_keys_all_or_none(make_ledger: Callable[[], Any]) -> None:
    from aiscope.cost.ledger import NanoLedger

    ledger = make_ledger()
    assert isinstance(ledger, NanoLedger)
    ok = ledger.reserve_nanos([("a:total:all", 5, 10), ("b:total:all", 5, 10)])
    assert isinstance(ok, list) and len(ok) == 2
    # b has no room for 6 more: nothing is held in a either
    assert ledger.reserve_nanos([("a:total:all", 5, 10), ("b:total:all", 6, 10)]) == 1
    assert ledger.state_nanos("a:total:all") == (0, 5)
    assert ledger.state_nanos("b:total:all") == (0, 5)
    assert ledger.settle_nanos([("a:total:all", ok[0], 4), ("b:total:all", ok[1], 5)]) == [4, 5]
    assert ledger.state_nanos("a:total:all") == (4, 0)
    assert ledger.reserve_nanos([("a:total:all", 6, 10), ("b:total:all", 5, 10)]) != 0


# -- what a per-tag budget holds ------------------------------------------------------------
def test_each_team_gets_its_own_limit_and_value_holds_one_team(mock: MockProvider) -> None:
    run = f"teams-{uuid.uuid4().hex[:8]}"
    tracker = _tracker(
        MemoryLedger(),
        Budget(0.02, "daily", name="team-daily", per="team"),
        Budget(0.01, name="search-only", per="team", value="search"),
    )
    client = _client(mock.url, tracker)
    assert [_try(client, run, team="search") for _ in range(2)] == [True, False]
    assert [_try(client, run, team="ads") for _ in range(3)] == [True, True, False]
    assert _try(client, run)  # no team: held by no team budget
    with aiscope.tags(team="growth"):  # tags in force count like the call's own
        assert [_try(client, run) for _ in range(3)] == [True, True, False]
    assert len(_sent_ids(mock, run)) == 6
    st = tracker.budget_status("team-daily", "ads")
    assert (st.per, st.value, st.window, st.spent_usd) == ("team", "ads", "daily", 0.02)
    assert tracker.budget_status("team-daily", "growth").spent_usd == 0.02
    assert tracker.budget_status("search-only").spent_usd == 0.01
    # a per-value budget is read by value; the listing holds one status per budget
    assert [s.name for s in tracker.budget_statuses()] == ["search-only"]
    with pytest.raises(ValueError, match="give the team as value="):
        tracker.budget_status("team-daily")
    with pytest.raises(KeyError, match="no budget named 'nope'"):
        tracker.budget_status("nope")


def test_per_model_and_per_user_budgets_and_report_by_user() -> None:
    tracker = _tracker(
        MemoryLedger(),
        Budget(0.01, name="per-model", per="model"),
        Budget(0.02, name="per-user", per="user"),
    )
    scope = aiscope.Scope(cost_tracker=tracker)
    p = scope.begin("gpt-4o", "openai", 10, OUT_TOKENS, tags={"user": "ann"})
    scope.emit(
        aiscope.CallRecord(
            model="gpt-4o",
            provider="openai",
            usage=aiscope.Usage(input_tokens=10, output_tokens=OUT_TOKENS),
            tags={"user": "ann"},
        ),
        p,
    )
    # gpt-4o's own budget had room for one call: bob's is refused though his has room
    with pytest.raises(BudgetExceededError, match=r"per-model\[model=gpt-4o\]"):
        scope.begin("gpt-4o", "openai", 10, OUT_TOKENS, tags={"user": "bob"})
    report = tracker.get_report()
    assert report.by_user == {"ann": 0.01}
    assert report.as_dict()["by_user"] == {"ann": 0.01}
    assert tracker.budget_status("per-user", "ann").spent_usd == 0.01


def test_distinct_values_beyond_max_values_share_one_limit() -> None:
    tracker = _tracker(MemoryLedger(), Budget(0.02, name="per-user", per="user", max_values=2))
    for user in ("u1", "u2", "u3", "u4"):
        tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS, {"user": user})
    # u3 and u4 are past the cap: they share "~other", which is now full
    with pytest.raises(BudgetExceededError, match=r"per-user\[user=~other\]"):
        tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS, {"user": "u5"})
    tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS, {"user": "u1"})  # tracked: its own
    assert tracker.budget_status("per-user", "u1").reserved_usd == pytest.approx(0.02)
    assert tracker.budget_status("per-user", "u9").reserved_usd == pytest.approx(0.02)
    assert tracker.budget_status("per-user", "~other").reserved_usd == pytest.approx(0.02)


def test_bad_per_budget_settings_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="value= needs per="):
        Budget(1.0, name="b", value="search")
    with pytest.raises(ValueError, match="per must be a tag name"):
        Budget(1.0, name="b", per="")
    with pytest.raises(ValueError, match="max_values must be an int >= 1"):
        Budget(1.0, name="b", per="user", max_values=0)
    tracker = _tracker(MemoryLedger(), Budget(1.0, name="total"))
    with pytest.raises(ValueError, match="is not kept per value"):
        tracker.budget_status("total", "x")
