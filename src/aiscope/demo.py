"""The demo workload: simulated calls across two models with feature/team tags.

Until the AiClient and its mock provider exist, the demo records simulated calls
(seeded, so every run prints the same figures) through manual capture; every sink
is real: prices from genai-prices, a CostTracker with a budget, Prometheus text
from prometheus_client, percentiles from DDSketch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from aiscope.cost.budget import BudgetExceededError
from aiscope.cost.tracker import CostReport, CostTracker
from aiscope.metrics.collector import LatencyPercentiles, MetricsCollector
from aiscope.record import CallRecord, Usage
from aiscope.scope import Scope

MODELS = (
    # model, provider, median latency (s), typical input, typical output
    ("gpt-4o", "openai", 1.4, 1200, 350),
    ("claude-sonnet-4-5", "anthropic", 1.9, 1500, 420),
)
FEATURES = (("search", "growth"), ("summarize", "platform"), ("chat", "support"))


@dataclass
class DemoResult:
    """What a demo run recorded."""

    report: CostReport
    percentiles: list[LatencyPercentiles]
    prometheus_text: str
    refused: int


def run_workload(
    requests: int = 50,
    seed: int = 7,
    budget_usd: float = 5.0,
    on_progress: Callable[[], None] | None = None,
) -> tuple[Scope, DemoResult]:
    """Record ``requests`` simulated calls; return the scope and what it saw."""
    rng = random.Random(seed)
    metrics = MetricsCollector()
    tracker = CostTracker(budget_usd=budget_usd, alert_threshold=0.8)
    scope = Scope(metrics=metrics, cost_tracker=tracker)
    refused = 0
    for i in range(requests):
        if on_progress is not None:
            on_progress()
        model, provider, median, typ_in, typ_out = MODELS[i % len(MODELS)]
        feature, team = FEATURES[rng.randrange(len(FEATURES))]
        input_tokens = max(1, int(rng.gauss(typ_in, typ_in / 4)))
        output_tokens = max(1, int(rng.gauss(typ_out, typ_out / 3)))
        cached = input_tokens // 2 if rng.random() < 0.3 else 0
        latency = rng.lognormvariate(0, 0.45) * median
        failed = rng.random() < 0.06
        try:
            pending = scope.begin(model, provider, input_tokens, 1024)
        except BudgetExceededError:
            refused += 1
            continue
        scope.emit(
            _record(
                model, provider, input_tokens, output_tokens, cached, latency, failed, feature, team
            ),
            pending,
        )
    result = DemoResult(
        report=tracker.get_report(),
        percentiles=[metrics.latency_percentiles(m) for m, *_ in MODELS],
        prometheus_text=metrics.export_prometheus(),
        refused=refused,
    )
    return scope, result


def _record(
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    cached: int,
    latency: float,
    failed: bool,
    feature: str,
    team: str,
) -> CallRecord:
    return CallRecord(
        model=model,
        provider=provider,
        latency_s=latency,
        time_to_first_token_s=latency * 0.2,
        status="error" if failed else "ok",
        error_type="RateLimitError" if failed else None,
        usage=Usage(
            input_tokens=input_tokens,
            output_tokens=0 if failed else output_tokens,
            cache_read_tokens=cached,
        ),
        tags={"feature": feature, "team": team},
    )


__all__ = ["DemoResult", "run_workload"]
