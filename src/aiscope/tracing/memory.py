"""InMemoryExporter: finished spans kept in memory (bounded), for tests and notebooks."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope._fork import fork_safe_lock


class InMemoryExporter(SpanExporter):
    """Keeps the last ``max_spans`` finished spans; :meth:`spans` returns them."""

    def __init__(self, max_spans: int = 10000) -> None:
        if isinstance(max_spans, bool) or not isinstance(max_spans, int) or max_spans < 1:
            raise ValueError(f"max_spans must be an int >= 1, got {max_spans!r}")
        self._spans: collections.deque[ReadableSpan] = collections.deque(maxlen=max_spans)
        self._lock = fork_safe_lock()
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Keep ``spans``."""
        if self._stopped:
            return SpanExportResult.FAILURE
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The spans kept (only those called ``name`` when given), oldest first."""
        with self._lock:
            found = list(self._spans)
        return found if name is None else [s for s in found if s.name == name]

    def clear(self) -> None:
        """Forget every span."""
        with self._lock:
            self._spans.clear()

    def shutdown(self) -> None:
        """Refuse further spans."""
        self._stopped = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush."""
        return True
