"""Pricing, cost tracking and budgets."""

from aiscope.cost.budget import Budget, BudgetExceededError, BudgetStatus, BudgetUnavailableError
from aiscope.cost.ledger import Ledger, LedgerUnavailableError, MemoryLedger, SQLiteLedger

# these import their drivers (redis, psycopg) only when a ledger is constructed
from aiscope.cost.ledger_postgres import PostgresLedger
from aiscope.cost.ledger_redis import AsyncRedisLedger, RedisLedger
from aiscope.cost.pricing import Price, Pricing, UnknownModelWarning, default_pricing
from aiscope.cost.tracker import CostReport, CostTracker, ModelUsage, Reservation

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
