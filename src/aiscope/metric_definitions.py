"""Every metric aiscope exposes, defined once: name, type, help text, labels, unit and
buckets.

The collector registers these (:class:`~aiscope.metrics.MetricsCollector`, on its fast
store or on prometheus_client's own objects), and the exported Prometheus rules
(:mod:`aiscope.alerts.prometheus`), the in-process alert evaluator's group labels and
the Grafana dashboard (:mod:`aiscope.dashboards`) read their names and labels from
here, so renaming a metric or a label here renames it everywhere.

Names are given without the namespace (``ai_lib`` by default) and, for counters,
without ``_total``, as prometheus_client takes them: :meth:`MetricDefinition.name_in`
gives the registered name, :meth:`MetricDefinition.series` the sample names PromQL
reads (``ai_lib_requests_total``, ``ai_lib_request_duration_seconds_bucket``).

This module is part of aiscope's core: it imports nothing but the record's token
types, so every layer above may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aiscope.record import TOKEN_TYPES

Kind = Literal["counter", "gauge", "histogram"]

#: the namespace (metric name prefix) aiscope uses unless told otherwise
DEFAULT_NAMESPACE = "ai_lib"
#: labels every per-call metric carries first
CALL_LABELS: tuple[str, ...] = ("model", "provider")
#: tags that become labels of the per-call metrics unless ``tag_labels`` says otherwise
DEFAULT_TAG_LABELS: tuple[str, ...] = ("feature", "team")
#: the per-call labels with the default tags: what alert rules may group by and what
#: the dashboard's template variables filter on (model, provider, feature, team)
GROUP_LABELS: tuple[str, ...] = (*CALL_LABELS, *DEFAULT_TAG_LABELS)
#: the states of ``ai_lib_circuit_state`` (one series each, 1 for the current one)
CIRCUIT_STATES: tuple[str, ...] = ("closed", "half_open", "open")

#: OpenTelemetry GenAI advice for ``gen_ai.client.operation.duration`` (seconds), plus
#: the default alert thresholds (p95 > 5 s, p99 > 10 s) as boundaries: at a boundary
#: ``histogram_quantile`` is exact (it is above the threshold exactly when more than
#: 1 - q of the calls are), between two it interpolates and can fire for calls that
#: are all well under it (every call at 5.5 s read as a p99 of 10.19 s in 5.12..10.24).
DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.0,
    5.12,
    10.0,
    10.24,
    20.48,
    40.96,
    81.92,
)
#: OpenTelemetry GenAI advice for time to first token (seconds).
TTFT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: Buckets of ``ai_lib_quality_score`` (scores are in [0, 1]).
QUALITY_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One metric: ``name`` (without namespace or ``_total``), Prometheus type, help
    text, labels, unit, and buckets for a histogram.

    A per-call metric (``per_call=True``) carries :data:`CALL_LABELS` and the
    collector's tag labels before its own ``labels``; ``multiprocess_mode`` is how
    prometheus_client's multiprocess mode aggregates a gauge across processes.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    per_call: bool = False
    buckets: tuple[float, ...] = ()
    multiprocess_mode: str = "all"

    def name_in(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        """The name to register under ``namespace`` (``ai_lib_requests``)."""
        return f"{namespace}_{self.name}"

    def series(self, namespace: str = DEFAULT_NAMESPACE, part: str = "") -> str:
        """The sample name PromQL reads: a counter's ``_total``, a gauge's own name,
        a histogram's ``part`` (``"bucket"``, ``"sum"`` or ``"count"``)."""
        base = self.name_in(namespace)
        if self.kind == "counter":
            return f"{base}_total"
        if self.kind == "histogram":
            if part not in ("bucket", "sum", "count"):
                raise ValueError(
                    f"{base} is a histogram: part must be 'bucket', 'sum' or 'count', got {part!r}"
                )
            return f"{base}_{part}"
        return base

    def sample_names(self, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, ...]:
        """Every sample name the metric can expose (``_created`` ones included)."""
        base = self.name_in(namespace)
        return tuple(f"{base}{s}" for s in _SUFFIXES[self.kind])

    def label_names(self, tag_labels: Sequence[str] = DEFAULT_TAG_LABELS) -> tuple[str, ...]:
        """The metric's labels, in order, for a collector with ``tag_labels``."""
        if self.per_call:
            return (*CALL_LABELS, *tag_labels, *self.labels)
        return self.labels


