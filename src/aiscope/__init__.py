"""aiscope: observability and cost control for applications that call LLMs.

Every call becomes one :class:`CallRecord`, which flows through the sinks of the
current :class:`Scope`: cost (with budgets that block), Prometheus metrics,
traces, logs and feedback.

Importing the package is cheap: each public name is loaded from its module on first
use (PEP 562), so an application that only wants metrics never loads the CLI, the
server, the HTTP client or the pricing tables.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# ``aiscope.instrument`` is a subpackage and the function users call as
# ``aiscope.instrument()``: importing the subpackage would rebind the name to the
# module, so the function is bound here, after it (the subpackage itself is light)
from aiscope.instrument import instrument

if TYPE_CHECKING:
    from aiscope.alerts import AlertEvaluator as AlertEvaluator
    from aiscope.alerts import AlertRule as AlertRule
    from aiscope.capture import LLMCall as LLMCall
    from aiscope.capture import estimate_tokens as estimate_tokens
    from aiscope.capture import llm_call as llm_call
    from aiscope.capture import record_call as record_call
    from aiscope.client import AiClient as AiClient
    from aiscope.context import current_operations as current_operations
    from aiscope.context import current_tags as current_tags
    from aiscope.context import tags as tags
    from aiscope.cost import AsyncRedisLedger as AsyncRedisLedger
    from aiscope.cost import Budget as Budget
    from aiscope.cost import BudgetExceededError as BudgetExceededError
    from aiscope.cost import BudgetStatus as BudgetStatus
    from aiscope.cost import BudgetUnavailableError as BudgetUnavailableError
    from aiscope.cost import CostReport as CostReport
    from aiscope.cost import CostTracker as CostTracker
    from aiscope.cost import LedgerUnavailableError as LedgerUnavailableError
    from aiscope.cost import MemoryLedger as MemoryLedger
    from aiscope.cost import PostgresLedger as PostgresLedger
    from aiscope.cost import Pricing as Pricing
    from aiscope.cost import RedisLedger as RedisLedger
    from aiscope.cost import SQLiteLedger as SQLiteLedger
    from aiscope.cost import UnknownModelWarning as UnknownModelWarning
    from aiscope.feedback import Feedback as Feedback
    from aiscope.feedback import FeedbackCollector as FeedbackCollector
    from aiscope.health import CheckResult as CheckResult
    from aiscope.health import HealthChecker as HealthChecker
    from aiscope.health import HealthStatus as HealthStatus
    from aiscope.instrument import is_instrumented as is_instrumented
    from aiscope.instrument import observe as observe
    from aiscope.instrument import uninstrument as uninstrument
    from aiscope.instrument import wrap as wrap
    from aiscope.labels import LabelLimiter as LabelLimiter
    from aiscope.logs import TRACE as TRACE
    from aiscope.logs import JsonFormatter as JsonFormatter
    from aiscope.logs import configure_logging as configure_logging
    from aiscope.metrics import LatencyPercentiles as LatencyPercentiles
    from aiscope.metrics import MetricsCollector as MetricsCollector
    from aiscope.record import CallRecord as CallRecord
    from aiscope.record import CallStats as CallStats
    from aiscope.record import Usage as Usage
    from aiscope.scope import PendingCall as PendingCall
    from aiscope.scope import Scope as Scope
    from aiscope.scope import configure as configure
    from aiscope.scope import current_scope as current_scope
    from aiscope.scope import use_scope as use_scope
    from aiscope.server_exporter import ServerExporter as ServerExporter
    from aiscope.sink import SinkBase as SinkBase
    from aiscope.tracing import ConsoleExporter as ConsoleExporter
    from aiscope.tracing import InMemoryExporter as InMemoryExporter
    from aiscope.tracing import LangfuseExporter as LangfuseExporter
    from aiscope.tracing import Tracer as Tracer

from aiscope._version import __version__

#: public name -> the module that defines it
_LAZY: dict[str, str] = {
    "AsyncRedisLedger": "aiscope.cost",
    "BudgetUnavailableError": "aiscope.cost",
    "LedgerUnavailableError": "aiscope.cost",
    "PostgresLedger": "aiscope.cost",
    "RedisLedger": "aiscope.cost",
    "AiClient": "aiscope.client",
    "AlertEvaluator": "aiscope.alerts",
    "AlertRule": "aiscope.alerts",
    "Budget": "aiscope.cost",
    "BudgetExceededError": "aiscope.cost",
    "BudgetStatus": "aiscope.cost",
    "CallRecord": "aiscope.record",
    "CallStats": "aiscope.record",
    "CheckResult": "aiscope.health",
    "ConsoleExporter": "aiscope.tracing",
    "CostReport": "aiscope.cost",
    "CostTracker": "aiscope.cost",
    "Feedback": "aiscope.feedback",
    "FeedbackCollector": "aiscope.feedback",
    "HealthChecker": "aiscope.health",
    "HealthStatus": "aiscope.health",
    "InMemoryExporter": "aiscope.tracing",
    "JsonFormatter": "aiscope.logs",
    "LLMCall": "aiscope.capture",
    "LabelLimiter": "aiscope.labels",
    "LangfuseExporter": "aiscope.tracing",
    "LatencyPercentiles": "aiscope.metrics",
    "MemoryLedger": "aiscope.cost",
    "MetricsCollector": "aiscope.metrics",
    "PendingCall": "aiscope.scope",
    "Pricing": "aiscope.cost",
    "SQLiteLedger": "aiscope.cost",
    "Scope": "aiscope.scope",
    "SinkBase": "aiscope.sink",
    "ServerExporter": "aiscope.server_exporter",
    "TRACE": "aiscope.logs",
    "Tracer": "aiscope.tracing",
    "UnknownModelWarning": "aiscope.cost",
    "Usage": "aiscope.record",
    "configure": "aiscope.scope",
    "configure_logging": "aiscope.logs",
    "current_operations": "aiscope.context",
    "current_scope": "aiscope.scope",
    "current_tags": "aiscope.context",
    "estimate_tokens": "aiscope.capture",
    "is_instrumented": "aiscope.instrument",
    "llm_call": "aiscope.capture",
    "observe": "aiscope.instrument",
    "record_call": "aiscope.capture",
    "tags": "aiscope.context",
    "uninstrument": "aiscope.instrument",
    "use_scope": "aiscope.scope",
    "wrap": "aiscope.instrument",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (then it is a plain attribute)."""
    module = _LAZY.get(name)
    if module is None:
        # ``import aiscope; aiscope.tracing.Tracer`` worked when the package imported
        # its subpackages eagerly: a subpackage is still an attribute, loaded on use
        if importlib.util.find_spec(f"aiscope.{name}") is None:
            raise AttributeError(f"module 'aiscope' has no attribute {name!r}")
        return importlib.import_module(f"aiscope.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "TRACE",
    "AiClient",
    "AlertEvaluator",
    "AlertRule",
    "AsyncRedisLedger",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "BudgetUnavailableError",
    "CallRecord",
    "CallStats",
    "CheckResult",
    "ConsoleExporter",
    "CostReport",
    "CostTracker",
    "Feedback",
    "FeedbackCollector",
    "HealthChecker",
    "HealthStatus",
    "InMemoryExporter",
    "JsonFormatter",
    "LLMCall",
    "LabelLimiter",
    "LangfuseExporter",
    "LatencyPercentiles",
    "LedgerUnavailableError",
    "MemoryLedger",
    "MetricsCollector",
    "PendingCall",
    "PostgresLedger",
    "Pricing",
    "RedisLedger",
    "SQLiteLedger",
    "Scope",
    "ServerExporter",
    "SinkBase",
    "Tracer",
    "UnknownModelWarning",
    "Usage",
    "__version__",
    "configure",
    "configure_logging",
    "current_operations",
    "current_scope",
    "current_tags",
    "estimate_tokens",
    "instrument",
    "is_instrumented",
    "llm_call",
    "observe",
    "record_call",
    "tags",
    "uninstrument",
    "use_scope",
    "wrap",
]
