"""Mergeable latency sketches for rollups: DDSketch bins as a JSON object.

A value is counted in DDSketch's logarithmic bin (1% relative accuracy); two
sketches merge by adding counts bin by bin, so per-minute rollups written by
different batches or replicas combine into exact-to-1% percentiles over any
time range without reading a single call. Keys are strings because JSON object
keys are; values below DDSketch's smallest bin are counted under ``"z"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ddsketch import DDSketch

ACCURACY = 0.01
_MAPPING = DDSketch(ACCURACY)._mapping
_ZERO = "z"

Bins = dict[str, int]


def add(bins: Bins, value: float) -> None:
    """Count ``value`` (>= 0) in ``bins``."""
    key = _ZERO if value < _MAPPING.min_possible else str(_MAPPING.key(value))
    bins[key] = bins.get(key, 0) + 1


def merge(many: Iterable[Mapping[str, int]]) -> Bins:
    """The bin-wise sum of ``many`` sketches."""
    out: Bins = {}
    for bins in many:
        for key, n in bins.items():
            out[key] = out.get(key, 0) + int(n)
    return out


def check_quantiles(qs: Sequence[float]) -> None:
    """Raise ``ValueError`` unless every quantile is within [0, 1]."""
    if not qs:
        raise ValueError("quantiles must not be empty")
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q!r}")


def quantiles(bins: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of ``bins``, within 1% of the true values; None if empty."""
    check_quantiles(qs)
    sk = DDSketch(ACCURACY)
    for key, n in bins.items():
        if n > 0:
            sk.add(0.0 if key == _ZERO else _MAPPING.value(int(key)), float(n))
    if sk.count == 0:
        return [None for _ in qs]
    values: list[float | None] = []
    for q in qs:
        v = sk.get_quantile_value(q)
        values.append(None if v is None else float(v))
    return values
