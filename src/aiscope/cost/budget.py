"""Budgets: a limit over a UTC window, kept in a ledger, enforced before the call."""

from __future__ import annotations

from dataclasses import dataclass

from aiscope.cost._nanos import OnLedgerDown, check_on_ledger_down
from aiscope.cost._periods import WINDOWS, Window, check_window, period_bounds

__all__ = [
    "CALL_FIELDS",
    "WINDOWS",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "BudgetUnavailableError",
    "Window",
    "period_bounds",
]


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


#: what a budget can be kept per, besides any tag name: the call's model and provider
CALL_FIELDS: tuple[str, ...] = ("model", "provider")


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
