"""A Grafana dashboard over the metrics aiscope emits (the seed's five rows).

:func:`grafana_dashboard` builds the dashboard JSON (Grafana's current schema):
a ``${datasource}`` variable (any Prometheus data source), ``model``, ``feature``
and ``team`` template variables, and the rows Cost Overview, Latency, Token
Usage, Quality and Operational Health. Every query uses the metric names and
labels of :class:`~aiscope.metrics.MetricsCollector` (and the ``ALERTS`` series
Prometheus keeps for the rules from ``aiscope alerts export-prometheus``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiscope import metric_definitions as M
from aiscope.names import check_dashboard_uid, check_namespace

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: the template variables that filter the per-call series (model, feature, team)
VARIABLES = tuple(g for g in M.GROUP_LABELS if g != "provider")
#: the per-call series selector: every dashboard variable
SEL = ", ".join(f'{v}=~"${v}"' for v in VARIABLES)
#: ai_lib_quality_score has no team label: the variables it has
QSEL = ", ".join(f'{v}=~"${v}"' for v in VARIABLES if v in M.QUALITY_SCORE.labels)
RI = "$__rate_interval"
#: Grafana's unit for a metric's unit
_UNITS = {"seconds": "s", "usd": "currencyUSD"}


@dataclass
class _Panel:
    """One panel: its title, type, queries (expression, legend) and field options."""

    title: str
    kind: str
    targets: list[tuple[str, str]]
    unit: str = "short"
    width: int = 8
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    mappings: list[dict[str, Any]] = field(default_factory=list)


def _rows(ns: str) -> list[tuple[str, list[_Panel]]]:
    usd, secs = _UNITS[M.COST.unit], _UNITS[M.REQUEST_DURATION.unit]
    requests, tokens = M.REQUESTS.series(ns), M.TOKENS.series(ns)
    circuit = M.CIRCUIT_STATE.series(ns)
    cost = f"{M.COST.series(ns)}{{{SEL}}}"
    req = f"{requests}{{{SEL}}}"
    dur = f"{M.REQUEST_DURATION.series(ns, 'bucket')}{{{SEL}}}"
    tok = f'{tokens}{{{SEL}, type=~"input|output"}}'
    quality_sum = M.QUALITY_SCORE.series(ns, "sum")
    quality_count = M.QUALITY_SCORE.series(ns, "count")

    def q(p: float, by: str = "") -> str:
        return f"histogram_quantile({p}, sum by (le{by}) (rate({dur}[{RI}])))"

    def quality(by: str = "") -> str:
        b = f" by ({by})" if by else ""
        return (
            f"sum{b} (rate({quality_sum}{{{QSEL}}}[{RI}])) / "
            f"sum{b} (rate({quality_count}{{{QSEL}}}[{RI}]))"
        )

    return [
        (
            "Cost Overview",
            [
                _Panel(
                    "Total spend",
                    "stat",
                    [(f"sum(increase({cost}[$__range]))", "spend")],
                    usd,
                    6,
                    6,
                ),
                _Panel(
                    "Cost per request",
                    "stat",
                    [(f"sum(increase({cost}[$__range])) / sum(increase({req}[$__range]))", "")],
                    usd,
                    6,
                    6,
                ),
                _Panel(
                    "Budget used",
                    "gauge",
                    [
                        (
                            "max by (budget, window) "
                            f"({M.BUDGET_SPENT.series(ns)} / {M.BUDGET_LIMIT.series(ns)})",
                            "{{budget}} ({{window}})",
                        )
                    ],
                    "percentunit",
                    6,
                    6,
                    options={"min": 0, "max": 1},
                ),
                _Panel(
                    "Budget remaining",
                    "stat",
                    [
                        (
                            f"max by (budget, window) ({M.BUDGET_REMAINING.series(ns)})",
                            "{{budget}} ({{window}})",
                        )
                    ],
                    usd,
                    6,
                    6,
                ),
                _Panel(
                    "Spend rate by model ($/h)",
                    "timeseries",
                    [(f"sum by (model) (rate({cost}[{RI}])) * 3600", "{{model}}")],
                    usd,
                ),
                _Panel(
                    "Spend by feature",
                    "bargauge",
                    [(f"sum by (feature) (increase({cost}[$__range]))", "{{feature}}")],
                    usd,
                ),
                _Panel(
                    "Spend by team",
                    "bargauge",
                    [(f"sum by (team) (increase({cost}[$__range]))", "{{team}}")],
                    usd,
                ),
            ],
        ),
        (
            "Latency",
            [
                _Panel(
                    "Latency p50 / p95 / p99",
                    "timeseries",
                    [(q(0.5), "p50"), (q(0.95), "p95"), (q(0.99), "p99")],
                    secs,
                    12,
                ),
                _Panel(
                    "p95 latency by model",
                    "timeseries",
                    [(q(0.95, ", model"), "{{model}}")],
                    secs,
                    12,
                ),
                _Panel(
                    "Latency distribution",
                    "heatmap",
                    [(f"sum by (le) (increase({dur}[{RI}]))", "{{le}}")],
                    secs,
                    12,
                    options={"calculate": False, "yAxis": {"unit": "s"}},
                ),
                _Panel(
                    "Time to first token p95 (streamed calls)",
                    "timeseries",
                    [
                        (
                            "histogram_quantile(0.95, sum by (le, model) (rate("
                            f"{M.TIME_TO_FIRST_TOKEN.series(ns, 'bucket')}{{{SEL}}}[{RI}])))",
                            "{{model}}",
                        )
                    ],
                    secs,
                    12,
                ),
            ],
        ),
        (
            "Token Usage",
            [
                _Panel(
                    "Tokens per minute by model and type",
                    "timeseries",
                    [(f"sum by (model, type) (rate({tok}[{RI}])) * 60", "{{model}} {{type}}")],
                ),
                _Panel(
                    "Tokens per request",
                    "timeseries",
                    [
                        (
                            f"sum by (model) (increase({tok}[{RI}])) / "
                            f"sum by (model) (increase({req}[{RI}]))",
                            "{{model}}",
                        )
                    ],
                ),
                _Panel(
                    "Input / output ratio",
                    "timeseries",
                    [
                        (
                            f'sum by (model) (rate({tokens}{{{SEL}, type="input"}}[{RI}])) / '
                            f'sum by (model) (rate({tokens}{{{SEL}, type="output"}}[{RI}]))',
                            "{{model}}",
                        )
                    ],
                ),
                _Panel(
                    "Cached share of input tokens",
                    "timeseries",
                    [
                        (
                            f'sum by (model) (rate({tokens}{{{SEL}, type="cache_read"}}[{RI}])) / '
                            f'sum by (model) (rate({tokens}{{{SEL}, type="input"}}[{RI}]))',
                            "{{model}}",
                        )
                    ],
                    "percentunit",
                    24,
                ),
            ],
        ),
        (
            "Quality",
            [
                _Panel(
                    "Quality score over time",
                    "timeseries",
                    [(quality(), "mean quality")],
                    "percentunit",
                    12,
                    options={"min": 0, "max": 1},
                ),
                _Panel(
                    "Quality by feature",
                    "timeseries",
                    [(quality("feature"), "{{feature}}")],
                    "percentunit",
                    12,
                    options={"min": 0, "max": 1},
                ),
                _Panel(
                    "Quality by model",
                    "bargauge",
                    [(quality("model"), "{{model}}")],
                    "percentunit",
                    12,
                    options={"min": 0, "max": 1},
                ),
                _Panel(
                    "Scores by source",
                    "bargauge",
                    [
                        (
                            f"sum by (source) (increase({quality_count}{{{QSEL}}}[$__range]))",
                            "{{source}}",
                        )
                    ],
                    "short",
                    12,
                ),
            ],
        ),
        (
            "Operational Health",
            [
                _Panel(
                    "Request volume (req/s)",
                    "timeseries",
                    [(f"sum by (model) (rate({req}[{RI}]))", "{{model}}")],
                    "reqps",
                ),
                _Panel(
                    "Error rate",
                    "timeseries",
                    [
                        (
                            f'sum by (model) (rate({requests}{{{SEL}, status!="ok"}}[{RI}])) / '
                            f"sum by (model) (rate({req}[{RI}]))",
                            "{{model}}",
                        )
                    ],
                    "percentunit",
                ),
                _Panel(
                    "Errors by type",
                    "timeseries",
                    [
                        (
                            f"sum by (error_type) (rate({M.ERRORS.series(ns)}{{{SEL}}}[{RI}]))",
                            "{{error_type}}",
                        )
                    ],
                    "reqps",
                ),
                _Panel(
                    "Provider circuit state",
                    "stat",
                    [
                        (
                            # one series per state (1 for the current one): 0 closed,
                            # 1 half-open, 2 open, shown by the mappings below
                            f'max by (provider) ({circuit}{{state="half_open"}}) + 2 * '
                            f'max by (provider) ({circuit}{{state="open"}})',
                            "{{provider}}",
                        )
                    ],
                    mappings=[
                        {
                            "type": "value",
                            "options": {
                                "0": {"text": "closed", "color": "green"},
                                "1": {"text": "half-open", "color": "yellow"},
                                "2": {"text": "open", "color": "red"},
                            },
                        },
                    ],
                ),
                _Panel(
                    "Calls in flight",
                    "timeseries",
                    [
                        (
                            f'sum by (model) ({M.INFLIGHT.series(ns)}{{model=~"$model"}})',
                            "{{model}}",
                        )
                    ],
                ),
                _Panel(
                    "Retries by reason",
                    "timeseries",
                    [
                        (
                            f'sum by (reason) (rate({M.RETRIES.series(ns)}{{model=~"$model"}}'
                            f"[{RI}]))",
                            "{{reason}}",
                        )
                    ],
                    "reqps",
                ),
                _Panel(
                    "Active alerts",
                    "table",
                    [("sum by (alertname, severity, alertstate) (ALERTS)", "")],
                    width=16,
                    options={"format": "table", "instant": True},
                ),
                _Panel(
                    "Calls without a price",
                    "stat",
                    [
                        (
                            f'sum(increase({M.UNPRICED.series(ns)}{{model=~"$model"}}[$__range]))',
                            "",
                        )
                    ],
                ),
            ],
        ),
    ]


def _variable(name: str, label: str, ns: str) -> dict[str, Any]:
    query = f"label_values({M.REQUESTS.series(ns)}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def _panel_json(p: _Panel, pid: int, x: int, y: int, ns: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit, "mappings": p.mappings}
    for key in ("min", "max"):
        if key in p.options:
            defaults[key] = p.options[key]
    instant = bool(p.options.get("instant"))
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": legend or "__auto",
            "refId": chr(ord("A") + i),
            "range": not instant,
            "instant": instant,
            **({"format": p.options["format"]} if "format" in p.options else {}),
        }
        for i, (expr, legend) in enumerate(p.targets)
    ]
    panel: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "targets": targets,
    }
    if p.description:
        panel["description"] = p.description
    if p.kind == "heatmap":
        panel["options"] = {"calculate": False, "yAxis": {"unit": "s"}}
        for t in targets:
            t["format"] = "heatmap"
    return panel


def grafana_dashboard(
    *,
    title: str = "aiscope: LLM operations",
    uid: str = "aiscope-llm",
    namespace: str = M.DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """The dashboard as a dict (``json.dumps`` it, or use :func:`export_grafana_dashboard`),
    over the metrics of ``MetricsCollector(namespace=namespace)``."""
    check_namespace(namespace)
    check_dashboard_uid(uid)
    panels: list[dict[str, Any]] = []
    y, pid = 0, 1
    for row_title, row_panels in _rows(namespace):
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y = pid + 1, y + 1
        x, row_h = 0, 0
        for p in row_panels:
            if x + p.width > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(_panel_json(p, pid, x, y, namespace))
            pid, x, row_h = pid + 1, x + p.width, max(row_h, p.height)
        y += row_h
    return {
        "title": title,
        "uid": uid,
        "tags": ["aiscope", "llm"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                _variable("model", "Model", namespace),
                _variable("feature", "Feature", namespace),
                _variable("team", "Team", namespace),
            ]
        },
        "panels": panels,
    }


def export_grafana_dashboard(**kwargs: Any) -> str:
    """The dashboard JSON text."""
    return json.dumps(grafana_dashboard(**kwargs), indent=2)


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (panel title, PromQL expression) of a dashboard."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


_VAR = re.compile(r"\$(__rate_interval|__interval|__range|model|feature|team)\b")


def expand_variables(
    expr: str, *, rate_interval: str = "1m", range_: str = "1h", **values: str
) -> str:
    """``expr`` as Grafana would send it with every variable on "All" (``.*``) unless
    given in ``values``, and the interval variables set to the given durations."""
    fixed = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": range_}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        return fixed.get(name) or values.get(name, ".*")

    return _VAR.sub(sub, expr)


__all__ = [
    "SCHEMA_VERSION",
    "dashboard_queries",
    "expand_variables",
    "export_grafana_dashboard",
    "grafana_dashboard",
]
