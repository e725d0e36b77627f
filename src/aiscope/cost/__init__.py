"""Pricing, cost tracking and budgets."""

from aiscope.cost.budget import Budget, BudgetExceededError, BudgetStatus
from aiscope.cost.ledger import Ledger, MemoryLedger, SQLiteLedger
from aiscope.cost.pricing import Price, Pricing, UnknownModelWarning, default_pricing
from aiscope.cost.tracker import CostReport, CostTracker, ModelUsage, Reservation

__all__ = [
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "CostReport",
    "CostTracker",
    "Ledger",
    "MemoryLedger",
    "ModelUsage",
    "Price",
    "Pricing",
    "Reservation",
    "SQLiteLedger",
    "UnknownModelWarning",
    "default_pricing",
]
