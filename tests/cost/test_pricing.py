"""Prices: exactly genai-prices' own numbers, overrides, and no made-up defaults."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

import aiscope
from aiscope import Pricing, Usage
from aiscope.cost.pricing import UnknownModelWarning

CASES = [
    ("openai", "gpt-4o", Usage(1000, 500)),
    ("openai", "gpt-4o-mini", Usage(1000, 500)),
    ("openai", "gpt-4o-mini", Usage(123_457, 9_876)),
    ("anthropic", "claude-sonnet-4-5", Usage(1000, 500)),
    (
        "anthropic",
        "claude-sonnet-4-5",
        Usage(2000, 700, cache_read_tokens=1500, cache_write_tokens=300),
    ),
    ("anthropic", "claude-sonnet-4-5", Usage(300_000, 500)),  # above the 200k tier
    ("openai", "gpt-4o", Usage(1000, 500, cache_read_tokens=800)),  # cached input
    ("openai", "o3", Usage(1000, 900, reasoning_tokens=700)),
    ("google", "gemini-2.5-pro", Usage(250_000, 1000, cache_read_tokens=1000)),
    ("deepseek", "deepseek-chat", Usage(5000, 100, cache_read_tokens=4000)),  # time-of-day prices
]


def _gp(u: Usage) -> genai_prices.Usage:
    kw = {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_reasoning_tokens": u.reasoning_tokens,
    }
    return genai_prices.Usage(**{k: v for k, v in kw.items() if v or k.endswith("put_tokens")})


@pytest.mark.parametrize(("provider", "model", "usage"), CASES)
def test_matches_genai_prices_exactly(provider: str, model: str, usage: Usage) -> None:
    pricing = Pricing()
    want = genai_prices.calc_price(_gp(usage), model_ref=model, provider_id=provider).total_price
    cost, status = pricing.cost(provider, model, usage)
    assert status == "ok"
    assert cost == float(want)  # the correctly rounded float of the exact decimal
    assert pricing.cost_decimal(provider, model, usage) == want


def test_cached_input_case_from_notes() -> None:
    # NOTES.md: 1000 in / 500 out on gpt-4o is $0.0075; with 800 cached, $0.0065.
    pricing = Pricing()
    assert pricing.cost("openai", "gpt-4o", Usage(1000, 500))[0] == 0.0075
    assert pricing.cost("openai", "gpt-4o", Usage(1000, 500, cache_read_tokens=800))[0] == 0.0065


def test_price_at_call_time_uses_the_timestamp() -> None:
    # DeepSeek's prices depend on the time of day (UTC): priced at the record's time.
    pricing = Pricing()
    usage = Usage(100_000, 10_000)
    from datetime import UTC, datetime

    for hour in (3, 18):
        at = datetime(2025, 3, 1, hour, 0, tzinfo=UTC)
        want = genai_prices.calc_price(
            _gp(usage),
            model_ref="deepseek-chat",
            provider_id="deepseek",
            genai_request_timestamp=at,
        ).total_price
        assert pricing.cost("deepseek", "deepseek-chat", usage, at=at.timestamp())[0] == float(want)


def test_unknown_model_is_none_with_one_warning_and_a_count() -> None:
    pricing = Pricing()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert pricing.cost("openai", "no-such-model-xyz", Usage(10, 10)) == (
                None,
                "unknown_model",
            )
    assert len([w for w in caught if issubclass(w.category, UnknownModelWarning)]) == 1
    assert pricing.unknown_counts[("openai", "no-such-model-xyz")] == 3


def test_unknown_model_flows_as_none_through_the_scope() -> None:
    scope = aiscope.Scope(metrics=aiscope.MetricsCollector(), cost_tracker=aiscope.CostTracker())
    with pytest.warns(UnknownModelWarning):
        st = aiscope.record_call("my-finetune-zzz", "acme", input_tokens=5, scope=scope)
    assert st.cost_usd is None and st.cost_status == "unknown_model"
    assert scope.cost_tracker is not None and scope.metrics is not None
    assert scope.cost_tracker.get_report().unpriced_calls == 1
    text = scope.metrics.export_prometheus()
    labels = 'model="my-finetune-zzz",provider="acme",reason="unknown_model"'
    assert f"ai_lib_unpriced_requests_total{{{labels}}} 1.0" in text


def test_overrides_from_dict_and_files(tmp_path: Path) -> None:
    spec = {"my-model": {"input_mtok": 1.5, "output_mtok": 6, "cache_read_mtok": 0.15}}
    p = Pricing(spec)
    assert p.cost("any", "my-model", Usage(1_000_000, 0)) == (1.5, "override")
    # cached tokens at the cache price, the rest at the input price
    assert p.cost_decimal(
        "any", "my-model", Usage(1_000_000, 1_000_000, cache_read_tokens=500_000)
    ) == (Decimal("0.75") + Decimal("0.075") + Decimal("6"))
    # an override wins over the bundled price
    p2 = Pricing({"openai/gpt-4o": {"input_mtok": 1, "output_mtok": 1}})
    assert p2.cost("openai", "gpt-4o", Usage(1_000_000, 1_000_000))[0] == 2.0
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text("models:\n  my-model:\n    input_mtok: 2\n    output_mtok: 4\n")
    assert Pricing(yaml_file).cost("x", "my-model", Usage(500_000, 0))[0] == 1.0
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps(spec))
    assert Pricing(json_file).cost("x", "my-model", Usage(0, 1_000_000))[0] == 6.0


def test_override_file_typo_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("my-model:\n  input_mtok: 1\n  ouput_mtok: 2\n")
    with pytest.raises(
        ValueError, match=r"prices.yaml: unknown price key 'ouput_mtok'.*output_mtok"
    ):
        Pricing(bad)
    bad.write_text("my-model:\n  input_mtok: cheap\n  output_mtok: 2\n")
    with pytest.raises(ValueError, match=r"my-model.input_mtok must be a number"):
        Pricing(bad)
    bad.write_text("my-model:\n  input_mtok: -1\n  output_mtok: 2\n")
    with pytest.raises(ValueError, match=r">= 0"):
        Pricing(bad)
    bad.write_text("my-model: [1, 2\n")
    with pytest.raises(ValueError, match="not valid"):
        Pricing(bad)
    with pytest.raises(ValueError, match="cannot read"):
        Pricing(tmp_path / "missing.yaml")


def test_estimate_is_an_upper_bound() -> None:
    p = Pricing()
    est = p.estimate("anthropic", "claude-sonnet-4-5", 1000, 500)
    assert est is not None
    for usage in (
        Usage(1000, 500),
        Usage(1000, 500, cache_write_tokens=1000),
        Usage(1000, 500, cache_read_tokens=900),
    ):
        cost = p.cost("anthropic", "claude-sonnet-4-5", usage)[0]
        assert cost is not None and cost <= est
    with pytest.warns(UnknownModelWarning):
        assert p.estimate("x", "unknown-model-q", 10, 10) is None


@pytest.mark.filterwarnings("ignore::aiscope.cost.pricing.UnknownModelWarning")
def test_fast_estimate_equals_the_two_priced_usages() -> None:
    # estimate() prices all input both as plain and as cache writes and keeps the
    # dearer; for models with a constant sheet it sums that in one go. Over every
    # bundled model with a constant price (tiered ones included), and overrides,
    # the result is the same float.
    snapshot = genai_prices.data_snapshot.get_snapshot()
    p = Pricing({"acme/big": {"input_mtok": 1.1, "output_mtok": 3.3, "cache_write_mtok": 2.2}})
    models = [("acme", "big")] + [
        (prov.id, m.id) for prov in snapshot.providers for m in prov.models
    ]
    checked = 0
    for provider, model in models:
        for tin, tout in ((0, 0), (1, 1), (1234, 567), (250_000, 8192)):
            p.cost(provider, model, Usage(tin, tout))  # resolve the entry first
            fast = p.estimate(provider, model, tin, tout)
            plain = p.cost(provider, model, Usage(tin, tout))[0]
            written = p.cost(provider, model, Usage(tin, tout, cache_write_tokens=tin))[0]
            if plain is None:
                assert fast is None
                continue
            assert fast == max(plain, written or 0.0), (provider, model, tin, tout)
            checked += 1
    assert checked > 1000


def test_describe_for_cli() -> None:
    price = Pricing().describe("openai/gpt-4o")
    assert price is not None
    assert price.input_mtok == Decimal("2.5") and price.output_mtok == Decimal("10")
    assert Pricing().describe("nope-nope") is None


def test_a_call_at_a_provider_without_the_model_is_not_priced_at_another_providers_rate() -> None:
    pricing = Pricing()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        assert pricing.cost("anthropic", "gpt-4o", Usage(1000, 500)) == (None, "unknown_model")
        assert pricing.cost("nosuchprov", "gpt-4o", Usage(1000, 500)) == (None, "unknown_model")
        assert pricing.describe("gpt-4o", "anthropic") is None
    assert pricing.cost("openai", "gpt-4o", Usage(1000, 500))[0] == pytest.approx(0.0075)
    assert pricing.cost("", "gpt-4o", Usage(1000, 500))[0] == pytest.approx(0.0075)  # any
    assert "openai" in pricing.providers_of("gpt-4o")
    assert "anthropic" not in pricing.providers_of("gpt-4o")
    assert pricing.suggest("gpt4o")[0] == "gpt-4o"
