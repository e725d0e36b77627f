"""Where the per-call metric values live between scrapes.

prometheus_client keeps one locked float per sample and walks a histogram's
buckets in Python on every observation: about a dozen lock round-trips per LLM
call. Here every label combination (a *series*) is one flat list of numbers,
updated under a single lock per call, and turned into metric families only when
scraped, by a custom collector on the same registry. The exposition is still
``prometheus_client``'s own, sample for sample what its Counter/Histogram would
print (``tests/metrics/test_metrics_store.py`` checks it against them).

Under prometheus_client's multiprocess mode the values must live in its mmap
files, so :class:`~aiscope.metrics.collector.MetricsCollector` uses the library's
own metric children there instead (see ``collector.py``).

Latency percentiles use DDSketch's logarithmic mapping over milliseconds (the
bins of :mod:`aiscope.sketch`): a call adds one to its bin's count here (a dict
per model, bounded by the mapping's range), and a :class:`~ddsketch.DDSketch` is
built from the bins when percentiles are asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from aiscope import metric_definitions as M
from aiscope.counters import zeros
from aiscope.metric_definitions import TOKEN_TYPES, MetricDefinition


class Layout:
    """Offsets of the values of one series in its flat list.

    ``[duration_sum, duration buckets..., +Inf, ttft_sum, ttft buckets..., +Inf,
    input, output, cache_read, cache_write, reasoning, cost]``; bucket counts are per
    bucket (not cumulative) until exposition. The request count is the duration
    histogram's count: one number fewer to update per call.
    """

    __slots__ = (
        "cost",
        "duration_bounds",
        "duration_bucket0",
        "duration_sum",
        "size",
        "tokens",
        "ttft_bounds",
        "ttft_bucket0",
        "ttft_sum",
    )

    def __init__(self, duration_buckets: Sequence[float], ttft_buckets: Sequence[float]) -> None:
        self.duration_bounds = tuple(float(b) for b in duration_buckets)
        self.ttft_bounds = tuple(float(b) for b in ttft_buckets)
        self.duration_sum = 0
        self.duration_bucket0 = 1
        self.ttft_sum = self.duration_bucket0 + len(self.duration_bounds) + 1
        self.ttft_bucket0 = self.ttft_sum + 1
        self.tokens = self.ttft_bucket0 + len(self.ttft_bounds) + 1
        self.cost = self.tokens + len(TOKEN_TYPES)
        self.size = self.cost + 1


class Bins:
    """DDSketch bins of one model's latencies (or times to first token).

    A dense list of counts from bin ``offset`` on (a list, not an ``array``:
    CPython specialises ``list[i] += 1``, which makes it twice as fast). At most
    ``limit`` bins are kept: past that the lowest ones are folded into the lowest
    kept bin, as DDSketch's ``LogCollapsingLowestDenseDDSketch`` does, so the high
    quantiles (p95, p99) keep their accuracy and memory has a hard bound.
    """

    __slots__ = ("counts", "limit", "offset", "zeros")

    def __init__(self, limit: int = 2048) -> None:
        self.counts: list[float] = []
        self.offset = 0
        self.zeros = 0
        self.limit = limit

    def add_key(self, key: int) -> None:
        """Count one value in bin ``key`` (the out-of-range path of the hot loop)."""
        counts = self.counts
        i = key - self.offset
        if 0 <= i < len(counts):
            counts[i] += 1.0
            return
        if not counts:
            self.offset, self.counts = key, [1.0]
            return
        if i < 0:
            grow = min(-i, self.limit - len(counts))
            if grow <= 0:  # full: the lowest kept bin takes it
                counts[0] += 1.0
                return
            self.counts = zeros(grow) + counts
            self.offset -= grow
            self.add_key(key)
            return
        counts.extend(zeros(i + 1 - len(counts)))
        excess = len(counts) - self.limit
        if excess > 0:  # fold the lowest bins into the lowest one kept
            folded = sum(counts[: excess + 1])
            del counts[:excess]
            counts[0] = folded
            self.offset += excess
        counts[key - self.offset] += 1.0

    def merge_into(self, counts: dict[int, float]) -> None:
        """Add these bins' counts to ``counts`` (bin key -> count)."""
        for i, n in enumerate(self.counts):
            if n:
                k = self.offset + i
                counts[k] = counts.get(k, 0.0) + n


def sketch_of(bins: Iterable[Bins], accuracy: float) -> DDSketch:
    """A DDSketch holding the values of ``bins`` (each at its bin's representative, in ms)."""
    counts: dict[int, float] = {}
    zeros = 0
    for b in bins:
        b.merge_into(counts)
        zeros += b.zeros
    sk = DDSketch(accuracy)  # its mapping is LogarithmicMapping(accuracy)
    value = LogarithmicMapping(accuracy).value  # a bin's representative maps back to it
    for key, n in counts.items():
        sk.add(value(key), n)
    if zeros:
        sk.add(0.0, zeros)
    return sk


class Series:
    """One label combination: its label values, its numbers, its creation time."""

    __slots__ = ("base", "created", "error", "latency_bins", "status", "ttft_bins", "values")

    def __init__(
        self,
        layout: Layout,
        base: tuple[str, ...],
        status: str,
        error: str,
        latency_bins: Bins,
        ttft_bins: Bins,
    ) -> None:
        self.base = base
        self.status = status
        self.error = error
        self.values: list[float] = zeros(layout.size)
        self.created = time.time()
        self.latency_bins = latency_bins
        self.ttft_bins = ttft_bins


