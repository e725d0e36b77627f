"""CostTracker: reports, attribution, budget windows, callbacks, and blocking."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import aiscope
from aiscope import Budget, BudgetExceededError, CostTracker, Scope, Usage
from aiscope.cost.budget import period_bounds


def _scope(tracker: CostTracker) -> Scope:
    return Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)


def _call(scope: Scope, model: str = "gpt-4o", i: int = 1000, o: int = 500, **tags: str) -> None:
    aiscope.record_call(
        model, "openai", input_tokens=i, output_tokens=o, latency_s=0.5, tags=tags, scope=scope
    )


def test_report_breakdowns() -> None:
    tracker = CostTracker(budget_usd=10.0, alert_threshold=0.8)
    scope = _scope(tracker)
    _call(scope, feature="search", team="growth")
    _call(scope, model="gpt-4o-mini", feature="chat", team="growth")
    with tracker.track("heavy_analysis"):
        _call(scope, feature="search", team="core")
    report = tracker.get_report()
    assert report.total_cost == pytest.approx(0.0075 * 2 + 0.00045)
    assert report.remaining == pytest.approx(10.0 - report.total_cost)
    assert report.by_model == {
        "gpt-4o": pytest.approx(0.015),
        "gpt-4o-mini": pytest.approx(0.00045),
    }
    assert report.by_feature == {"search": pytest.approx(0.015), "chat": pytest.approx(0.00045)}
    assert report.by_team == {"growth": pytest.approx(0.00795), "core": pytest.approx(0.0075)}
    assert report.by_operation == {"heavy_analysis": pytest.approx(0.0075)}
    assert tracker.get_operation_cost("heavy_analysis") == pytest.approx(0.0075)
    assert report.call_count == 3 and report.input_tokens == 3000 and report.output_tokens == 1500
    assert not tracker.is_near_limit() and not tracker.is_over_budget


def test_track_nests_and_works_in_async_tasks() -> None:
    tracker = CostTracker()
    scope = _scope(tracker)

    async def job(name: str) -> None:
        async with tracker.track(name):
            await asyncio.sleep(0)
            _call(scope)

    async def main() -> None:
        with tracker.track("outer"):
            await asyncio.gather(job("a"), job("b"), job("a"))
            with tracker.track("inner"):
                _call(scope)
        _call(scope)  # outside every operation

    asyncio.run(main())
    assert tracker.get_operation_cost("outer") == pytest.approx(0.0075 * 4)
    assert tracker.get_operation_cost("a") == pytest.approx(0.015)
    assert tracker.get_operation_cost("b") == pytest.approx(0.0075)
    assert tracker.get_operation_cost("inner") == pytest.approx(0.0075)
    assert tracker.get_operation_cost("nothing") == 0.0
    assert tracker.get_report().total_cost == pytest.approx(0.0075 * 5)


def test_track_as_decorator() -> None:
    tracker = CostTracker()
    scope = _scope(tracker)

    @tracker.track("summarize")
    def summarize() -> None:
        _call(scope)

    summarize()
    assert tracker.get_operation_cost("summarize") == pytest.approx(0.0075)


def test_block_mode_refuses_before_the_call() -> None:
    tracker = CostTracker(budget_usd=0.02)
    scope = _scope(tracker)
    sent = 0
    refused = 0
    for _ in range(10):
        try:
            with aiscope.llm_call(
                "gpt-4o", "openai", input_tokens=1000, max_output_tokens=500, scope=scope
            ) as call:
                sent += 1
                call.set_usage(1000, 500)
        except BudgetExceededError as exc:
            refused += 1
            assert exc.limit_usd == 0.02 and exc.estimate_usd == pytest.approx(0.0075)
    assert (sent, refused) == (2, 8)
    assert tracker.spent == pytest.approx(0.015)
    assert tracker.get_report().refused_calls == 8


def test_warn_mode_never_blocks_but_calls_back() -> None:
    seen: list[tuple[str, float]] = []
    tracker = CostTracker(
        budget_usd=0.01,
        mode="warn",
        on_threshold=lambda t, st: seen.append(("threshold", st.spent_usd)),
        on_exceed=lambda t, st: seen.append(("exceed", st.spent_usd)),
    )
    scope = _scope(tracker)
    for _ in range(4):
        _call(scope)
    assert [k for k, _ in seen] == ["threshold", "exceed"]  # each once
    assert tracker.is_over_budget and tracker.is_near_limit()
    assert tracker.remaining == 0.0


def test_failed_call_releases_reservation() -> None:
    tracker = CostTracker(budget_usd=1.0)
    scope = _scope(tracker)
    with (
        pytest.raises(RuntimeError),
        aiscope.llm_call("gpt-4o", "openai", input_tokens=10, max_output_tokens=10, scope=scope),
    ):
        raise RuntimeError("provider down")
    status = tracker.budget_statuses()[0]
    assert status.reserved_usd == 0.0 and status.spent_usd == 0.0
    assert tracker.get_report().error_count == 1


def test_several_budgets_and_windows() -> None:
    tracker = CostTracker(
        budgets=[Budget(1.0, "daily", name="day"), Budget(0.01, "monthly", name="month")]
    )
    scope = _scope(tracker)
    _call(scope)
    with pytest.raises(BudgetExceededError, match="'month'"):
        scope.begin("gpt-4o", "openai", 1000, 500)
    # the refused reservation released what it held on the daily budget
    day = next(s for s in tracker.budget_statuses() if s.name == "day")
    assert day.reserved_usd == 0.0 and day.spent_usd == pytest.approx(0.0075)


def test_period_bounds_are_utc() -> None:
    # 2026-11-23 23:59:59 UTC and one second later
    label, start, end = period_bounds("daily", 1795478399.0)
    assert label == "2026-11-23" and end == 1795478400.0 and end - start == 86400
    assert period_bounds("daily", 1795478400.0)[0] == "2026-11-24"
    assert period_bounds("monthly", 1795478400.0)[0] == "2026-11"
    assert period_bounds("total", 0.0)[0] == "all"


def test_bad_budget_input() -> None:
    with pytest.raises(
        ValueError, match="budget window must be one of total, daily, monthly; got 'weekly'"
    ):
        CostTracker(budget_usd=1, window="weekly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit_usd"):
        CostTracker(budget_usd=-1)
    with pytest.raises(TypeError, match="limit_usd"):
        CostTracker(budget_usd="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alert_threshold"):
        CostTracker(budget_usd=1, alert_threshold=1.5)
    with pytest.raises(ValueError, match="mode"):
        CostTracker(budget_usd=1, mode="stop")  # type: ignore[arg-type]


def test_sqlite_ledger_is_shared(tmp_path: Path) -> None:
    path = tmp_path / "budget.db"
    a = CostTracker(budget_usd=1.0, ledger=path)
    b = CostTracker(budget_usd=1.0, ledger=path)
    _call(_scope(a))
    _call(_scope(b))
    assert a.spent == pytest.approx(0.015) == b.spent
    assert a.get_report().total_cost == pytest.approx(0.0075)  # local totals stay local


def test_rlm_toolkit_style_record() -> None:
    tracker = CostTracker(budget_usd=10.0)
    tracker.record("openai", "gpt-4o", 1000, 500, 0.5)
    tracker.record("openai", "gpt-4o", 1000, 500)  # priced by us
    assert tracker.get_report().total_cost == pytest.approx(0.5075)


def test_usage_estimated_flag_survives() -> None:
    tracker = CostTracker()
    scope = _scope(tracker)
    with aiscope.llm_call("gpt-4o", "openai", scope=scope) as call:
        call.set_usage(10, 10, estimated=True)
    assert call.stats.usage_estimated
    assert Usage(1, 1, estimated=True).estimated
