"""Alert rules: what to watch, over which window, compared with what.

An :class:`AlertRule` names a *signal* computed over the calls recorded in a
window (cost, cost per request, a latency percentile, mean quality, tokens,
requests, error rate), a comparison and a threshold, how long the condition must
hold (``for_``), and the labels to evaluate it by (``group_by=("model",)`` gives
one alert per model). The same rule is evaluated in process
(:class:`~aiscope.alerts.evaluator.AlertEvaluator`) and exported as a Prometheus
alerting rule (:mod:`aiscope.alerts.prometheus`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from aiscope.metric_definitions import GROUP_LABELS
from aiscope.names import check_rule_name

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
#: signals with a fixed meaning (``latency_pNN_ms`` takes any percentile NN)
SIGNALS: tuple[str, ...] = (
    "cost_usd",
    "cost_per_request_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "quality",
    "tokens",
    "requests",
    "error_rate",
)
_LATENCY = re.compile(r"^latency_p(\d{1,2}(?:\.\d+)?)_ms$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

#: the UTC calendar day: a window that resets at midnight UTC
DAY = "day"


def parse_duration(name: str, value: object) -> float:
    """Seconds in ``value``: a number of seconds or a Prometheus duration (``"5m"``)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be seconds or a duration like '5m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{name} must be seconds or a duration like '5m' or '1h', got {value!r}")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (``300`` -> ``"5m"``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def latency_quantile(signal: str) -> float | None:
    """0.95 for ``"latency_p95_ms"``; None for other signals."""
    m = _LATENCY.match(signal)
    if m is None:
        return None
    q = float(m.group(1)) / 100.0
    return q if 0.0 < q < 1.0 else None


