"""Budgets: a limit over a UTC window, kept in a ledger, enforced before the call."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aiscope.cost.ledger import OnLedgerDown, check_on_ledger_down, to_nanos

Window = Literal["total", "daily", "monthly"]
WINDOWS: tuple[str, ...] = ("total", "daily", "monthly")


class BudgetExceededError(Exception):
    """A call was refused because its estimated cost would cross a budget.

    Raised *before* any request is sent. Carries the numbers that decided it.
    """

    def __init__(
        self,
        budget: str,
        window: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float,
        estimate_usd: float,
        model: str,
    ) -> None:
        self.budget = budget
        self.window = window
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        self.model = model
        super().__init__(
            f"budget {budget!r} ({window}) would be exceeded by a call to {model!r}: "
            f"spent ${spent_usd:.6f} + in flight ${reserved_usd:.6f} + estimate "
            f"${estimate_usd:.6f} > limit ${limit_usd:.6f}"
        )


class BudgetUnavailableError(BudgetExceededError):
    """A call was refused because the budget's ledger could not be reached and the
    budget fails closed (``on_ledger_down="closed"``). Raised before any request is sent;
    the spend figures are NaN (unknown)."""

    def __init__(
        self,
        budget: str,
        window: str,
        limit_usd: float,
        estimate_usd: float,
        model: str,
        cause: str,
    ) -> None:
        nan = float("nan")
        Exception.__init__(
            self,
            f"budget {budget!r} ({window}) refused a call to {model!r}: its ledger is "
            f"unreachable ({cause}) and the budget fails closed",
        )
        self.budget = budget
        self.window = window
        self.limit_usd = limit_usd
        self.spent_usd = nan
        self.reserved_usd = nan
        self.estimate_usd = estimate_usd
        self.model = model
        self.cause = cause


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


#: what a budget can be kept per, besides any tag name: the call's model and provider
CALL_FIELDS: tuple[str, ...] = ("model", "provider")
#: the value a per-tag budget charges once it tracks ``max_values`` others
OVERFLOW_VALUE = "~other"


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit in USD over a window (``total``, ``daily`` or ``monthly``, UTC).

    ``on_ledger_down`` says what a call does when the ledger's store (Redis,
    PostgreSQL) is unreachable: ``"closed"`` refuses it, ``"open"`` lets it through
    (counted and logged); None takes the ledger's own default (``"closed"``).

    ``per`` keeps the budget by who spends: a tag name (``"key"``, ``"team"``,
    ``"user"``, ``"feature"``, any other) or ``"model"``/``"provider"`` (the call's
    own). ``Budget(5.0, "daily", name="per-team", per="team")`` gives each team its
    own $5 a day (team=search and team=ads each have $5); with ``value="search"``
    the budget holds only that team's calls. A call without the tag is not held by
    it. At most ``max_values`` distinct values are tracked per tracker; calls of
    further values share one limit under the value ``"~other"`` (so an unbounded
    stream of user ids cannot grow the ledger without bound).
    """

    limit_usd: float
    window: Window = "total"
    name: str = "default"
    on_ledger_down: OnLedgerDown | None = None
    per: str | None = None
    value: str | None = None
    max_values: int = 10_000

    def __post_init__(self) -> None:
        limit = self.limit_usd
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise TypeError(f"budget limit_usd must be a number, got {limit!r}")
        if not (limit >= 0 and limit != float("inf")):
            raise ValueError(f"budget limit_usd must be a finite number >= 0, got {limit!r}")
        check_window(self.window)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"budget name must be a non-empty str, got {self.name!r}")
        if self.on_ledger_down is not None:
            check_on_ledger_down(self.on_ledger_down)
        if self.per is not None and (not isinstance(self.per, str) or not self.per):
            raise ValueError(
                f"budget {self.name!r}: per must be a tag name (key, team, user, feature, "
                f"...) or one of {', '.join(CALL_FIELDS)}; got {self.per!r}"
            )
        if self.value is not None:
            if self.per is None:
                raise ValueError(f"budget {self.name!r}: value= needs per= (the tag it is of)")
            if not isinstance(self.value, str):
                raise ValueError(f"budget {self.name!r}: value must be a str, got {self.value!r}")
        mv = self.max_values
        if isinstance(mv, bool) or not isinstance(mv, int) or mv < 1:
            raise ValueError(f"budget {self.name!r}: max_values must be an int >= 1, got {mv!r}")

    @property
    def per_value(self) -> bool:
        """True when each distinct value of ``per`` has its own limit."""
        return self.per is not None and self.value is None


class _Period:
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


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget's state in its current period (for a per-tag budget: one value's)."""

    name: str
    window: str
    period: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    per: str | None = None
    value: str | None = None

    @property
    def remaining_usd(self) -> float:
        """What is left to spend (never negative)."""
        return max(0.0, self.limit_usd - self.spent_usd)

    @property
    def fraction(self) -> float:
        """Spent as a fraction of the limit (1.0 and above: exhausted)."""
        return self.spent_usd / self.limit_usd if self.limit_usd else float("inf")