REQUESTS = MetricDefinition(
    "requests", "counter", "LLM calls, by outcome.", ("status",), "calls", per_call=True
)
REQUEST_DURATION = MetricDefinition(
    "request_duration_seconds",
    "histogram",
    "LLM call latency.",
    unit="seconds",
    per_call=True,
    buckets=DURATION_BUCKETS,
)
TIME_TO_FIRST_TOKEN = MetricDefinition(
    "time_to_first_token_seconds",
    "histogram",
    "Time to the first streamed token.",
    unit="seconds",
    per_call=True,
    buckets=TTFT_BUCKETS,
)
TOKENS = MetricDefinition(
    "tokens",
    "counter",
    "Tokens by type (input counts cached input; output counts reasoning).",
    ("type",),
    "tokens",
    per_call=True,
)
ERRORS = MetricDefinition(
    "errors", "counter", "Failed LLM calls, by error type.", ("error_type",), "calls", True
)
COST = MetricDefinition("cost_usd", "counter", "Cost of LLM calls in USD.", (), "usd", True)
INFLIGHT = MetricDefinition(
    "inflight_requests",
    "gauge",
    "LLM calls in flight.",
    CALL_LABELS,
    "calls",
    multiprocess_mode="livesum",
)
UNPRICED = MetricDefinition(
    "unpriced_requests",
    "counter",
    "Calls whose cost is unknown, by reason.",
    (*CALL_LABELS, "reason"),
    "calls",
)
LABEL_OVERFLOW = MetricDefinition(
    "label_overflow", "counter", "Label values folded into 'other'.", ("label",)
)
BUDGET_SPENT = MetricDefinition(
    "budget_spent_usd",
    "gauge",
    "Spent in the budget's current window.",
    ("budget", "window"),
    "usd",
    multiprocess_mode="mostrecent",
)
BUDGET_LIMIT = MetricDefinition(
    "budget_limit_usd",
    "gauge",
    "The budget's limit.",
    ("budget", "window"),
    "usd",
    multiprocess_mode="mostrecent",
)
BUDGET_REMAINING = MetricDefinition(
    "budget_remaining_usd",
    "gauge",
    "Left in the budget's current window.",
    ("budget", "window"),
    "usd",
    multiprocess_mode="mostrecent",
)
RETRIES = MetricDefinition(
    "retries",
    "counter",
    "Retried LLM requests, by the error that caused the retry.",
    (*CALL_LABELS, "reason"),
    "calls",
)
CIRCUIT_TRANSITIONS = MetricDefinition(
    "circuit_transitions",
    "counter",
    "Circuit breaker state changes.",
    ("provider", "from_state", "to_state"),
)
CIRCUIT_STATE = MetricDefinition(
    "circuit_state",
    "gauge",
    "Circuit breaker state: 1 for the state each provider's breaker is in, else 0.",
    ("provider", "state"),
    multiprocess_mode="mostrecent",
)
RATE_LIMIT_WAITS = MetricDefinition(
    "rate_limit_waits",
    "counter",
    "Requests that waited for the client-side rate limiter.",
    ("provider",),
    "calls",
)
RATE_LIMIT_WAIT_SECONDS = MetricDefinition(
    "rate_limit_wait_seconds",
    "counter",
    "Time spent waiting for the client-side rate limiter.",
    ("provider",),
    "seconds",
)
QUALITY_SCORE = MetricDefinition(
    "quality_score",
    "histogram",
    "Quality scores of LLM responses (0 worst, 1 best), from feedback.",
    ("model", "feature", "source"),
    "ratio",
    buckets=QUALITY_BUCKETS,
)

#: every metric, in the order a collector's exposition lists them
METRICS: tuple[MetricDefinition, ...] = (
    REQUESTS,
    REQUEST_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    ERRORS,
    COST,
    INFLIGHT,
    UNPRICED,
    LABEL_OVERFLOW,
    BUDGET_SPENT,
    BUDGET_LIMIT,
    BUDGET_REMAINING,
    RETRIES,
    CIRCUIT_TRANSITIONS,
    CIRCUIT_STATE,
    RATE_LIMIT_WAITS,
    RATE_LIMIT_WAIT_SECONDS,
    QUALITY_SCORE,
)

__all__ = [
    "BUDGET_LIMIT",
    "BUDGET_REMAINING",
    "BUDGET_SPENT",
    "CALL_LABELS",
    "CIRCUIT_STATE",
    "CIRCUIT_STATES",
    "CIRCUIT_TRANSITIONS",
    "COST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG_LABELS",
    "DURATION_BUCKETS",
    "ERRORS",
    "GROUP_LABELS",
    "INFLIGHT",
    "LABEL_OVERFLOW",
    "METRICS",
    "QUALITY_BUCKETS",
    "QUALITY_SCORE",
    "RATE_LIMIT_WAITS",
    "RATE_LIMIT_WAIT_SECONDS",
    "REQUESTS",
    "REQUEST_DURATION",
    "RETRIES",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "TOKEN_TYPES",
    "TTFT_BUCKETS",
    "UNPRICED",
    "Kind",
    "MetricDefinition",
]
