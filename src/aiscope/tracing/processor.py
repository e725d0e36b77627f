"""A batch span processor whose every wait is bounded, and which counts what it drops.

The SDK's ``BatchSpanProcessor`` exports on the caller's thread in ``force_flush``
(no timeout) and waits on the exporter in ``shutdown``; with a collector that
accepts connections and never answers, both can block the application for the
exporter's whole timeout and retries. Here the application thread only ever
appends to a bounded deque; one daemon thread exports; ``force_flush`` and
``shutdown`` wait for it at most their timeout, then return
(:class:`~aiscope.batching.BoundedBatcher`).
"""

from __future__ import annotations

import logging

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope.batching import BoundedBatcher

log = logging.getLogger("aiscope.tracing")

_SUCCESS = SpanExportResult.SUCCESS  # a module global: cheaper than the enum lookup per span


class BoundedBatchProcessor(BoundedBatcher[ReadableSpan], SpanProcessor):
    """Queue finished spans (at most ``max_queue_size``; more are dropped and
    counted) and export them in batches from a background thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 1.0,
    ) -> None:
        self.exporter = exporter
        super().__init__(
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_s=schedule_delay_s,
            thread_name="aiscope-span-export",
        )

    def on_start(self, span: object, parent_context: object = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a finished span, or drop and count it when the queue is full."""
        if span.context.trace_flags.sampled:
            self._put(span)

    def _export(self, batch: list[ReadableSpan]) -> bool:
        # Keep the exporter's own HTTP/gRPC calls out of any instrumentation.
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            return self.exporter.export(batch) is SpanExportResult.SUCCESS
        finally:
            detach(token)

    def _close(self) -> None:
        self.exporter.shutdown()


class LocalSpanProcessor(SpanProcessor):
    """Hands each finished span to a local exporter (console, in memory) at once.

    The SDK's ``SimpleSpanProcessor`` does the same, but marks the context to keep
    the exporter's network calls out of instrumentation and counts the span in the
    SDK's own metrics first: a local exporter makes no network calls, and this runs
    on every call of the application.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self._stopped = False
        #: spans the exporter failed to take (it returned FAILURE or raised)
        self.failed = 0
        self._failed_seen = 0  # ``failed`` as of the last force_flush

    def on_start(self, span: object, parent_context: object = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Export a finished, sampled span now (a failure is counted, an error logged)."""
        if self._stopped or not span.context.trace_flags.sampled:
            return
        try:
            if self.exporter.export((span,)) is not _SUCCESS:
                self.failed += 1
        except Exception:
            self.failed += 1
            log.exception("a local span exporter failed")

    def shutdown(self) -> None:
        """Stop exporting and shut the exporter down."""
        if not self._stopped:
            self._stopped = True
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held: every span was exported when it ended. False when an export
        failed since the last flush (those spans are lost; counted in ``failed``)."""
        try:  # an exporter of the user's may hold spans of its own
            flushed = self.exporter.force_flush(timeout_millis) is not False
        except Exception:
            flushed = False
            log.exception("a local span exporter failed to flush")
        failed = self.failed
        ok = failed == self._failed_seen
        self._failed_seen = failed
        return ok and flushed


__all__ = [
    "BoundedBatchProcessor",
    "LocalSpanProcessor",
]
