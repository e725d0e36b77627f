"""Synthetic workloads for the alert rules, fed both to the in-process evaluator and
(as the counter/histogram series MetricsCollector would expose, sampled each minute)
to ``promtool test rules``. Each scenario says by hand which of the 16 default rules
(8 seed rules, in aggregate and per model) must be firing at its end.

The promtool side is shipped: ``tests/alerts/promtool/aiscope-rules.yml`` (what
``aiscope alerts export-prometheus`` writes) and ``tests/alerts/promtool/aiscope-rules.test.yml``
(these scenarios as ``promtool test rules`` tests), so anyone can run
``promtool test rules tests/alerts/promtool/aiscope-rules.test.yml``. After changing a
scenario, a rule or the buckets, rewrite both with ``python tests/alerts/alert_scenarios.py``
(``tests/alerts/test_alerts_prometheus.py`` fails until they are current).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.utils import floatToGoString

from aiscope.alerts import AlertEvaluator, AlertRule, default_rules, export_prometheus_rules
from aiscope.feedback import Feedback
from aiscope.metrics.collector import DURATION_BUCKETS
from aiscope.record import CallRecord, Usage

MINUTES = 30
PROVIDER = {"gpt-4o": "openai", "claude-sonnet-4-5": "anthropic"}
TEAM = {"gpt-4o": "growth", "claude-sonnet-4-5": "support"}


@dataclass(frozen=True)
class Call:
    model: str
    latency_s: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    feature: str = "chat"


@dataclass(frozen=True)
class Score:
    model: str
    score: float
    feature: str = "chat"


Minute = Callable[[int], list[Call | Score]]


@dataclass
class Scenario:
    name: str
    per_minute: Minute  # the events of minute k (1..MINUTES), all at k*60 - 25 s
    expected: set[tuple[str, str]]  # (rule name, model or "")
    events: list[tuple[float, Call | Score]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = [
            (k * 60.0 - 25.0, e) for k in range(1, MINUTES + 1) for e in self.per_minute(k)
        ]


def _n(n: int, e: Call | Score) -> list[Call | Score]:
    return [e] * n


SCENARIOS = [
    Scenario(
        "quiet",
        lambda k: [
            *_n(5, Call("gpt-4o", 0.5, 0.01, 400, 100)),
            *_n(5, Call("claude-sonnet-4-5", 0.3, 0.01, 400, 100)),
            Score("gpt-4o", 0.9),
            Score("claude-sonnet-4-5", 0.8),
        ],
        set(),
    ),
    Scenario(  # $60 today in cheap calls: only the warning
        "budget_warning",
        lambda k: _n(40, Call("gpt-4o", 0.5, 0.05, 10, 10)),
        {("daily_budget_warning", ""), ("daily_budget_warning_by_model", "gpt-4o")},
    ),
    Scenario(  # $75 + $45 = $120: critical in aggregate; per model only gpt-4o's warning
        "budget_critical",
        lambda k: [
            *_n(50, Call("gpt-4o", 0.5, 0.05, 10, 10)),
            *_n(30, Call("claude-sonnet-4-5", 0.5, 0.05, 10, 10)),
        ],
        {
            ("daily_budget_warning", ""),
            ("daily_budget_critical", ""),
            ("daily_budget_warning_by_model", "gpt-4o"),
        },
    ),
    Scenario(  # claude at $0.50 a call; the aggregate stays under $0.10 a call
        "cost_spike",
        lambda k: [
            *_n(10, Call("gpt-4o", 0.5, 0.01, 10, 10)),
            *_n(2, Call("claude-sonnet-4-5", 0.5, 0.5, 10, 10)),
        ],
        {("cost_per_request_spike_by_model", "claude-sonnet-4-5")},
    ),
    Scenario(  # 1 gpt-4o call in 10 takes 7 s: its p95 is over 5 s, its p99 under 10 s
        "p95_latency",
        lambda k: [
            *_n(9, Call("gpt-4o", 0.5, 0.001, 10, 10)),
            Call("gpt-4o", 7.0, 0.001, 10, 10),
            *_n(10, Call("claude-sonnet-4-5", 0.3, 0.001, 10, 10)),
        ],
        {("p95_latency_warning_by_model", "gpt-4o")},
    ),
    Scenario(  # 1 claude call in 5 takes 12 s
        "p99_latency",
        lambda k: [
            *_n(8, Call("claude-sonnet-4-5", 0.3, 0.001, 10, 10)),
            *_n(2, Call("claude-sonnet-4-5", 12.0, 0.001, 10, 10)),
        ],
        {
            ("p95_latency_warning", ""),
            ("p95_latency_warning_by_model", "claude-sonnet-4-5"),
            ("p99_latency_critical", ""),
            ("p99_latency_critical_by_model", "claude-sonnet-4-5"),
        },
    ),
    Scenario(  # gpt-4o alone at $1 a call: $120 today, over $0.10 a call, in both views
        "expensive_calls",
        lambda k: _n(4, Call("gpt-4o", 0.5, 1.0, 10, 10)),
        {
            ("daily_budget_warning", ""),
            ("daily_budget_critical", ""),
            ("daily_budget_warning_by_model", "gpt-4o"),
            ("daily_budget_critical_by_model", "gpt-4o"),
            ("cost_per_request_spike", ""),
            ("cost_per_request_spike_by_model", "gpt-4o"),
        },
    ),
    Scenario(  # every call at 5.5 s: a p95 over 5 s, but a p99 of 5.5 s, not over 10 s
        # (interpolated in the old 5.12..10.24 s bucket the p99 read 10.19 s and fired)
        "every_call_5_5s",
        lambda k: [
            *_n(5, Call("gpt-4o", 5.5, 0.001, 10, 10)),
            *_n(5, Call("claude-sonnet-4-5", 5.5, 0.001, 10, 10)),
        ],
        {
            ("p95_latency_warning", ""),
            ("p95_latency_warning_by_model", "gpt-4o"),
            ("p95_latency_warning_by_model", "claude-sonnet-4-5"),
        },
    ),
    Scenario(  # every call at 4.8 s: just under the p95 threshold, nothing fires
        "every_call_4_8s",
        lambda k: _n(5, Call("gpt-4o", 4.8, 0.001, 10, 10)),
        set(),
    ),
    Scenario(  # every call at 9.5 s: p95 over 5 s, p99 just under 10 s
        "every_call_9_5s",
        lambda k: _n(5, Call("gpt-4o", 9.5, 0.001, 10, 10)),
        {("p95_latency_warning", ""), ("p95_latency_warning_by_model", "gpt-4o")},
    ),
    Scenario(  # every call at 10.5 s: just over 10 s, both latency rules fire
        "every_call_10_5s",
        lambda k: _n(5, Call("gpt-4o", 10.5, 0.001, 10, 10)),
        {
            ("p95_latency_warning", ""),
            ("p95_latency_warning_by_model", "gpt-4o"),
            ("p99_latency_critical", ""),
            ("p99_latency_critical_by_model", "gpt-4o"),
        },
    ),
    Scenario(  # gpt-4o's answers score 0.6, claude's 0.9: the mean (0.75) is fine
        "quality_drop",
        lambda k: [
            *_n(2, Call("gpt-4o", 0.5, 0.001, 10, 10)),
            Score("gpt-4o", 0.6),
            Score("claude-sonnet-4-5", 0.9, feature="search"),
        ],
        {("quality_degradation_by_model", "gpt-4o")},
    ),
    Scenario(
        "quality_critical",
        lambda k: [Score("gpt-4o", 0.4), Score("claude-sonnet-4-5", 0.45, feature="search")],
        {
            ("quality_degradation", ""),
            ("quality_critical_drop", ""),
            ("quality_degradation_by_model", "gpt-4o"),
            ("quality_critical_drop_by_model", "gpt-4o"),
            ("quality_degradation_by_model", "claude-sonnet-4-5"),
            ("quality_critical_drop_by_model", "claude-sonnet-4-5"),
        },
    ),
    Scenario(  # 60k tokens a minute: over 1M within the hour, cheap
        "tokens",
        lambda k: [Call("gpt-4o", 0.5, 0.001, 50_000, 10_000)],
        {("high_token_usage", ""), ("high_token_usage_by_model", "gpt-4o")},
    ),
]


# -- in process ---------------------------------------------------------------------------
def record_of(t: float, c: Call) -> CallRecord:
    return CallRecord(
        model=c.model,
        provider=PROVIDER[c.model],
        start_time=t - c.latency_s,
        latency_s=c.latency_s,
        usage=Usage(c.input_tokens, c.output_tokens),
        cost_usd=c.cost_usd,
        cost_status="override",
        tags={"feature": c.feature, "team": TEAM[c.model]},
    )


def feedback_of(t: float, s: Score) -> Feedback:
    return Feedback(
        request_id="r",
        score=s.score,
        joined=True,
        model=s.model,
        provider=PROVIDER[s.model],
        feature=s.feature,
        team=TEAM[s.model],
        time=t,
    )


def run_in_process(scenario: Scenario) -> set[tuple[str, str]]:
    """Feed the scenario minute by minute, evaluating at every minute as Prometheus
    does (interval 1m); the alerts firing at the end."""
    ev = AlertEvaluator()
    events = iter(scenario.events)
    pending = next(events, None)
    for minute in range(MINUTES + 1):
        now = minute * 60.0
        while pending is not None and pending[0] <= now:
            t, e = pending
            if isinstance(e, Call):
                ev.on_record(record_of(t, e))
            else:
                ev.on_feedback(feedback_of(t, e))
            pending = next(events, None)
        ev.evaluate(now)
    return {(a.rule, a.labels.get("model", "")) for a in ev.firing()}


# -- as Prometheus series -----------------------------------------------------------------
def series_of(scenario: Scenario) -> dict[str, list[float]]:
    """Every series MetricsCollector would expose, sampled at minutes 0..MINUTES."""
    bounds = [*DURATION_BUCKETS, float("inf")]
    deltas: dict[str, list[float]] = {}

    def add(series: str, minute: int, value: float) -> None:
        deltas.setdefault(series, [0.0] * (MINUTES + 1))[minute] += value

    for t, e in scenario.events:
        minute = int(t // 60) + 1
        labels = f'model="{e.model}",provider="{PROVIDER[e.model]}",feature="{e.feature}"'
        if isinstance(e, Score):
            q = f'model="{e.model}",feature="{e.feature}",source="human"'
            add(f"ai_lib_quality_score_sum{{{q}}}", minute, e.score)
            add(f"ai_lib_quality_score_count{{{q}}}", minute, 1)
            continue
        labels += f',team="{TEAM[e.model]}"'
        add(f'ai_lib_requests_total{{{labels},status="ok"}}', minute, 1)
        add(f"ai_lib_cost_usd_total{{{labels}}}", minute, e.cost_usd)
        add(f'ai_lib_tokens_total{{{labels},type="input"}}', minute, e.input_tokens)
        add(f'ai_lib_tokens_total{{{labels},type="output"}}', minute, e.output_tokens)
        first = bisect_left(bounds, e.latency_s)
        for b in bounds[first:]:
            le = "+Inf" if b == float("inf") else floatToGoString(b)
            add(f'ai_lib_request_duration_seconds_bucket{{{labels},le="{le}"}}', minute, 1)
    out: dict[str, list[float]] = {}
    for name, d in deltas.items():
        acc, values = 0.0, []
        for v in d:
            acc += v
            values.append(round(acc, 9))
        out[name] = values
    return out


# -- as promtool tests (the shipped files) ------------------------------------------------
PROMTOOL_DIR = Path(__file__).parent / "promtool"
RULES_FILE = PROMTOOL_DIR / "aiscope-rules.yml"
TESTS_FILE = PROMTOOL_DIR / "aiscope-rules.test.yml"


def _exp_alert(rule: AlertRule, model: str) -> dict[str, Any]:
    labels = {"severity": rule.severity}
    where = ""
    if model:
        labels["model"] = model
        where = f" model={model}"
    return {
        "exp_labels": labels,
        "exp_annotations": {
            "summary": f"{rule.name}{where}: {rule.signal_name} {rule.comparison} "
            f"{rule.threshold:g}",
            "description": rule.description,
        },
    }


def _values(values: list[float]) -> str:
    """promtool's notation for a series: ``a+bxN`` when it grows by ``b`` a minute."""
    step = values[1] - values[0]
    if all(abs(v - (values[0] + step * i)) < 1e-9 for i, v in enumerate(values)):
        return f"{values[0]:g}+{round(step, 9):g}x{len(values) - 1}"
    return " ".join(f"{v:g}" for v in values)


