"""Rolling-window aggregates of the recorded calls, for the in-process evaluator.

Calls and quality scores are added to fixed-size time buckets (``resolution_s``)
per label combination (model, provider, feature, team; values bounded by a
:class:`~aiscope.labels.LabelLimiter`); buckets older than the longest window
are dropped, so memory is bounded by windows x combinations, not by calls. The
UTC day so far is kept as its own running total, reset at midnight. Latencies
are counted in the DDSketch bins of :mod:`aiscope.sketch` (milliseconds, 1%
relative accuracy), the sketch the aiscope server keeps in its rollups, so a
percentile here is the server's number for the same calls (and within 1% of the
true one). The exported Prometheus rules read histogram buckets instead; every
default latency threshold is a bucket boundary of ``ai_lib_request_duration_seconds``,
where ``histogram_quantile`` is exact (see :mod:`aiscope.alerts.prometheus`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiscope import sketch
from aiscope.labels import LabelLimiter
from aiscope.metric_definitions import GROUP_LABELS
from aiscope.record import CallRecord

Key = tuple[str, str, str, str]  # the group labels: model, provider, feature, team
_LABEL_INDEX = {name: i for i, name in enumerate(GROUP_LABELS)}
# sketch.key(seconds * 1000) as log(seconds) * _SCALE + _SHIFT: the same bins, fewer steps
_SCALE = sketch.MULTIPLIER / sketch.LN2
_SHIFT = math.log(1000.0) * _SCALE
_MIN_S = sketch.MIN_VALUE / 1000.0
_ZERO_KEY = sketch.ZERO_KEY
_log, _ceil = math.log, math.ceil


class _Agg:
    """What one label combination did in one time bucket."""

    __slots__ = ("bins", "cost", "count", "errors", "qcount", "qsum", "tokens")

    def __init__(self) -> None:
        self.count = 0.0
        self.errors = 0.0
        self.cost = 0.0
        self.tokens = 0.0
        self.qsum = 0.0
        self.qcount = 0.0
        #: latency sketch: bin key (:func:`aiscope.sketch.key`, ms) -> calls
        self.bins: dict[int, int] = {}

    def add(self, other: _Agg) -> None:
        self.count += other.count
        self.errors += other.errors
        self.cost += other.cost
        self.tokens += other.tokens
        self.qsum += other.qsum
        self.qcount += other.qcount
        bins = self.bins
        get = bins.get
        for k, n in other.bins.items():
            bins[k] = get(k, 0) + n

    def copy(self) -> _Agg:
        out = _Agg()
        out.add(self)
        return out


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """Prometheus' ``histogram_quantile`` (promql/quantile.go ``bucketQuantile``) over
    per-bucket (not cumulative) ``counts``; the last count is the +Inf bucket.
    None where Prometheus gives NaN (no observations). What an exported latency rule
    computes; the in-process windows read a sketch instead."""
    cumulative: list[float] = []
    acc = 0.0
    for c in counts:
        acc += c
        cumulative.append(acc)
    observations = cumulative[-1] if cumulative else 0.0
    if len(cumulative) < 2 or observations <= 0:
        return None
    upper = [*bounds, math.inf]
    rank = q * observations
    last = len(cumulative) - 1
    b = next((i for i in range(last) if cumulative[i] >= rank), last)
    if b == last:
        return float(upper[last - 1])
    if b == 0 and upper[0] <= 0:
        return float(upper[0])
    start, end, count = 0.0, upper[b], cumulative[b]
    if b > 0:
        start = upper[b - 1]
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    return float(start + (end - start) * (rank / count))


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What the calls of one group did in one window (a custom signal's input)."""

    requests: float
    errors: float
    cost_usd: float
    tokens: float
    quality_sum: float
    quality_count: float
    #: the latencies' sketch (:mod:`aiscope.sketch` bins, milliseconds)
    latency_bins: Mapping[str, int] = field(default_factory=dict)

    def latency_quantile_ms(self, q: float) -> float | None:
        """The ``q`` latency percentile in ms (within 1%; None without calls), as the
        aiscope server computes it from its rollups' sketches."""
        return sketch.quantiles(self.latency_bins, [q])[0]

    @property
    def cost_per_request_usd(self) -> float | None:
        """Mean cost of a call (None without calls)."""
        return self.cost_usd / self.requests if self.requests else None

    @property
    def quality(self) -> float | None:
        """Mean quality score (None without scores)."""
        return self.quality_sum / self.quality_count if self.quality_count else None

    @property
    def error_rate(self) -> float | None:
        """Failed calls / calls (None without calls)."""
        return self.errors / self.requests if self.requests else None


