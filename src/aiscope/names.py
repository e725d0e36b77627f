"""The one check of the names aiscope puts into Prometheus: metric namespaces, label
names, alert rule names and rule groups.

Metrics, exported rules and dashboards all call these, so a name one of them accepts
is a name the others accept and Prometheus reads as given. (prometheus_client would
escape ``MetricsCollector(namespace="bad-ns")`` into ``bad_ns_...`` while the rules
and dashboards asked for ``bad-ns_...``: a name is refused here instead.)
"""

from __future__ import annotations

import re

#: a metric name without colons (those are for recording rules), and so a namespace
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: a label name; names starting with ``__`` are reserved by Prometheus
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _suggest(value: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_]", "_", value)
    if fixed and fixed[0].isdigit():
        fixed = "_" + fixed
    return f" (did you mean {fixed!r}?)" if fixed.strip("_") and _METRIC.fullmatch(fixed) else ""


def _check(what: str, value: object, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {value!r}")
    if not pattern.fullmatch(value):
        raise ValueError(
            f"{what} must be letters, digits and underscores, not starting with a digit "
            f"(like {example!r}), got {value!r}{_suggest(value)}"
        )
    return value


def check_namespace(value: object) -> str:
    """``value`` if it is a valid metric name prefix (``"ai_lib"``), else ``ValueError``."""
    return _check("namespace", value, _METRIC, "ai_lib")


def check_label_name(value: object, what: str = "label name") -> str:
    """``value`` if it is a valid Prometheus label name, else ``ValueError``."""
    name = _check(what, value, _LABEL, "feature")
    if name.startswith("__"):
        raise ValueError(f"{what} must not start with '__' (reserved by Prometheus): {name!r}")
    return name


def check_rule_name(value: object) -> str:
    """``value`` if it is a valid alert rule name (the ``alertname`` label's value, and a
    metric-name-like identifier so every receiver can key on it), else ``ValueError``."""
    return _check("rule name", value, _METRIC, "p95_latency_warning")


def check_group_name(value: object) -> str:
    """``value`` if it is a usable rule group name (non-empty, no surrounding or control
    whitespace), else ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"rule group name must be a str, got {value!r}")
    if not value.strip():
        raise ValueError("rule group name must not be empty")
    if value != value.strip() or any(not c.isprintable() for c in value):
        raise ValueError(
            f"rule group name must be printable, without surrounding spaces: {value!r}"
        )
    return value


#: a Prometheus duration as rule files take it (``30s``, ``1m``, ``1h30m``)
_DURATION = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
#: a Grafana dashboard uid: at most 40 letters, digits, '-' and '_'
_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def check_interval(value: object, what: str = "interval") -> str:
    """``value`` if it is a non-zero Prometheus duration (``"1m"``), else ``ValueError``."""
    if not isinstance(value, str) or not value or not _DURATION.fullmatch(value):
        raise ValueError(f"{what} must be a Prometheus duration like '30s' or '1m', got {value!r}")
    if not any(c in "123456789" for c in value):
        raise ValueError(f"{what} must be longer than 0, got {value!r}")
    return value


def check_dashboard_uid(value: object) -> str:
    """``value`` if Grafana takes it as a dashboard uid, else ``ValueError``."""
    if not isinstance(value, str) or not _UID.fullmatch(value):
        raise ValueError(
            f"dashboard uid must be 1 to 40 letters, digits, '-' or '_', got {value!r}"
        )
    return value


__all__ = [
    "check_dashboard_uid",
    "check_group_name",
    "check_interval",
    "check_label_name",
    "check_namespace",
    "check_rule_name",
]
