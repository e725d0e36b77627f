"""The record and its validation: bad input is refused whole, naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

import aiscope
from aiscope import CallRecord, Usage
from aiscope.scope import Scope


def test_usage_rejects_negative_and_non_int() -> None:
    with pytest.raises(ValueError, match=r"usage\.input_tokens"):
        Usage(input_tokens=-1)
    with pytest.raises(TypeError, match=r"usage\.output_tokens"):
        Usage(output_tokens=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"usage\.input_tokens"):
        Usage(input_tokens=True)
    with pytest.raises(ValueError, match="cache_read_tokens"):
        Usage(input_tokens=10, cache_read_tokens=11)
    with pytest.raises(ValueError, match="reasoning_tokens"):
        Usage(output_tokens=3, reasoning_tokens=4)


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [
        ({"latency_s": math.nan}, ValueError, "latency_s"),
        ({"latency_s": -0.1}, ValueError, "latency_s"),
        ({"latency_s": "1"}, TypeError, "latency_s"),
        ({"time_to_first_token_s": math.inf}, ValueError, "time_to_first_token_s"),
        ({"tags": {"feature": 3}}, TypeError, "tags\\['feature'\\]"),
        ({"tags": {"team": None}}, TypeError, "tags\\['team'\\]"),
        ({"status": "weird"}, ValueError, "status"),
        ({"model": ""}, ValueError, "model"),
        ({"retry_count": -2}, ValueError, "retry_count"),
        ({"cost_usd": math.nan}, ValueError, "cost_usd"),
    ],
)
def test_bad_record_is_refused_and_nothing_recorded(
    scope: Scope, kwargs: dict[str, object], exc: type[Exception], field: str
) -> None:
    record = CallRecord(model="gpt-4o", provider="openai", usage=Usage(10, 5))
    for key, value in kwargs.items():
        setattr(record, key, value)
    with pytest.raises(exc, match=field):
        scope.emit(record)
    assert scope.cost_tracker is not None and scope.metrics is not None
    assert scope.cost_tracker.get_report().call_count == 0
    assert "ai_lib_requests_total{" not in scope.metrics.export_prometheus()


def test_record_call_bad_input_names_field(scope: Scope) -> None:
    with pytest.raises(ValueError, match="latency_s"):
        aiscope.record_call("gpt-4o", "openai", input_tokens=1, latency_s=math.nan)
    with pytest.raises(ValueError, match=r"usage\.output_tokens"):
        aiscope.record_call("gpt-4o", "openai", output_tokens=-5)
    with pytest.raises(TypeError, match="tags\\['user'\\]"):
        aiscope.record_call("gpt-4o", "openai", tags={"user": 42})  # type: ignore[dict-item]
    assert scope.cost_tracker is not None
    assert scope.cost_tracker.get_report().call_count == 0


def test_stats_view_has_every_seed_field() -> None:
    rec = CallRecord(
        model="gpt-4o",
        provider="openai",
        response_model="gpt-4o-2024-08-06",
        latency_s=1.25,
        time_to_first_token_s=0.2,
        usage=Usage(100, 40, cache_read_tokens=60, reasoning_tokens=10),
        cost_usd=0.001,
        retry_count=2,
    )
    st = rec.stats()
    assert (st.model, st.provider) == ("gpt-4o-2024-08-06", "openai")
    assert (st.prompt_tokens, st.completion_tokens, st.total_tokens) == (100, 40, 140)
    assert st.latency_ms == pytest.approx(1250.0)
    assert st.time_to_first_token_ms == pytest.approx(200.0)
    assert (st.cost_usd, st.request_id, st.retry_count) == (0.001, rec.request_id, 2)
    assert (st.cached_tokens, st.reasoning_tokens) == (60, 10)


_ANY_VALUES = (
    None,
    "",
    "x",
    0,
    1,
    -1,
    True,
    2.5,
    -0.5,
    math.nan,
    math.inf,
    b"x",
    ["x"],
    {"a": "b"},
)
_FIELDS = (
    "model",
    "provider",
    "operation",
    "request_id",
    "upstream_request_id",
    "trace_id",
    "span_id",
    "response_model",
    "start_time",
    "latency_s",
    "time_to_first_token_s",
    "status",
    "error_type",
    "retry_count",
    "cost_usd",
    "tags",
)


class _IntSub(int):
    pass


_USAGE_FIELDS = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
]


def _spoil_usage(rng: Any, u: Usage, most: int, values: tuple[object, ...]) -> None:
    """Set up to ``most - 1`` of ``u``'s fields to values picked from ``values``."""
    for name in rng.sample(_USAGE_FIELDS, rng.randrange(0, most)):
        object.__setattr__(u, name, rng.choice(values))


def _outcome(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_fast_validation_agrees_with_the_field_by_field_checks() -> None:
    # validate() accepts common records with one expression and sends everything
    # else to the detailed checks: over every field and many odd values, both must
    # come to the same verdict (and the same message).
    import random

    rng = random.Random(1)
    cases = 0
    for _ in range(4000):
        rec = CallRecord(model="m", provider="p", tags={"feature": "f"})
        for name in rng.sample(_FIELDS, rng.randrange(0, 3)):
            object.__setattr__(rec, name, rng.choice(_ANY_VALUES))
        _spoil_usage(rng, rec.usage, 3, (0, 3, -1, 7, 1.0, True, None, _IntSub(2)))
        if rng.random() < 0.1:
            rec.tags = {rng.choice(("a", 1)): rng.choice(("b", 2, None))}  # type: ignore[dict-item]
        assert _outcome(rec.validate) == _outcome(rec._validate_fields), rec
        cases += _outcome(rec.validate) != "ok"
    assert 1000 < cases < 3900  # both verdicts were exercised


def test_fast_usage_validation_agrees_with_the_field_by_field_checks() -> None:
    import random

    rng = random.Random(2)
    values = (0, 1, 3, 7, 100, -1, 1.0, True, False, None, "3", _IntSub(2))
    verdicts = set()
    for _ in range(5000):
        u = Usage(10, 10)
        _spoil_usage(rng, u, 4, values)
        assert _outcome(u.validate) == _outcome(u._validate_fields), u
        verdicts.add(_outcome(u.validate) == "ok")
    assert verdicts == {True, False}
