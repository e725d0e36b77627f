"""Budget window periods and their ledger keys (internal to :mod:`aiscope.cost`)."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from aiscope.cost._nanos import to_nanos

if TYPE_CHECKING:
    from aiscope.cost.budget import Budget

Window = Literal["total", "daily", "monthly"]
WINDOWS: tuple[str, ...] = ("total", "daily", "monthly")


#: the value a per-tag budget charges once it tracks ``max_values`` others
OVERFLOW_VALUE = "~other"


def check_window(window: object) -> Window:
    """Validate a window name."""
    if window not in WINDOWS:
        raise ValueError(f"budget window must be one of {', '.join(WINDOWS)}; got {window!r}")
    return window  # type: ignore[return-value]


def period_bounds(window: Window, now: float) -> tuple[str, float, float]:
    """The period containing ``now``: its label and its [start, end) Unix times (UTC)."""
    if window == "total":
        return "all", 0.0, float("inf")
    d = datetime.fromtimestamp(now, UTC)
    if window == "daily":
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        label = start.strftime("%Y-%m-%d")
        return label, start.timestamp(), start.timestamp() + 86400.0
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    return start.strftime("%Y-%m"), start.timestamp(), start.timestamp() + days * 86400.0


def key_period_end(key: str) -> float | None:
    """When the window period of a ledger key (``"name:window:label"``) ends, as a Unix
    time; None for ``total`` windows and keys of another shape (kept forever)."""
    rest, _, label = key.rpartition(":")
    window = rest.rpartition(":")[2]
    try:
        if window == "daily":
            d = datetime.strptime(label, "%Y-%m-%d").replace(tzinfo=UTC)
            return d.timestamp() + 86400.0
        if window == "monthly":
            d = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
            return d.timestamp() + calendar.monthrange(d.year, d.month)[1] * 86400.0
    except ValueError:
        return None
    return None


class Period:
    """Caches the ledger key of a budget's current period (recomputed at the boundary).

    The period is one immutable tuple swapped in a single assignment, so a thread
    never sees the bounds of one period with the key of another. A per-tag budget's
    keys put the value between the name and the window
    (``"name@team=search:daily:2026-11-23"``), so the key still ends in
    ``window:label`` (see :func:`key_period_end`).
    """

    __slots__ = ("_cur", "budget", "limit_nanos", "values")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.limit_nanos = to_nanos(budget.limit_usd)
        self._cur: tuple[float, float, str, str] = (0.0, -1.0, "", "")
        #: the distinct values a per-tag budget tracks (bounded by max_values)
        self.values: dict[str, None] = {}

    def current(self, now: float | None = None) -> str:
        t = time.time() if now is None else now
        cur = self._cur
        if cur[0] <= t < cur[1]:
            return cur[2]
        start, end, key, _ = cur
        if t >= end or t < start:
            label, start, end = period_bounds(self.budget.window, t)
            key = self._prefix() + f"{self.budget.window}:{label}"
            cur = (start, end, key, label)
            if t >= self._cur[0]:  # never move a newer period back
                self._cur = cur
        return key

    def _prefix(self) -> str:
        b = self.budget
        if b.value is not None:
            return f"{b.name}@{b.per}={b.value}:"
        return f"{b.name}:"

    def key_for(self, value: str, now: float | None = None) -> str:
        """The key of ``value``'s share of a per-tag budget in the current period."""
        key = self.current(now)
        b = self.budget
        return f"{b.name}@{b.per}={value}:{key[len(b.name) + 1 :]}"

    def track(self, value: str) -> str:
        """``value`` as charged: itself while fewer than ``max_values`` are tracked."""
        values = self.values
        if value in values:
            return value
        if len(values) >= self.budget.max_values:
            return OVERFLOW_VALUE
        values[value] = None
        return value

    @property
    def label(self) -> str:
        """The label of the period last computed ("all", "2026-11-23", "2026-11")."""
        return self._cur[3]