def promtool_test(scenario: Scenario, expected: set[tuple[str, str]]) -> dict[str, Any]:
    """One ``promtool test rules`` test: the scenario's series, and for every one of the
    16 rules the alerts that must be firing at the end (``expected``; none elsewhere)."""
    rules = default_rules()
    return {
        "name": scenario.name,
        "interval": "1m",
        "input_series": [
            {"series": name, "values": _values(values)}
            for name, values in sorted(series_of(scenario).items())
        ],
        "alert_rule_test": [
            {
                "eval_time": f"{MINUTES}m",
                "alertname": rule.name,
                "exp_alerts": [
                    _exp_alert(rule, model)
                    for rule_name, model in sorted(expected)
                    if rule_name == rule.name
                ],
            }
            for rule in rules
        ],
    }


def promtool_tests_text(rules_file: str = RULES_FILE.name) -> str:
    """The shipped test file: every scenario, with its hand-written expectations."""
    doc = {
        "rule_files": [rules_file],
        "evaluation_interval": "1m",
        "tests": [promtool_test(s, s.expected) for s in SCENARIOS],
    }
    header = (
        "# promtool test rules for every rule of aiscope-rules.yml (aiscope alerts\n"
        "# export-prometheus), from tests/alerts/alert_scenarios.py: regenerate both with\n"
        "# `python tests/alerts/alert_scenarios.py`, run with\n"
        "# `promtool test rules tests/alerts/promtool/aiscope-rules.test.yml`.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=100_000)


def write_promtool_files() -> None:
    """Rewrite the shipped rules file and its promtool tests."""
    PROMTOOL_DIR.mkdir(exist_ok=True)
    export_prometheus_rules(RULES_FILE)
    TESTS_FILE.write_text(promtool_tests_text(), encoding="utf-8")


if __name__ == "__main__":
    write_promtool_files()
    print(f"wrote {RULES_FILE} and {TESTS_FILE}")