@dataclass(frozen=True)
class AlertRule:
    """One alert condition.

    ``signal`` is one of :data:`SIGNALS` (or ``latency_pNN_ms``), or a function of
    a :class:`~aiscope.alerts.window.WindowStats` returning a number or None (a
    custom expression over the recorded calls; evaluated in process only).
    ``window`` is a duration (``"5m"``) or ``"day"`` (the UTC day so far, reset
    at midnight). ``for_`` is how long the condition must hold before the alert
    fires; ``cooldown`` how long a firing alert waits before notifying again.
    """

    name: str
    severity: Severity
    signal: str | Callable[[Any], float | None]
    comparison: str
    threshold: float
    window: str | float = "5m"
    for_: str | float = 0
    group_by: tuple[str, ...] = ()
    description: str = ""
    cooldown: str | float = "1h"
    window_s: float = field(init=False, repr=False)
    for_s: float = field(init=False, repr=False)
    cooldown_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_rule_name(self.name)
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )
        if isinstance(self.signal, str):
            if self.signal not in SIGNALS and latency_quantile(self.signal) is None:
                raise ValueError(
                    f"signal must be one of {', '.join(SIGNALS)} (or latency_pNN_ms) "
                    f"or a function, got {self.signal!r}"
                )
        elif not callable(self.signal):
            raise TypeError(f"signal must be a str or a function, got {self.signal!r}")
        if self.comparison not in COMPARISONS:
            raise ValueError(
                f"comparison must be one of {', '.join(COMPARISONS)}, got {self.comparison!r}"
            )
        t = self.threshold
        if (
            isinstance(t, bool)
            or not isinstance(t, int | float)
            or t != t
            or abs(t) == float("inf")
        ):
            raise ValueError(f"threshold must be a finite number, got {t!r}")
        if isinstance(self.group_by, str) or not all(g in GROUP_LABELS for g in self.group_by):
            raise ValueError(
                f"group_by must be a tuple of {', '.join(GROUP_LABELS)}, got {self.group_by!r}"
            )
        if self.window == DAY:
            window_s = 86400.0
        else:
            window_s = parse_duration("window", self.window)
            if window_s <= 0:
                raise ValueError(f"window must be > 0, got {self.window!r}")
        object.__setattr__(self, "group_by", tuple(self.group_by))
        object.__setattr__(self, "window_s", window_s)
        object.__setattr__(self, "for_s", parse_duration("for_", self.for_))
        object.__setattr__(self, "cooldown_s", parse_duration("cooldown", self.cooldown))

    @property
    def daily(self) -> bool:
        """True when the window is the UTC day so far."""
        return self.window == DAY

    @property
    def signal_name(self) -> str:
        """The signal's name (a custom function's ``__name__``)."""
        return (
            self.signal
            if isinstance(self.signal, str)
            else getattr(self.signal, "__name__", "custom")
        )

    def by(self, *labels: str) -> AlertRule:
        """The same rule evaluated per label value, named ``<name>_by_<labels>``."""
        return replace(self, name=f"{self.name}_by_{'_'.join(labels)}", group_by=tuple(labels))

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition (no value never does)."""
        return (
            value is not None
            and value == value
            and COMPARISONS[self.comparison](value, self.threshold)
        )


#: the seed's eight default rules (observability example, "Alert Rules" table)
SEED_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "daily_budget_warning",
        "warning",
        "cost_usd",
        ">",
        50.0,
        window=DAY,
        description="Spend today (UTC) is over $50: unexpected cost growth.",
    ),
    AlertRule(
        "daily_budget_critical",
        "critical",
        "cost_usd",
        ">",
        100.0,
        window=DAY,
        description="Spend today (UTC) is over $100: budget breach.",
    ),
    AlertRule(
        "cost_per_request_spike",
        "warning",
        "cost_per_request_usd",
        ">",
        0.10,
        window="15m",
        description="Average cost per request over $0.10: runaway agent or prompt regression.",
    ),
    AlertRule(
        "p95_latency_warning",
        "warning",
        "latency_p95_ms",
        ">",
        5000.0,
        window="5m",
        for_="5m",
        description="p95 latency over 5,000 ms: model or provider slowdown.",
    ),
    AlertRule(
        "p99_latency_critical",
        "critical",
        "latency_p99_ms",
        ">",
        10000.0,
        window="5m",
        for_="5m",
        description="p99 latency over 10,000 ms: severe performance degradation.",
    ),
    AlertRule(
        "quality_degradation",
        "warning",
        "quality",
        "<",
        0.7,
        window="1h",
        for_="10m",
        description="Mean quality score under 0.7: model drift or prompt issues.",
    ),
    AlertRule(
        "quality_critical_drop",
        "critical",
        "quality",
        "<",
        0.5,
        window="1h",
        for_="10m",
        description="Mean quality score under 0.5: possible model failure.",
    ),
    AlertRule(
        "high_token_usage",
        "warning",
        "tokens",
        ">",
        1_000_000.0,
        window="1h",
        description="Over 1M tokens (input + output) in an hour: token consumption spike.",
    ),
)


def default_rules() -> list[AlertRule]:
    """The eight seed rules, each in aggregate and per model (16 rules)."""
    return [r for rule in SEED_RULES for r in (rule, rule.by("model"))]


_FIELDS = (
    "name",
    "severity",
    "signal",
    "comparison",
    "threshold",
    "window",
    "for",
    "group_by",
    "description",
    "cooldown",
)


def rule_from_dict(data: Mapping[str, Any], where: str = "rule") -> AlertRule:
    """An AlertRule from a mapping with the keys of :data:`_FIELDS` (``for`` is the
    rule's ``for_``); an unknown or missing key is a ValueError naming it."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_FIELDS)})")
    missing = [
        k for k in ("name", "severity", "signal", "comparison", "threshold") if k not in data
    ]
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")
    kwargs = {("for_" if k == "for" else k): v for k, v in data.items()}
    if isinstance(kwargs.get("group_by"), list):
        kwargs["group_by"] = tuple(kwargs["group_by"])
    try:
        return AlertRule(**kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def rule_to_dict(rule: AlertRule) -> dict[str, Any]:
    """The mapping :func:`rule_from_dict` reads back into an equal rule (JSON/YAML-ready);
    a rule whose signal is a function has none (``TypeError``)."""
    if not isinstance(rule.signal, str):
        raise TypeError(f"rule {rule.name!r}: a function signal cannot be written as data")
    return {
        "name": rule.name,
        "severity": rule.severity,
        "signal": rule.signal,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "window": rule.window,
        "for": rule.for_,
        "group_by": list(rule.group_by),
        "description": rule.description,
        "cooldown": rule.cooldown,
    }


def load_rules(path: str | Path) -> list[AlertRule]:
    """Rules from a YAML (or JSON) file: a list of rule mappings, or ``{"rules": [...]}``."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read rules file {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"rules file {p} is not valid YAML: {exc}") from None
    if isinstance(data, Mapping):
        data = data.get("rules")
    if not isinstance(data, list) or not data:
        raise ValueError(f"rules file {p} must hold a non-empty list of rules (or rules: [...])")
    return [rule_from_dict(d, f"{p.name}: rules[{i}]") for i, d in enumerate(data)]


__all__ = [
    "COMPARISONS",
    "DAY",
    "GROUP_LABELS",
    "SEED_RULES",
    "SEVERITIES",
    "SIGNALS",
    "AlertRule",
    "default_rules",
    "format_duration",
    "latency_quantile",
    "load_rules",
    "parse_duration",
    "rule_from_dict",
    "rule_to_dict",
]
