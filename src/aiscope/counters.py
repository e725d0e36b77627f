"""Preallocated float accumulators for the per-call hot paths (metrics, cost).

Sums and counts live in plain lists of floats: CPython specialises ``list[i] += x``,
which makes it about twice as fast as an ``array``. The lists start out holding
distinct float objects, so a value's first update frees one float for the one it
makes: memory is set when the list is made, not as its values fill in. Floats even
for counts, for the same reason (ints past 256 are new objects); they are exact
up to 2**53.
"""

from __future__ import annotations

from array import array


def zeros(n: int) -> list[float]:
    """``n`` distinct ``0.0`` objects (``[0.0] * n`` would share one)."""
    return array("d", bytes(8 * n)).tolist()


__all__ = [
    "zeros",
]