class WindowStore:
    """Time-bucketed aggregates of calls and quality scores (thread-safety is the
    caller's: the evaluator holds its lock around every method)."""

    def __init__(
        self,
        retention_s: float,
        resolution_s: float = 10.0,
        max_label_values: int = 100,
    ) -> None:
        if not resolution_s > 0:
            raise ValueError(f"resolution_s must be > 0, got {resolution_s!r}")
        self.resolution_s = float(resolution_s)
        self.retention_s = float(retention_s)
        self._labels = LabelLimiter(max_label_values)
        #: bucket index -> key -> aggregate
        self._buckets: dict[int, dict[Key, _Agg]] = {}
        self._day = -1
        self._day_aggs: dict[Key, _Agg] = {}
        #: raw label values -> bounded key (the hot path's cache)
        self._keys: dict[Key, Key] = {}
        self._max_keys = 4 * max_label_values
        #: the latest bucket index and the aggregates a call in it goes to
        self._cur_index = -1
        self._cur: tuple[dict[Key, _Agg], ...] = ()

    def _key(self, model: str, provider: str, feature: str, team: str) -> Key:
        raw = (model, provider, feature, team)
        hit = self._keys.get(raw)
        if hit is not None:
            return hit
        get = self._labels.get
        key = (
            get("model", model),
            get("provider", provider),
            get("feature", feature),
            get("team", team),
        )
        if len(self._keys) < self._max_keys:  # the cache is bounded too
            self._keys[raw] = key
        return key

    def _aggs(self, at: float) -> tuple[dict[Key, _Agg], ...]:
        index = int(at // self.resolution_s)
        if index == self._cur_index:  # the common case: same bucket as the last call
            return self._cur
        bucket = self._buckets.get(index)
        if bucket is None:
            # a new bucket at most once per resolution_s: drop the expired ones here too,
            # so memory stays bounded even if nobody evaluates
            self.prune(at)
            bucket = self._buckets[index] = {}
        day = int(at // 86400)
        if day > self._day:
            self._day, self._day_aggs = day, {}
        out = (bucket, self._day_aggs) if day == self._day else (bucket,)
        if index > self._cur_index:
            self._cur_index, self._cur = index, out
        return out

    def add_call(self, record: CallRecord) -> None:
        """Count one finished call at its end time."""
        tags = record.tags
        key = self._key(
            record.model, record.provider, tags.get("feature", ""), tags.get("team", "")
        )
        latency = record.latency_s
        # aiscope.sketch.key(latency in ms), inline: a call per record costs more than the rest
        k = _ceil(_log(latency) * _SCALE + _SHIFT) if latency >= _MIN_S else _ZERO_KEY
        u = record.usage
        tokens = u.input_tokens + u.output_tokens
        cost = record.cost_usd or 0.0
        failed = record.status != "ok"
        for into in self._aggs(record.start_time + latency):
            a = into.get(key)
            if a is None:
                a = into[key] = _Agg()
            a.count += 1.0
            if failed:
                a.errors += 1.0
            a.cost += cost
            a.tokens += tokens
            bins = a.bins
            try:  # the bin is there but for a call's first in a bucket: cheaper than .get
                bins[k] += 1
            except KeyError:
                bins[k] = 1

    def add_quality(
        self, score: float, at: float, model: str, provider: str, feature: str, team: str
    ) -> None:
        """Count one quality score."""
        key = self._key(model, provider, feature, team)
        for into in self._aggs(at):
            a = into.get(key)
            if a is None:
                a = into[key] = _Agg()
            a.qsum += score
            a.qcount += 1.0

    def prune(self, now: float) -> None:
        """Drop buckets older than the retention."""
        oldest = int((now - self.retention_s) // self.resolution_s)
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]
        if self._cur_index < oldest:
            self._cur_index, self._cur = -1, ()

    def stats(
        self, now: float, window_s: float, daily: bool, group_by: Sequence[str]
    ) -> dict[tuple[str, ...], WindowStats]:
        """Per group (label values in ``group_by`` order) over the window ending at
        ``now``: the UTC day so far when ``daily``, else the last ``window_s``."""
        sources: list[dict[Key, _Agg]]
        if daily:
            sources = [self._day_aggs] if int(now // 86400) == self._day else []
        else:
            first = int((now - window_s) // self.resolution_s)
            # a bucket counts when it starts inside (now - window, now]
            if first * self.resolution_s < now - window_s:
                first += 1
            last = int(now // self.resolution_s)
            sources = [b for i, b in self._buckets.items() if first <= i <= last]
        idx = [_LABEL_INDEX[g] for g in group_by]
        sums: dict[tuple[str, ...], _Agg] = {}
        for source in sources:
            for key, agg in source.items():
                group = tuple(key[i] for i in idx)
                acc = sums.get(group)
                if acc is None:
                    sums[group] = agg.copy()
                else:
                    acc.add(agg)
        return {g: self._stats(a) for g, a in sums.items()}

    def _stats(self, a: _Agg) -> WindowStats:
        return WindowStats(
            requests=a.count,
            errors=a.errors,
            cost_usd=a.cost,
            tokens=a.tokens,
            quality_sum=a.qsum,
            quality_count=a.qcount,
            latency_bins=sketch.from_keys(a.bins),
        )

    def size(self) -> int:
        """Aggregates held (for memory checks)."""
        return sum(len(b) for b in self._buckets.values()) + len(self._day_aggs)


def signal_value(signal: Any, stats: WindowStats) -> float | None:
    """The value of a rule's signal for one group's window."""
    from aiscope.alerts.rules import latency_quantile

    if callable(signal):
        v = signal(stats)
        return None if v is None else float(v)
    if signal == "cost_usd":
        return stats.cost_usd
    if signal == "cost_per_request_usd":
        return stats.cost_per_request_usd
    if signal == "quality":
        return stats.quality
    if signal == "tokens":
        return stats.tokens
    if signal == "requests":
        return stats.requests
    if signal == "error_rate":
        return stats.error_rate
    q = latency_quantile(signal)
    if q is None:
        raise ValueError(f"unknown signal {signal!r}")
    return stats.latency_quantile_ms(q)


__all__ = [
    "WindowStats",
    "WindowStore",
    "histogram_quantile",
    "signal_value",
]
