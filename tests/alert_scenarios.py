"""Synthetic workloads for the alert rules, fed both to the in-process evaluator and
(as the counter/histogram series MetricsCollector would expose, sampled each minute)
to ``promtool test rules``. Each scenario says by hand which of the 16 default rules
(8 seed rules, in aggregate and per model) must be firing at its end."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from aiscope.alerts import AlertEvaluator
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
