"""A batch span processor whose every wait is bounded, and which counts what it drops.

The SDK's ``BatchSpanProcessor`` exports on the caller's thread in ``force_flush``
(no timeout) and waits on the exporter in ``shutdown``; with a collector that
accepts connections and never answers, both can block the application for the
exporter's whole timeout and retries. Here the application thread only ever
appends to a bounded deque; one daemon thread exports; ``force_flush`` and
``shutdown`` wait for it at most their timeout, then return.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("aiscope.tracing")


class BoundedBatchProcessor(SpanProcessor):
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
        for name, value in (
            ("max_queue_size", max_queue_size),
            ("max_export_batch_size", max_export_batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if max_export_batch_size > max_queue_size:
            raise ValueError(
                f"max_export_batch_size ({max_export_batch_size}) cannot exceed "
                f"max_queue_size ({max_queue_size})"
            )
        if isinstance(schedule_delay_s, bool) or not isinstance(schedule_delay_s, int | float):
            raise TypeError(f"schedule_delay_s must be a number, got {schedule_delay_s!r}")
        if schedule_delay_s <= 0:
            raise ValueError(f"schedule_delay_s must be > 0, got {schedule_delay_s!r}")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay_s = float(schedule_delay_s)
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cond = threading.Condition(self._lock)
        #: spans dropped because the queue was full or the processor shut down
        self.dropped = 0
        #: spans handed to the exporter, and those it reported failed (or raised on)
        self.exported = 0
        self.failed = 0
        self._flush_requested = 0
        self._flush_done = 0
        self._shutdown = False
        self._thread = threading.Thread(
            target=self._worker, name="aiscope-span-export", daemon=True
        )
        self._thread.start()

    # -- application side: never blocks on the exporter ---------------------------------
    def on_start(self, span: object, parent_context: object = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a finished span, or drop and count it when the queue is full."""
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            if self._shutdown or len(self._queue) >= self.max_queue_size:
                self.dropped += 1
                return
            self._queue.append(span)
            full = len(self._queue) >= self.max_export_batch_size
        if full:
            self._wake.set()

    @property
    def queued(self) -> int:
        """Spans waiting for export now."""
        return len(self._queue)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Ask the worker to export everything queued now; wait at most the timeout.
        True when it finished in time."""
        deadline = time.monotonic() + max(0.0, timeout_millis / 1000)
        with self._cond:
            if self._shutdown:
                return not self._thread.is_alive()
            self._flush_requested += 1
            ticket = self._flush_requested
        self._wake.set()
        with self._cond:
            while self._flush_done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Stop taking spans, give the worker up to the timeout to export what is
        queued, then shut the exporter down (also bounded); always returns in time."""
        deadline = time.monotonic() + max(0.0, timeout_millis / 1000)
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        # The exporter's own shutdown may wait on a stuck request: give it the rest of
        # the time on a side thread and leave it behind if it overruns.
        closer = threading.Thread(
            target=self._shutdown_exporter, name="aiscope-span-exporter-close", daemon=True
        )
        closer.start()
        closer.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
            self.dropped += left

    def _shutdown_exporter(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            log.warning("span exporter failed to shut down", exc_info=True)

    # -- worker side ----------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            self._wake.wait(self.schedule_delay_s)
            self._wake.clear()
            with self._lock:
                stopping = self._shutdown
                ticket = self._flush_requested
            self._export_all()
            with self._cond:
                self._flush_done = max(self._flush_done, ticket)
                self._cond.notify_all()
            if stopping:
                return

    def _export_all(self) -> None:
        while True:
            with self._lock:
                n = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
            if not batch:
                return
            # Keep the exporter's own HTTP/gRPC calls out of any instrumentation.
            token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                result = self.exporter.export(batch)
                ok = result is SpanExportResult.SUCCESS
            except Exception:
                ok = False
                log.warning("span exporter raised; %d spans lost", len(batch), exc_info=True)
            finally:
                detach(token)
            with self._lock:
                self.exported += len(batch)
                if not ok:
                    self.failed += len(batch)
