"""aiscope: observability and cost control for applications that call LLMs.

Every call becomes one :class:`CallRecord`, which flows through the sinks of the
current :class:`Scope`: cost (with budgets that block), Prometheus metrics,
traces, logs and feedback.
"""

from aiscope.alerts import AlertEvaluator, AlertRule
from aiscope.capture import LLMCall, estimate_tokens, llm_call, record_call
from aiscope.client import AiClient
from aiscope.context import current_operations, current_tags, tags
from aiscope.cost import (
    Budget,
    BudgetExceededError,
    BudgetStatus,
    CostReport,
    CostTracker,
    MemoryLedger,
    Pricing,
    SQLiteLedger,
    UnknownModelWarning,
)
from aiscope.feedback import Feedback, FeedbackCollector
from aiscope.health import CheckResult, HealthChecker, HealthStatus
from aiscope.instrument import instrument, is_instrumented, observe, uninstrument, wrap
from aiscope.labels import LabelLimiter
from aiscope.logs import TRACE, JsonFormatter, configure_logging
from aiscope.metrics import LatencyPercentiles, MetricsCollector
from aiscope.record import CallRecord, CallStats, Usage
from aiscope.scope import PendingCall, Scope, configure, current_scope, use_scope
from aiscope.server_exporter import ServerExporter
from aiscope.tracing import ConsoleExporter, InMemoryExporter, LangfuseExporter, Tracer

__version__ = "0.1.0"

__all__ = [
    "TRACE",
    "AiClient",
    "AlertEvaluator",
    "AlertRule",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
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
    "MemoryLedger",
    "MetricsCollector",
    "PendingCall",
    "Pricing",
    "SQLiteLedger",
    "Scope",
    "ServerExporter",
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
