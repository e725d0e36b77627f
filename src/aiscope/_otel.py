"""Making an OpenTelemetry span current in a block, for the Scope's call lifecycle and
the Tracer (imported only where a span exists: ``import aiscope`` loads no OTel)."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace


class ActiveSpan:
    """Makes a span current in a block without ending it (``trace.use_span`` is a
    generator-based context manager; this runs several times per traced call)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Any) -> None:
        self._span = span

    def __enter__(self) -> Any:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)
