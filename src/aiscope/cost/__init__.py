"""Pricing, cost tracking and budgets."""

from typing import TYPE_CHECKING

from aiscope._lazy import lazy_attributes
from aiscope.cost.budget import Budget, BudgetExceededError, BudgetStatus, BudgetUnavailableError
from aiscope.cost.ledger import Ledger, LedgerUnavailableError, MemoryLedger, SQLiteLedger
from aiscope.cost.pricing import Price, Pricing, UnknownModelWarning, default_pricing
from aiscope.cost.tracker import CostReport, CostTracker, ModelUsage, Reservation

if TYPE_CHECKING:
    from aiscope.cost.ledger_postgres import PostgresLedger
    from aiscope.cost.ledger_redis import AsyncRedisLedger, RedisLedger

# The shared ledgers load on first use (their modules bring asyncio and, when one is
# built, redis or psycopg): ``configure(metrics=...)`` must not pay for them.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "AsyncRedisLedger": "aiscope.cost.ledger_redis",
        "PostgresLedger": "aiscope.cost.ledger_postgres",
        "RedisLedger": "aiscope.cost.ledger_redis",
    },
)

__all__ = [
    "AsyncRedisLedger",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "BudgetUnavailableError",
    "CostReport",
    "CostTracker",
    "Ledger",
    "LedgerUnavailableError",
    "MemoryLedger",
    "ModelUsage",
    "PostgresLedger",
    "Price",
    "Pricing",
    "RedisLedger",
    "Reservation",
    "SQLiteLedger",
    "UnknownModelWarning",
    "default_pricing",
]
