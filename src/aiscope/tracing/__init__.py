"""Tracing on the OpenTelemetry SDK: LLM call spans with the GenAI conventions,
custom spans, and exporters (console tree, OTLP, Langfuse, in-memory)."""

from aiscope.tracing.console import ConsoleExporter
from aiscope.tracing.langfuse import LangfuseExporter
from aiscope.tracing.memory import InMemoryExporter
from aiscope.tracing.otlp import otlp_exporter
from aiscope.tracing.processor import BoundedBatchProcessor
from aiscope.tracing.tracer import Tracer

__all__ = [
    "BoundedBatchProcessor",
    "ConsoleExporter",
    "InMemoryExporter",
    "LangfuseExporter",
    "Tracer",
    "otlp_exporter",
]
