"""Timing helpers for the bench scripts: gc-off passes, rounds in rotating order, medians.

The scheme is the one ``bench/sinks.py`` uses (a warm-up pass per contender, then
rounds in which the contenders run one pass each in rotating, alternately reversed
order, the garbage collector off during each timed pass, medians over the rounds),
with a pass generalised to any callable returning the seconds it measured, so a
pass can be synchronous, drive an event loop, or run in another process.
"""

from __future__ import annotations

import gc
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Contender:
    """One timed thing: ``run()`` makes ``calls`` calls and returns the seconds they took."""

    key: str
    label: str
    run: Callable[[], float]
    calls: int


def one_pass(run: Callable[[], float]) -> float:
    """Seconds of one pass, measured by ``run`` itself, with the garbage collector off."""
    gc.disable()
    try:
        return run()
    finally:
        gc.enable()


def progress(text: str) -> None:
    """A status line on stderr (only on a terminal)."""
    if sys.stderr.isatty():
        print(f"\r{text:<70}", file=sys.stderr, end="", flush=True)


def time_rounds(
    groups: Sequence[Sequence[Contender]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of every contender, one value per round.

    Each round runs every group, and in each group every contender once, in an
    order rotated by one from the previous round and reversed on odd rounds, so
    that no contender always runs first, last, or right after the same neighbour.
    """
    flat = [c for g in groups for c in g]
    for _ in range(warmup):
        for c in flat:
            one_pass(c.run)
    out: dict[str, list[float]] = {c.key: [] for c in flat}
    for i in range(rounds):
        gc.collect()
        for group in groups:
            n = len(group)
            order = list(group[i % n :]) + list(group[: i % n])
            if i % 2:
                order.reverse()
            for c in order:
                out[c.key].append(one_pass(c.run) / c.calls)
        progress(f"timing: round {i + 1}/{rounds}")
    progress("")
    return out


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (min and max for fewer than four values)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] - b[i]`` for each round ``i``: both measured in the same round."""
    return [x - y for x, y in zip(a, b, strict=True)]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """An aligned text table under a rule: the first column left-aligned, the others
    right-aligned. A row shorter than the header ends in free text (e.g. why a
    contender did not run), which does not widen any column."""
    n = len(header)

    def cells(row: Sequence[str]) -> Sequence[str]:
        return row if len(row) == n else row[:-1]

    widths = [max(len(r[i]) for r in (header, *map(cells, rows)) if i < len(r)) for i in range(n)]

    def line(row: Sequence[str]) -> str:
        out = [
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells(row))
        ]
        if len(row) != n:
            out.append(row[-1])
        return (indent + "  ".join(out)).rstrip()

    top = line(header)
    print(top)
    print(indent + "-" * (len(top) - len(indent)))
    for row in rows:
        print(line(row))
