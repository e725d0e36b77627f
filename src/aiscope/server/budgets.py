"""Budgets on the server: a limit on what the calls matching a scope (feature, team,
model) cost over a UTC period, spent read from the rollups (never from calls).

The period and the status are the SDK's (:func:`aiscope.cost.budget.period_bounds`,
:class:`~aiscope.cost.budget.BudgetStatus`). The server only hears of a call after
it happened, so it cannot refuse one: a ``block`` budget is reported ``exceeded``
(and as a critical alert) for the SDK's budgets to act on; ``alert`` ones as a warning.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from aiscope.cost.budget import Budget, BudgetStatus, Window, period_bounds
from aiscope.cost.ledger import Ledger, from_nanos
from aiscope.cost.tracker import CostTracker
from aiscope.server.db import write_lock
from aiscope.server.genai import text
from aiscope.server.queries import rollup_range
from aiscope.server.sums import as_int, big_sum, nano_sum
from aiscope.server.tables import budgets, rollups

Period = Literal["day", "month", "total"]
Mode = Literal["alert", "block"]
#: the server's period names -> the SDK's budget windows
WINDOWS: dict[str, Window] = {"day": "daily", "month": "monthly", "total": "total"}
SCOPE_KEYS = ("feature", "team", "model")
MODES = ("alert", "block")


@dataclass(frozen=True, slots=True)
class ServerBudget:
    """A stored budget: the SDK's :class:`Budget` plus what it watches and its mode."""

    budget: Budget
    period: Period
    scope: dict[str, str]
    mode: Mode


