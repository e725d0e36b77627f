"""Exact money (issue 14 item 1): costs kept in integer nano-dollars in ledgers and
reports, so sums do not drift and a spend landing exactly on a limit is allowed.

In floats, 15 x $0.0075 + $0.0075 > $0.12: a call that lands exactly on a $0.12
budget was refused. Here it is admitted on every ledger, and one nano-dollar more
is refused; reports equal the exact (Decimal) sum of genai-prices' prices.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiscope
from aiscope.cost import (
    Budget,
    BudgetExceededError,
    CostTracker,
    MemoryLedger,
    Pricing,
    SQLiteLedger,
)
from aiscope.cost.ledger import NANOS_PER_USD, to_nanos
from aiscope.record import CallRecord, Usage

#: gpt-4o at its real rates ($2.50 / $10 per million): 1000 in + 500 out = $0.0075;
#: "nano" costs exactly one nano-dollar per input token
PRICES = {
    "openai/gpt-4o": {"input_mtok": "2.5", "output_mtok": "10"},
    "test/nano": {"input_mtok": "0.001", "output_mtok": "0"},
}


def test_a_spend_landing_exactly_on_the_limit_is_allowed_and_one_nano_more_is_refused(
    make_ledger: Callable[[], Any],
) -> None:
    tracker = CostTracker(budget_usd=0.12, ledger=make_ledger(), pricing=Pricing(PRICES))
    scope = aiscope.Scope(cost_tracker=tracker)
    assert sum([0.0075] * 16) > 0.12  # the float drift this guards against
    for _ in range(15):
        aiscope.record_call("gpt-4o", "openai", input_tokens=1000, output_tokens=500, scope=scope)
    # the 16th lands exactly on $0.12: reserved, then charged
    pending = scope.begin("gpt-4o", "openai", 1000, 500)
    assert pending.reservation is not None
    with pytest.raises(BudgetExceededError):  # full while it is in flight
        tracker.reserve("test", "nano", 1, 0)
    scope.emit(CallRecord(model="gpt-4o", provider="openai", usage=Usage(1000, 500)), pending)
    assert tracker.spent == 0.12 and tracker.remaining == 0.0
    # one nano-dollar more is refused, before the call
    with pytest.raises(BudgetExceededError) as err:
        tracker.reserve("test", "nano", 1, 0)
    assert (err.value.spent_usd, err.value.estimate_usd) == (0.12, 1e-9)
    st_ = tracker.budget_statuses()[0]
    assert (st_.spent_usd, st_.reserved_usd) == (0.12, 0.0)
    report = tracker.get_report()
    assert report.total_cost == 0.12 and report.by_model == {"gpt-4o": 0.12}


# -- reports equal the exact sum of the calls' prices ---------------------------------------
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
    ("google", "gemini-2.5-pro"),
]

usages = st.builds(
    lambda i, o, cr, cw, r: Usage(i + cr + cw, o + r, cache_read_tokens=cr,
                                  cache_write_tokens=cw, reasoning_tokens=r),
    st.integers(0, 300_000),
    st.integers(0, 20_000),
    st.integers(0, 50_000),
    st.integers(0, 5_000),
    st.integers(0, 5_000),
)  # fmt: skip
calls = st.lists(
    st.tuples(st.sampled_from(MODELS), usages, st.sampled_from(["a", "b", "c"]), st.integers(0, 3)),
    min_size=1,
    max_size=60,
)


def _exact(provider: str, model: str, u: Usage) -> Decimal:
    gp_usage = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens or None,
        cache_write_tokens=u.cache_write_tokens or None,
        output_reasoning_tokens=u.reasoning_tokens or None,
    )
    return Decimal(
        genai_prices.calc_price(gp_usage, model_ref=model, provider_id=provider).total_price
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_reports_and_budgets_equal_the_exact_sum_of_the_calls_prices(
    batch: list[tuple[tuple[str, str], Usage, str, int]],
) -> None:
    tracker = CostTracker(
        budgets=[Budget(1e6, "monthly", name="total"), Budget(1e6, name="team", per="team")],
        ledger=MemoryLedger(),
    )
    scope = aiscope.Scope(cost_tracker=tracker)
    total = Decimal(0)
    by: dict[str, dict[str, Decimal]] = {"model": {}, "team": {}, "user": {}}
    for (provider, model), usage, team, user in batch:
        tags = {"team": team, "user": f"u{user}"}
        pending = scope.begin(model, provider, usage.input_tokens, usage.output_tokens, tags=tags)
        scope.emit(CallRecord(model=model, provider=provider, usage=usage, tags=tags), pending)
        price = _exact(provider, model, usage)
        total += price
        for dim, key in (("model", model), ("team", team), ("user", f"u{user}")):
            by[dim][key] = by[dim].get(key, Decimal(0)) + price

    def usd(d: Decimal) -> float:
        # the exact sum as reports show it: whole nano-dollars, in dollars
        return int(d.scaleb(9).to_integral_value(ROUND_HALF_EVEN)) / NANOS_PER_USD

    report = tracker.get_report()
    assert report.total_cost == usd(total)
    assert report.by_model == {k: usd(v) for k, v in by["model"].items()}
    assert report.by_team == {k: usd(v) for k, v in by["team"].items()}
    assert report.by_user == {k: usd(v) for k, v in by["user"].items()}
    assert tracker.budget_status("total").spent_usd == usd(total)
    for team, spent in by["team"].items():
        st_ = tracker.budget_status("team", team)
        assert (st_.spent_usd, st_.reserved_usd) == (usd(spent), 0.0)


# -- genai-prices' data in nano-dollars -----------------------------------------------------
@pytest.mark.filterwarnings("ignore::aiscope.cost.UnknownModelWarning")
def test_every_bundled_price_converts_to_the_exact_nano_dollars_of_genai_prices_decimal() -> None:
    """Over every bundled model with a fixed price sheet: the cost the fast path gives,
    in nano-dollars, is genai-prices' exact Decimal total rounded to the nano-dollar.

    Most prices are whole nano-dollars per token, so that total is exact; a few are
    not (e.g. $0.00255 per million tokens, or openrouter's $0.0833... per million):
    their calls are rounded to the nearest nano-dollar once, when priced.
    """
    from genai_prices import data_snapshot, types

    pricing = Pricing()
    probes = [Usage(1_000, 500), Usage(123_457, 9_876, cache_read_tokens=50_001)]
    checked = whole = 0
    for prov in data_snapshot.get_snapshot().providers:
        for m in prov.models:
            if not isinstance(m.prices, types.ModelPrice):
                continue
            for u in probes:
                try:
                    want = Decimal(m.prices.calc_price(_gp_usage(u))["total_price"])
                except ValueError:
                    continue  # a usage this sheet cannot price (e.g. audio only)
                cost, status = pricing.cost(prov.id, m.id, u)
                if status != "ok" or cost is None:
                    continue  # the id resolves elsewhere first: not this sheet's price
                if Decimal(cost) and abs(Decimal(cost) - want) > want * Decimal("1e-15"):
                    continue
                nanos = want.scaleb(9)
                assert to_nanos(cost) == int(nanos.to_integral_value(ROUND_HALF_EVEN)), (
                    prov.id,
                    m.id,
                    u,
                    want,
                )
                checked += 1
                whole += nanos == nanos.to_integral_value()
    assert checked > 1500
    assert whole / checked > 0.9  # nano-dollars fit the great majority of prices exactly


def _gp_usage(u: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens or None,
    )


def test_server_rollups_sum_costs_exactly() -> None:
    """16 calls of $0.0075, one a minute: each hour and day rollup holds exactly $0.12,
    in integer nano-dollars (a float sum gives $0.12000000000000005)."""
    from aiscope.server.rollup import rollup_rows

    calls = [
        {
            "project_id": "p",
            "start_ts": 1_764_000_000.0 + 60 * i,
            "provider": "openai",
            "model": "gpt-4o",
            "feature": None,
            "team": None,
            "status": "ok",
            "input_tokens": 1000,
            "output_tokens": 500,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": 0.0075,
            "cost_status": "ok",
            "latency_ms": 100.0,
            "ttft_ms": None,
        }
        for i in range(16)
    ]
    rows = rollup_rows(calls)
    (day,) = [r for r in rows if r["resolution"] == 1440]  # 16:00-16:16 UTC: one day
    assert (day["calls"], day["cost_nanos"]) == (16, 120_000_000)


def test_a_sqlite_ledger_file_of_dollars_is_converted_to_integer_nano_dollars(
    tmp_path: Path,
) -> None:
    """A file an older aiscope wrote (USD as REAL) keeps its spend and reservations."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE aiscope_budget_spent (key TEXT PRIMARY KEY, spent REAL NOT NULL);
            CREATE TABLE aiscope_budget_reservations (id TEXT PRIMARY KEY, key TEXT NOT NULL,
                amount REAL NOT NULL, expires_at REAL NOT NULL);
            INSERT INTO aiscope_budget_spent VALUES ('default:total:all', 0.1125);
            """
        )
        old.execute(
            "INSERT INTO aiscope_budget_reservations VALUES ('r1', 'default:total:all', 0.0075, ?)",
            (time.time() + 600,),
        )
    ledger = SQLiteLedger(path)
    assert ledger.state("default:total:all") == (0.1125, 0.0075)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT typeof(spent), spent FROM aiscope_ledger_spent").fetchall() == [
            ("integer", 112_500_000)
        ]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "aiscope_budget_spent" not in tables
    assert ledger.settle("default:total:all", "r1", 0.0075) == 0.12
    assert ledger.try_reserve("default:total:all", 1e-9, 0.12) is None
