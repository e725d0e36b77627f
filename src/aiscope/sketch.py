"""Mergeable latency sketches: DDSketch bins as a JSON object, in milliseconds.

A value is counted in DDSketch's logarithmic bin (1% relative accuracy); two
sketches merge by adding counts bin by bin, so per-minute rollups written by
different batches or replicas combine into exact-to-1% percentiles over any
time range without reading a single call. Keys are strings because JSON object
keys are; values below DDSketch's smallest bin are counted under ``"z"``.

The server's rollups and the in-process alert windows both count latencies here,
in milliseconds, so the two answer one question with one number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ddsketch.mapping import LogarithmicMapping

ACCURACY = 0.01
#: the mapping of ``DDSketch(ACCURACY)`` (DDSketch's default is the logarithmic one)
_MAPPING = LogarithmicMapping(ACCURACY)
_ZERO = "z"
LN2 = math.log(2.0)


def key_function(accuracy: float) -> tuple[float, float]:
    """(multiplier, smallest value with a bin) of DDSketch's mapping at ``accuracy``.

    A value ``v`` at or above the smallest falls in bin ``ceil(log(v) / LN2 *
    multiplier)``: ``LogarithmicMapping(accuracy).key(v)`` (offset 0), for hot paths
    that cannot afford a method call per value. The multiplier is computed from the
    mapping's public ``relative_accuracy`` as ddsketch computes it (bit for bit), and
    checked against ``key`` so a ddsketch that maps differently is refused at import.
    """
    mapping = LogarithmicMapping(accuracy)
    a = mapping.relative_accuracy
    multiplier = (1.0 / math.log1p(2.0 * a / (1.0 - a))) * LN2
    probes = [1e-4 * 1.37**i for i in range(60)]
    if any(
        math.ceil(math.log(v) / LN2 * multiplier) != mapping.key(v) for v in probes
    ):  # pragma: no cover - only if a new ddsketch changes its logarithmic mapping
        raise RuntimeError("DDSketch's mapping changed; aiscope's percentile bins need updating")
    return multiplier, float(mapping.min_possible)


#: ``key(v) == ceil(log(v) / LN2 * MULTIPLIER)`` above ``MIN_VALUE`` (DDSketch's
#: LogarithmicMapping with offset 0): for hot paths that cannot afford a method call
MULTIPLIER, MIN_VALUE = key_function(ACCURACY)
#: the key :func:`key` gives a value too small for a bin (below any real bin's key)
ZERO_KEY = -(2**62)

Bins = dict[str, int]


def key(value: float) -> int:
    """The bin of ``value`` (>= 0); :data:`ZERO_KEY` below the smallest bin."""
    if value < MIN_VALUE:
        return ZERO_KEY
    return math.ceil(math.log(value) / LN2 * MULTIPLIER)


def add(bins: Bins, value: float) -> None:
    """Count ``value`` (>= 0) in ``bins``."""
    k = _ZERO if value < _MAPPING.min_possible else str(_MAPPING.key(value))
    bins[k] = bins.get(k, 0) + 1


def from_keys(counts: Mapping[int, float]) -> Bins:
    """Bins (the JSON form) from counts by :func:`key`."""
    return {(_ZERO if k == ZERO_KEY else str(k)): int(n) for k, n in counts.items() if n > 0}


def merge(many: Iterable[Mapping[str, int]]) -> Bins:
    """The bin-wise sum of ``many`` sketches."""
    sketches = iter(many)
    out: Bins = dict(next(sketches, {}))  # the first one copied whole, in C
    get = out.get
    for bins in sketches:
        for key, n in bins.items():
            out[key] = get(key, 0) + n
    return out


#: most quantiles one query may ask for: each one is another series per key
MAX_QUANTILES = 10


def check_quantiles(qs: Sequence[float]) -> None:
    """Raise ``ValueError`` unless there are 1..MAX_QUANTILES distinct quantiles in [0, 1]."""
    if not qs:
        raise ValueError("quantiles must not be empty")
    if len(qs) > MAX_QUANTILES:
        raise ValueError(f"at most {MAX_QUANTILES} quantiles per request, got {len(qs)}")
    if len(set(qs)) != len(qs):
        raise ValueError("each quantile may be asked for once")
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q!r}")


def quantiles(bins: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of ``bins``, within 1% of the true values; None if empty.

    What ``DDSketch.get_quantile_value`` answers for these bins (a value's rank is
    ``q * (count - 1)``; the bin holding it gives the value), read straight off the
    sorted bins: the dashboard asks this of hundreds of merged sketches per chart.
    """
    check_quantiles(qs)
    zero = 0.0
    keyed: list[tuple[int, float]] = []
    for name, n in bins.items():
        if n > 0:
            if name == _ZERO:
                zero += n
            else:
                keyed.append((int(name), float(n)))
    count = zero + sum(n for _, n in keyed)
    if count == 0:
        return [None for _ in qs]
    keyed.sort()
    values: list[float | None] = []
    for q in qs:
        rank = q * (count - 1)
        if rank < zero:
            values.append(0.0)
            continue
        rank -= zero
        running = 0.0
        found = keyed[-1][0]
        for k, c in keyed:
            running += c
            if running > rank:
                found = k
                break
        values.append(float(_MAPPING.value(found)))
    return values


__all__ = [
    "ACCURACY",
    "LN2",
    "MAX_QUANTILES",
    "MIN_VALUE",
    "MULTIPLIER",
    "ZERO_KEY",
    "Bins",
    "add",
    "check_quantiles",
    "from_keys",
    "key",
    "key_function",
    "merge",
    "quantiles",
]