def _use_created() -> bool:
    # whether prometheus_client prints _created samples (its enable_created_metrics() /
    # disable_created_metrics() and PROMETHEUS_DISABLE_CREATED_SERIES set it): it has no
    # public getter, so the flag is read, defaulting to its default if it ever goes
    from prometheus_client import metrics as prom_metrics

    return bool(getattr(prom_metrics, "_use_created", True))


_F = TypeVar("_F", CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily)


class StoreCollector:
    """Exposes the series of one MetricsCollector as Prometheus metric families."""

    def __init__(
        self,
        namespace: str,
        tag_labels: Sequence[str],
        layout: Layout,
        series: Iterable[Series],
        inflight: dict[tuple[str, str], list[int]],
        lock: Any,
    ) -> None:
        self.ns = namespace
        self.tag_labels = tuple(tag_labels)
        self.layout = layout
        self._series = series
        self._inflight = inflight
        self._lock = lock

    def _family(self, kind: type[_F], definition: MetricDefinition) -> _F:
        return kind(
            definition.name_in(self.ns),
            definition.help,
            labels=definition.label_names(self.tag_labels),
        )

    def describe(self) -> list[Metric]:
        """Families without samples, so the registry checks names up front."""
        return list(self._families([], []))

    def collect(self) -> Iterator[Metric]:
        """Every family, from a consistent copy of the values."""
        with self._lock:
            snapshot = [(s, list(s.values)) for s in list(self._series)]
            inflight = [(k, v[0]) for k, v in self._inflight.items()]
        yield from self._families(snapshot, inflight)

    def _families(
        self,
        snapshot: list[tuple[Series, list[Any]]],
        inflight: list[tuple[tuple[str, str], int]],
    ) -> Iterator[Metric]:
        lay = self.layout
        created = _use_created()
        requests = self._family(CounterMetricFamily, M.REQUESTS)
        errors = self._family(CounterMetricFamily, M.ERRORS)
        # duration, ttft, tokens and cost are per base label set: sum the series over
        # their status and error type
        per_status: dict[tuple[str, ...], list[Any]] = {}
        per_error: dict[tuple[str, ...], list[Any]] = {}
        per_base: dict[tuple[str, ...], tuple[list[Any], float]] = {}
        first, end = lay.duration_bucket0, lay.ttft_sum
        for s, v in snapshot:
            n = sum(v[first:end])  # calls: the duration histogram's count
            _count(per_status, (*s.base, s.status), n, s.created)
            if s.status != "ok":
                _count(per_error, (*s.base, s.error), n, s.created)
            acc = per_base.get(s.base)
            if acc is None:
                per_base[s.base] = (list(v), s.created)
            else:
                total = acc[0]
                for i in range(lay.size):
                    total[i] += v[i]
                per_base[s.base] = (total, min(acc[1], s.created))
        for family, counts in ((requests, per_status), (errors, per_error)):
            for labels, (n, since) in counts.items():
                family.add_metric(labels, n, since if created else None)
        duration = self._family(HistogramMetricFamily, M.REQUEST_DURATION)
        names = M.REQUEST_DURATION.label_names(self.tag_labels)  # ttft's are the same
        ttft = self._family(HistogramMetricFamily, M.TIME_TO_FIRST_TOKEN)
        tokens = self._family(CounterMetricFamily, M.TOKENS)
        cost = self._family(CounterMetricFamily, M.COST)
        for labels, (v, since) in per_base.items():
            at = since if created else None
            _histogram(
                duration,
                names,
                labels,
                v,
                lay.duration_bucket0,
                lay.duration_bounds,
                v[lay.duration_sum],
                at,
            )
            _histogram(
                ttft, names, labels, v, lay.ttft_bucket0, lay.ttft_bounds, v[lay.ttft_sum], at
            )
            for i, name in enumerate(TOKEN_TYPES):
                tokens.add_metric([*labels, name], v[lay.tokens + i], at)
            cost.add_metric(labels, v[lay.cost], at)
        inflight_g = self._family(GaugeMetricFamily, M.INFLIGHT)
        for (m, p), n in inflight:
            inflight_g.add_metric([m, p], n)
        # the order prometheus_client's own metrics are registered in
        yield from (requests, duration, ttft, tokens, errors, cost, inflight_g)


def _count(into: dict[tuple[str, ...], list[Any]], key: tuple[str, ...], n: int, at: float) -> None:
    acc = into.get(key)
    if acc is None:
        into[key] = [n, at]
    else:
        acc[0] += n
        acc[1] = min(acc[1], at)


def _histogram(
    family: HistogramMetricFamily,
    names: Sequence[str],
    labels: tuple[str, ...],
    values: list[Any],
    first: int,
    bounds: tuple[float, ...],
    total: float,
    created: float | None,
) -> None:
    acc = 0
    buckets: list[tuple[str, float]] = []
    for i, bound in enumerate(bounds):
        acc += values[first + i]
        buckets.append((floatToGoString(bound), float(acc)))  # type: ignore[no-untyped-call]
    acc += values[first + len(bounds)]
    buckets.append(("+Inf", float(acc)))
    family.add_metric(list(labels), buckets, total)
    if created is not None:
        family.add_sample(family.name + "_created", dict(zip(names, labels, strict=True)), created)
