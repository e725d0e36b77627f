"""Dashboards over aiscope's metrics (Grafana)."""

from aiscope.dashboards.grafana import (
    dashboard_queries,
    expand_variables,
    export_grafana_dashboard,
    grafana_dashboard,
)

__all__ = [
    "dashboard_queries",
    "expand_variables",
    "export_grafana_dashboard",
    "grafana_dashboard",
]
