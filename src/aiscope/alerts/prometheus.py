"""The alert rules as a Prometheus rules file, over the metrics aiscope emits.

Each rule's signal becomes a PromQL expression over ``ai_lib_cost_usd_total``,
``ai_lib_requests_total``, ``ai_lib_errors_total``, ``ai_lib_tokens_total``,
``ai_lib_request_duration_seconds_bucket`` and ``ai_lib_quality_score`` (see
:class:`~aiscope.metrics.MetricsCollector`), summed by the rule's ``group_by``.
A ``"day"`` window becomes ``[1d]``: Prometheus has no calendar windows, so there
the daily budget is the last 24 hours, where the in-process evaluator counts
since midnight UTC (the two agree within one UTC day).

A latency rule's threshold must be a bucket boundary of the duration histogram
(``DURATION_BUCKETS`` has the default rules' 5 s and 10 s): ``histogram_quantile``
interpolates inside a bucket, so between boundaries it can report a p99 over the
threshold for calls that are all under it. There it is exact: over ``t`` exactly
when more than ``1 - q`` of the calls took longer than ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from aiscope.alerts.rules import AlertRule, default_rules, format_duration, latency_quantile
from aiscope.metric_definitions import (
    COST,
    DEFAULT_NAMESPACE,
    DURATION_BUCKETS,
    QUALITY_SCORE,
    REQUEST_DURATION,
    REQUESTS,
    TOKENS,
)
from aiscope.names import check_group_name, check_interval, check_namespace


def signal_promql(rule: AlertRule, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The PromQL expression of ``rule``'s signal (without the comparison)."""
    check_namespace(namespace)
    if not isinstance(rule.signal, str):
        raise ValueError(
            f"rule {rule.name!r}: a custom signal function cannot be exported to Prometheus"
        )
    ns = namespace
    w = "1d" if rule.daily else format_duration(rule.window_s)
    by = f" by ({', '.join(rule.group_by)})" if rule.group_by else ""

    def total(metric: str, fn: str = "increase") -> str:
        return f"sum{by} ({fn}({metric}[{w}]))"

    cost, requests = COST.series(ns), REQUESTS.series(ns)
    s = rule.signal
    if s == "cost_usd":
        return total(cost)
    if s == "cost_per_request_usd":
        return f"{total(cost)} / {total(requests)}"
    if s == "tokens":
        return total(f'{TOKENS.series(ns)}{{type=~"input|output"}}')
    if s == "requests":
        return total(requests)
    if s == "error_rate":
        failed = total(f'{requests}{{status!="ok"}}')
        return f"{failed} / {total(requests)}"
    if s == "quality":
        bad = [g for g in rule.group_by if g not in QUALITY_SCORE.labels]
        if bad:
            raise ValueError(
                f"rule {rule.name!r}: {QUALITY_SCORE.name_in(ns)} has no label {bad[0]!r} "
                "to group by"
            )
        return (
            f"{total(QUALITY_SCORE.series(ns, 'sum'), 'rate')} / "
            f"{total(QUALITY_SCORE.series(ns, 'count'), 'rate')}"
        )
    q = latency_quantile(s)
    if q is None:  # pragma: no cover - AlertRule validates signals
        raise ValueError(f"rule {rule.name!r}: unknown signal {s!r}")
    le = ", ".join([*rule.group_by, "le"])
    return (
        f"histogram_quantile({q:g}, sum by ({le}) "
        f"(rate({REQUEST_DURATION.series(ns, 'bucket')}[{w}]))) * 1000"
    )


def check_latency_threshold(
    rule: AlertRule,
    duration_buckets: Sequence[float] = DURATION_BUCKETS,
    namespace: str = DEFAULT_NAMESPACE,
) -> None:
    """Raise ``ValueError`` if ``rule`` is a latency rule whose threshold is not a
    boundary of ``duration_buckets`` (seconds), where its PromQL would be inexact."""
    if not isinstance(rule.signal, str) or latency_quantile(rule.signal) is None:
        return
    seconds = float(rule.threshold) / 1000.0
    if any(math.isclose(seconds, b, rel_tol=1e-9) for b in duration_buckets):
        return
    raise ValueError(
        f"rule {rule.name!r}: its threshold {rule.threshold:g} ms is not a bucket boundary of "
        f"{REQUEST_DURATION.name_in(namespace)}, so histogram_quantile would interpolate "
        f"there and could fire for calls under it; add {seconds:g} to the buckets "
        f"(MetricsCollector(duration_buckets=...)) and export with the same duration_buckets"
    )


def alert_promql(rule: AlertRule, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The alert expression: the signal compared with the threshold."""
    return f"{signal_promql(rule, namespace)} {rule.comparison} {float(rule.threshold)!r}"


def prometheus_rule(
    rule: AlertRule,
    namespace: str = DEFAULT_NAMESPACE,
    duration_buckets: Sequence[float] = DURATION_BUCKETS,
) -> dict[str, Any]:
    """One alerting rule of a Prometheus rules file, over a duration histogram with
    ``duration_buckets`` (a latency threshold must be one of them)."""
    check_latency_threshold(rule, duration_buckets, namespace)
    where = "".join(f" {g}={{{{ $labels.{g} }}}}" for g in rule.group_by)
    out: dict[str, Any] = {"alert": rule.name, "expr": alert_promql(rule, namespace)}
    if rule.for_s:
        out["for"] = format_duration(rule.for_s)
    out["labels"] = {"severity": rule.severity}
    out["annotations"] = {
        "summary": f"{rule.name}{where}: {rule.signal_name} {rule.comparison} {rule.threshold:g}",
        "description": rule.description or rule.name,
    }
    return out


def prometheus_rules(
    rules: Iterable[AlertRule] | None = None,
    *,
    group: str = "aiscope",
    interval: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    duration_buckets: Sequence[float] = DURATION_BUCKETS,
) -> dict[str, Any]:
    """A Prometheus rules file (as a dict) holding ``rules`` (the defaults if None),
    over the metrics of ``MetricsCollector(namespace=..., duration_buckets=...)``."""
    check_group_name(group)
    check_namespace(namespace)
    if interval is not None:
        check_interval(interval)
    chosen = list(default_rules() if rules is None else rules)
    grp: dict[str, Any] = {"name": group}
    if interval is not None:
        grp["interval"] = interval
    grp["rules"] = [prometheus_rule(r, namespace, duration_buckets) for r in chosen]
    return {"groups": [grp]}


def export_prometheus_rules(
    path: str | Path | None = None,
    rules: Iterable[AlertRule] | None = None,
    **kwargs: Any,
) -> str:
    """The rules file as YAML; also written to ``path`` if given."""
    text = yaml.safe_dump(prometheus_rules(rules, **kwargs), sort_keys=False, width=1000)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


__all__ = [
    "alert_promql",
    "check_latency_threshold",
    "export_prometheus_rules",
    "prometheus_rule",
    "prometheus_rules",
    "signal_promql",
]