def parse_budget(data: Mapping[str, Any]) -> ServerBudget:
    """A budget from its JSON form; ``ValueError`` names the bad field."""
    unknown = sorted(k for k in data if k not in ("name", "limit_usd", "period", "scope", "mode"))
    if unknown:
        raise ValueError(f"budget: unknown field {unknown[0]!r}")
    for key in ("name", "limit_usd"):
        if key not in data:
            raise ValueError(f"budget: missing field {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not 0 < len(name) <= 128 or "\x00" in name:
        raise ValueError(f"name must be text of 1 to 128 characters, got {name!r}")
    period = data.get("period", "month")
    if period not in WINDOWS:
        raise ValueError(f"period must be one of {', '.join(WINDOWS)}, got {period!r}")
    mode = data.get("mode", "alert")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    scope = data.get("scope") or {}
    if not isinstance(scope, Mapping):
        raise ValueError(f"scope must be an object with {', '.join(SCOPE_KEYS)}, got {scope!r}")
    for key, value in scope.items():
        if key not in SCOPE_KEYS:
            raise ValueError(f"scope: unknown key {key!r} (known: {', '.join(SCOPE_KEYS)})")
        if not isinstance(value, str) or not 0 < len(value) <= 256 or "\x00" in value:
            raise ValueError(f"scope.{key} must be text of 1 to 256 characters, got {value!r}")
    try:
        budget = Budget(limit_usd=data["limit_usd"], window=WINDOWS[period], name=name)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return ServerBudget(budget, period, dict(scope), mode)


@contextmanager
def conflicts(what: str) -> Iterator[None]:
    """A unique-key clash (two writers replacing the same name at once) as a 4xx."""
    try:
        yield
    except IntegrityError:
        raise ValueError(f"{what} was changed by another request at the same time; retry") from None


def save(engine: Engine, project_id: str, b: ServerBudget) -> None:
    """Store ``b``, replacing the project's budget of the same name."""
    with write_lock(engine), conflicts(f"budget {b.budget.name!r}"), engine.begin() as conn:
        conn.execute(
            delete(budgets).where(
                budgets.c.project_id == project_id, budgets.c.name == b.budget.name
            )
        )
        conn.execute(
            insert(budgets),
            {
                "project_id": project_id,
                "name": text(b.budget.name, 128),
                "limit_usd": float(b.budget.limit_usd),
                "period": b.period,
                "scope": b.scope,
                "mode": b.mode,
                "created_ts": time.time(),
            },
        )


def remove(engine: Engine, project_id: str, name: str) -> bool:
    """Delete the project's budget ``name``; False when there is none."""
    with write_lock(engine), engine.begin() as conn:
        n = conn.execute(
            delete(budgets).where(budgets.c.project_id == project_id, budgets.c.name == name)
        ).rowcount
    return bool(n)


def load(engine: Engine, project_id: str) -> list[ServerBudget]:
    """The project's budgets, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(budgets).where(budgets.c.project_id == project_id).order_by(budgets.c.name)
        ).all()
    return [
        ServerBudget(
            Budget(limit_usd=r.limit_usd, window=WINDOWS[r.period], name=r.name),
            r.period,
            dict(r.scope),
            r.mode,
        )
        for r in rows
    ]


def spent(
    engine: Engine,
    project_id: str,
    scope: Mapping[str, str],
    start: float | None,
    end: float | None,
) -> tuple[float, int]:
    """Cost (USD, summed exactly in nano-dollars) and unpriced calls of the project's
    calls matching ``scope`` in [start, end), summed over rollups (whole minutes)."""
    q = rollup_range(
        select(nano_sum(rollups.c.cost_nanos), big_sum(rollups.c.unpriced_calls)),
        project_id,
        start,
        end,
    )
    for key, value in scope.items():
        q = q.where(rollups.c[key] == value)
    with engine.connect() as conn:
        cost, unpriced = conn.execute(q).one()
    return from_nanos(cost), as_int(unpriced)


def status(
    engine: Engine,
    project_id: str,
    b: ServerBudget,
    now: float | None = None,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """The budget's state in its current period (the ``GET /api/budgets`` item).

    ``recorded_usd`` is what the stored calls matching the scope cost (rollups). With a
    ``ledger`` (the one the applications' ``CostTracker`` budgets use), a budget that
    is unscoped or scoped by one key reads the SDK budget that :func:`ledger_budget`
    names from it: ``spent_usd`` is the ledger's live spend and ``reserved_usd`` what
    calls in flight hold now (``source`` says which; a ledger that cannot be reached is
    named in ``ledger_error`` and the rollups answer)."""
    t = time.time() if now is None else now
    label, start, _end = period_bounds(b.budget.window, t)
    cost, unpriced = spent(engine, project_id, b.scope, start if start > 0 else None, None)
    spent_usd, reserved, source, error = cost, None, "rollups", None
    sdk = ledger_budget(b) if ledger is not None else None
    if ledger is not None and sdk is not None:
        live = live_status(sdk, ledger)
        if live.spent_usd == live.spent_usd:  # NaN: the ledger is unreachable
            spent_usd, reserved, source = live.spent_usd, live.reserved_usd, "ledger"
        else:
            error = f"the ledger ({type(ledger).__name__}) is unreachable"
    s = BudgetStatus(b.budget.name, b.budget.window, label, b.budget.limit_usd, spent_usd, 0.0)
    return {
        "name": s.name,
        "limit_usd": s.limit_usd,
        "spent_usd": s.spent_usd,
        "remaining_usd": s.remaining_usd,
        "reserved_usd": reserved,
        "recorded_usd": cost,
        "source": source,
        "ledger_error": error,
        "period": b.period,
        "period_label": s.period,
        "period_start": start,
        "mode": b.mode,
        "scope": b.scope,
        "exceeded": s.spent_usd >= s.limit_usd,
        "unpriced_calls": unpriced,
    }


def ledger_budget(b: ServerBudget) -> Budget | None:
    """The SDK budget whose ledger key the applications charge for ``b``: its name and
    window, for the scope's one value when it has one. ``scope={"team": "search"}`` is
    ``Budget(..., per="team", value="search")``, whose key is also team search's share
    of a ``Budget(..., per="team")`` of the same name. None for a scope of several keys,
    which no one SDK budget holds (the rollups answer)."""
    if not b.scope:
        return b.budget
    if len(b.scope) > 1:
        return None
    ((per, value),) = b.scope.items()
    return replace(b.budget, per=per, value=value)


def live_status(budget: Budget, ledger: Ledger) -> BudgetStatus:
    """``budget``'s current period as the applications' ledger holds it: read by the
    SDK's own :class:`~aiscope.cost.CostTracker`, so the key is the one they charge
    (spend and reservations are NaN while the ledger is unreachable)."""
    (live,) = CostTracker(budgets=[budget], ledger=ledger).budget_statuses()
    return live
