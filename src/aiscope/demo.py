"""The demo workload: real AiClient calls to the mock provider, across two models.

``aiscope demo`` starts :class:`~aiscope.testing.MockProvider` on a loopback port and
sends it a seeded workload (50 requests by default, as in the seed's metrics demo)
through two AiClients — ``openai/gpt-4o`` and ``anthropic/claude-sonnet-4-5`` — with
feature/team tags, some streamed, a few hit by rate limits and server errors that
the client retries. Everything is real but the provider: HTTP on loopback, the
providers' wire formats, prices from genai-prices, a CostTracker with a budget,
Prometheus text from prometheus_client, percentiles from DDSketch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiscope.alerts import ActiveAlert, AlertEvaluator, AlertRule
from aiscope.client import AiClient, AiClientError
from aiscope.cost.budget import BudgetExceededError
from aiscope.cost.tracker import CostReport, CostTracker
from aiscope.feedback import Feedback, FeedbackCollector
from aiscope.metrics.collector import LatencyPercentiles, MetricsCollector
from aiscope.resilience import RetryPolicy
from aiscope.scope import Scope, use_scope
from aiscope.testing import MockProvider
from aiscope.tracing import Tracer

MODELS = (
    # provider/model, the mock's base path, median latency (s), the simulated judge's scores
    ("openai/gpt-4o", "openai", 0.09, (0.75, 1.0)),
    ("anthropic/claude-sonnet-4-5", "anthropic", 0.13, (0.3, 0.6)),
)
FEATURES = (("search", "growth"), ("summarize", "platform"), ("chat", "support"))
PROMPTS = (
    "Summarize the quarterly report in three bullet points.",
    "Which of these search results answers the question best?",
    "Draft a friendly reply to this support ticket about billing.",
    "Explain the difference between p95 and p99 latency.",
)


@dataclass
class DemoResult:
    """What a demo run recorded."""

    report: CostReport
    percentiles: list[LatencyPercentiles]
    ttft: list[LatencyPercentiles]
    prometheus_text: str
    refused: int
    failed: int
    requests_sent: int
    retries: int
    alerts: list[ActiveAlert]


def run_workload(
    requests: int = 50,
    seed: int = 7,
    budget_usd: float = 5.0,
    on_progress: Callable[[], None] | None = None,
    rules: Sequence[AlertRule] | None = None,
    tracer: Tracer | None = None,
    on_feedback: Callable[[Feedback], None] | None = None,
) -> DemoResult:
    """Send ``requests`` calls through AiClient to a fresh mock provider (``rules``:
    the alert rules to check, the defaults if None; ``tracer``: traces the calls;
    ``on_feedback``: also gets every judge score)."""
    rng = random.Random(seed)
    metrics = MetricsCollector()
    tracker = CostTracker(budget_usd=budget_usd, alert_threshold=0.8)
    retry = RetryPolicy(max_retries=2, base_delay_s=0.02, max_delay_s=0.2, rng=random.Random(seed))
    refused = failed = retries = 0
    # the default alert rules watch the calls (an extra sink of the scope the clients
    # inherit) and the quality scores a simulated LLM judge gives every answer
    alerts = AlertEvaluator(rules)
    listeners = [alerts.on_feedback] + ([on_feedback] if on_feedback is not None else [])
    feedback = FeedbackCollector(metrics, listeners=listeners)
    with MockProvider(api_key="demo-key") as mock, use_scope(Scope(sinks=[alerts])):
        builders = [AiClient.builder() for _ in MODELS]
        if tracer is not None:
            builders = [b.tracer(tracer) for b in builders]
        clients = [
            builder.model(spec)
            .api_key("demo-key")
            .base_url(mock.base_url(base))
            .metrics(metrics)
            .cost_tracker(tracker)
            .feedback(feedback)
            .retry(retry)
            .build()
            for builder, (spec, base, *_) in zip(builders, MODELS, strict=True)
        ]
        for i in range(requests):
            if on_progress is not None:
                on_progress()
            which = i % len(MODELS)
            client, median = clients[which], MODELS[which][2]
            feature, team = FEATURES[rng.randrange(len(FEATURES))]
            mock.behave(
                reply_tokens=rng.randint(40, 400),
                cache_read_tokens=rng.choice((0, 0, 8)),
            )
            mock.slow_first_byte(rng.lognormvariate(0, 0.5) * median)
            roll = rng.random()
            if roll < 0.06:
                mock.rate_limit(retry_after=0.05)
            elif roll < 0.10:
                mock.fail_next(500)
            chat = (
                client.chat()
                .system("You are a concise assistant.")
                .user(
                    PROMPTS[rng.randrange(len(PROMPTS))] + " " + "context " * rng.randint(50, 400)
                )
                .max_tokens(512)
                .tags(feature=feature, team=team)
            )
            try:
                if i % 3 == 2:
                    events = list(chat.stream_sync())
                    stats = events[-1].stats
                else:
                    _, stats = chat.execute_with_stats_sync()
                retries += stats.retry_count if stats is not None else 0
                if stats is not None:
                    feedback.record(
                        stats.request_id, score=rng.uniform(*MODELS[which][3]), source="llm-judge"
                    )
            except BudgetExceededError:
                refused += 1
            except AiClientError:
                failed += 1
        sent = len(mock.requests)
        mock.clear_faults()
        for c in clients:
            c.close()
    return DemoResult(
        report=tracker.get_report(),
        percentiles=[metrics.latency_percentiles(spec.split("/", 1)[1]) for spec, *_ in MODELS],
        ttft=[metrics.ttft_percentiles(spec.split("/", 1)[1]) for spec, *_ in MODELS],
        prometheus_text=metrics.export_prometheus(),
        refused=refused,
        failed=failed,
        requests_sent=sent,
        retries=retries,
        alerts=alerts.check(),
    )


__all__ = ["DemoResult", "run_workload"]
