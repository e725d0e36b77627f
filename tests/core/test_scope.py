"""configure(), the current scope, and context tags."""

from __future__ import annotations

import asyncio
import threading

import pytest

import aiscope
from aiscope import CostTracker, MetricsCollector, Scope


def test_configure_sets_the_default_and_use_scope_overrides() -> None:
    default = aiscope.configure(metrics=MetricsCollector(), cost_tracker=CostTracker())
    try:
        assert aiscope.current_scope() is default
        other = Scope(cost_tracker=CostTracker())
        with aiscope.use_scope(other):
            assert aiscope.current_scope() is other
            aiscope.record_call("gpt-4o", "openai", input_tokens=1000)
        assert aiscope.current_scope() is default
        assert other.cost_tracker is not None and default.cost_tracker is not None
        assert other.cost_tracker.get_report().call_count == 1
        assert default.cost_tracker.get_report().call_count == 0
    finally:
        aiscope.configure()


def test_use_scope_is_per_thread() -> None:
    a = Scope(cost_tracker=CostTracker())
    seen: list[Scope] = []
    with aiscope.use_scope(a):
        t = threading.Thread(target=lambda: seen.append(aiscope.current_scope()))
        t.start()
        t.join()
    assert seen[0] is not a


def test_tags_nest_and_follow_tasks() -> None:
    tracker = CostTracker()
    scope = Scope(cost_tracker=tracker)

    async def call(feature: str) -> None:
        with aiscope.tags(feature=feature):
            await asyncio.sleep(0)
            aiscope.record_call("gpt-4o", "openai", input_tokens=1000, scope=scope)

    async def main() -> None:
        with aiscope.tags(team="growth", feature="outer"):
            await asyncio.gather(call("a"), call("b"))
            aiscope.record_call("gpt-4o", "openai", input_tokens=1000, scope=scope)

    asyncio.run(main())
    report = tracker.get_report()
    assert report.by_team == {"growth": pytest.approx(0.0075)}
    assert report.by_feature == {
        "a": pytest.approx(0.0025),
        "b": pytest.approx(0.0025),
        "outer": pytest.approx(0.0025),
    }
    with pytest.raises(TypeError, match="tag 'team'"), aiscope.tags(team=1):  # type: ignore[arg-type]
        pass


def test_scope_rejects_wrong_sinks() -> None:
    with pytest.raises(TypeError, match="metrics"):
        Scope(metrics=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracer"):
        Scope(tracer=object())  # type: ignore[arg-type]


async def test_llm_call_async_and_decorator() -> None:
    tracker = CostTracker(budget_usd=1.0)
    scope = Scope(metrics=MetricsCollector(), cost_tracker=tracker)

    @aiscope.llm_call(
        "gpt-4o",
        "openai",
        scope=scope,
        usage_from=lambda r: {"input_tokens": r, "output_tokens": 10},
    )
    async def ask(n: int) -> int:
        await asyncio.sleep(0.001)
        return n

    await asyncio.gather(*(ask(100 * i) for i in range(1, 4)))
    async with aiscope.llm_call("gpt-4o", "openai", scope=scope) as call:
        call.first_token()
        call.set_usage(5, 5)
        call.set_response(model="gpt-4o-2024-08-06", request_id="req-1", finish_reasons=["stop"])
    assert call.stats.model == "gpt-4o-2024-08-06" and call.stats.upstream_request_id == "req-1"
    assert call.stats.time_to_first_token_ms is not None
    assert tracker.get_report().call_count == 4
    assert tracker.get_report().input_tokens == 605
