"""Prometheus metrics and in-process percentiles."""

from aiscope.metrics.collector import (
    DURATION_BUCKETS,
    TTFT_BUCKETS,
    LatencyPercentiles,
    MetricsCollector,
)

__all__ = ["DURATION_BUCKETS", "TTFT_BUCKETS", "LatencyPercentiles", "MetricsCollector"]
