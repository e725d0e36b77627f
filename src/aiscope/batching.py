"""A bounded queue drained in batches by one background thread, every wait bounded.

The application thread only ever appends to a bounded deque (dropping and counting
what does not fit); one daemon thread hands batches to :meth:`BoundedBatcher._export`;
``force_flush`` and ``shutdown`` wait for it at most their timeout, then return. In a
child made by ``os.fork()`` it starts afresh (new lock, empty queue, its own worker
thread, counters at zero): what the parent had queued is the parent's to export. The
span processor (:class:`~aiscope.tracing.BoundedBatchProcessor`) and the
:class:`~aiscope.ServerExporter` are both this, with their own ``_export``.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
import weakref
from typing import Any, Generic, TypeVar

from aiscope._fork import after_fork_in_child

T = TypeVar("T")
log = logging.getLogger("aiscope")


class BoundedBatcher(Generic[T]):
    """Queue items (at most ``max_queue_size``; more are dropped and counted) and export
    them in batches of at most ``max_export_batch_size`` from a background thread,
    at least every ``schedule_delay_s`` seconds."""

    def __init__(
        self,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 1.0,
        thread_name: str = "aiscope-export",
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
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay_s = float(schedule_delay_s)
        self._thread_name = thread_name
        self._shutdown = False
        self._start()
        after_fork_in_child(self, BoundedBatcher._restart_in_child)

    def _start(self) -> None:
        """Fresh state and a worker thread (at creation, and in a forked child)."""
        self._queue: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cond = threading.Condition(self._lock)
        #: wakes a worker waiting between retries when the batcher shuts down
        self._stopping = threading.Event()
        #: items dropped because the queue was full or the batcher shut down
        self.dropped = 0
        #: items handed to the exporter, and those it reported failed (or raised on)
        self.exported = 0
        self.failed = 0
        self._failed_seen = 0  # ``failed`` as of the last flush that reported it
        self._flush_requested = 0
        self._flush_done = 0
        self._thread = threading.Thread(target=self._worker, name=self._thread_name, daemon=True)
        if not self._shutdown:
            self._thread.start()

    def _restart_in_child(self) -> None:
        # Only the forking thread survives a fork: the worker is gone and the lock may
        # have been copied held by a thread that no longer exists. The parent's queued
        # items stay the parent's (exporting them here too would send them twice).
        self._after_fork()
        self._start()
        # A multiprocessing child ends with os._exit(), which skips atexit: what it
        # queued last would be lost. Its own exit hooks run instead (registered once
        # multiprocessing has reset them for the child).
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None and not self._shutdown:
            mp_util.register_after_fork(self, _flush_at_process_exit)

    # -- to override --------------------------------------------------------------------
    def _export(self, batch: list[T]) -> bool:
        """Send one batch; True when it was accepted. Runs on the worker thread only."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release the exporter's resources (called once, bounded by ``shutdown``)."""

    def _after_fork(self) -> None:
        """In a forked child, before the worker restarts: drop what the parent's
        connections hold (a connection shared with the parent must not be reused)."""

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` on the worker thread (a retry's backoff); False at once
        when the batcher is shutting down."""
        return not self._stopping.wait(seconds)

    # -- application side: never blocks on the exporter ---------------------------------
    def _put(self, item: T) -> bool:
        """Queue ``item``, or drop and count it when the queue is full; True if queued."""
        with self._lock:
            if self._shutdown or len(self._queue) >= self.max_queue_size:
                self.dropped += 1
                return False
            self._queue.append(item)
            full = len(self._queue) >= self.max_export_batch_size
        if full:
            self._wake.set()
        return True

    @property
    def queued(self) -> int:
        """Items waiting for export now."""
        return len(self._queue)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Ask the worker to export everything queued now; wait at most the timeout.

        True only when it finished in time *and* every batch exported since the
        previous flush was accepted; False when it ran out of time or a batch failed
        (those items are lost, and counted in ``failed``).
        """
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
            # Items lost since the last flush (even to a background export before this
            # one was asked for) mean the caller's data did not all arrive.
            ok = self.failed == self._failed_seen
            self._failed_seen = self.failed
            return ok

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Stop taking items, give the worker up to the timeout to export what is
        queued, then close the exporter (also bounded); always returns in time."""
        deadline = time.monotonic() + max(0.0, timeout_millis / 1000)
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        # Closing may wait on a stuck request: give it the rest of the time on a side
        # thread and leave it behind if it overruns.
        closer = threading.Thread(target=self._safe_close, name="aiscope-close", daemon=True)
        closer.start()
        closer.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
            self.dropped += left

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception:
            log.warning("exporter failed to shut down", exc_info=True)

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
            try:
                ok = self._export(batch)
            except Exception:
                ok = False
                log.warning("exporter raised; %d items lost", len(batch), exc_info=True)
            with self._lock:
                self.exported += len(batch)
                if not ok:
                    self.failed += len(batch)


def _flush_at_process_exit(batcher: BoundedBatcher[Any]) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(
        None, _shutdown_ref, args=(weakref.ref(batcher),), exitpriority=100
    )


def _shutdown_ref(ref: weakref.ref[BoundedBatcher[Any]]) -> None:
    batcher = ref()
    if batcher is not None:
        batcher.shutdown(2000)  # as at an ordinary exit: at most 2 s


__all__ = [
    "BoundedBatcher",
]
