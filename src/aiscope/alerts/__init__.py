"""Alerts: rules over the recorded calls, an in-process evaluator, notifiers, and
the same rules exported for Prometheus."""

from aiscope.alerts.evaluator import ActiveAlert, AlertEvaluator
from aiscope.alerts.events import AlertEvent
from aiscope.alerts.notifiers import (
    Delivery,
    DeliveryError,
    LogNotifier,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from aiscope.alerts.prometheus import (
    alert_promql,
    export_prometheus_rules,
    prometheus_rules,
    signal_promql,
)
from aiscope.alerts.rules import (
    DAY,
    SEED_RULES,
    AlertRule,
    default_rules,
    load_rules,
    rule_from_dict,
    rule_to_dict,
)
from aiscope.alerts.window import WindowStats, histogram_quantile

__all__ = [
    "DAY",
    "SEED_RULES",
    "ActiveAlert",
    "AlertEvaluator",
    "AlertEvent",
    "AlertRule",
    "Delivery",
    "DeliveryError",
    "LogNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "WindowStats",
    "alert_promql",
    "default_rules",
    "export_prometheus_rules",
    "histogram_quantile",
    "load_rules",
    "prometheus_rules",
    "rule_from_dict",
    "rule_to_dict",
    "signal_promql",
]
