"""Group commit: one thread writes the batches of concurrent ingest requests together.

A request decodes its body into a :class:`~aiscope.server.ingest.Batch` on its own
worker thread, hands it to the :class:`GroupWriter` and waits. The writer thread
takes every batch that is waiting (up to ``max_spans`` spans), writes them in one
transaction and commits, and only then completes each request's future, so the HTTP
answer still follows the commit that holds its rows: an acknowledged span is on disk.
One commit (one ``fsync`` on SQLite) then serves many requests, and requests no
longer queue on SQLite's single-writer lock one by one.

There is no timer: while one group commits, the next requests gather, so the groups
grow with the load and a lone request is written at once.

On PostgreSQL two writer threads commit groups side by side (each on its own
connection): while one waits on the database, the other copies its rows, so the
server and the database work at once. Their rows move in key order, so two groups
holding the same spans wait on each other without deadlocking. SQLite has one
writer: one thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from aiscope.server.ingest import Batch, write_many

log = logging.getLogger("aiscope.server")

#: spans per transaction at most (about 16 requests of 512 spans)
MAX_GROUP_SPANS = 8192
#: writer threads on PostgreSQL (SQLite: one)
POSTGRES_WRITERS = 2


@dataclass(slots=True)
class _Pending:
    batch: Batch
    done: Future[None]

    @property
    def size(self) -> int:
        return len(self.batch.spans) + len(self.batch.calls)


class GroupWriter:
    """Writes submitted batches on background threads, several per transaction.

    ``writers`` threads (default: :data:`POSTGRES_WRITERS` on PostgreSQL, one on
    SQLite) start with the first :meth:`submit` and run until :meth:`close`.
    A group that fails is retried batch by batch, so one request's error (or a
    lost connection) fails that request alone.
    """

    def __init__(
        self, engine: Engine, *, max_spans: int = MAX_GROUP_SPANS, writers: int | None = None
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be >= 1, got {max_spans!r}")
        if writers is None:
            writers = POSTGRES_WRITERS if engine.dialect.name == "postgresql" else 1
        if writers < 1:
            raise ValueError(f"writers must be >= 1, got {writers!r}")
        self.writers = writers
        self.engine = engine
        self.max_spans = max_spans
        #: transactions committed, and batches written in them (for tests and stats)
        self.commits = 0
        self.batches = 0
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, batch: Batch) -> Future[None]:
        """Queue ``batch``; the future completes once its rows are committed
        (or carries the exception that kept them from being written)."""
        done: Future[None] = Future()
        if not batch.spans and not batch.calls:
            done.set_result(None)
            return done
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer is closed")
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"aiscope-writer-{i}", daemon=True)
                    for i in range(self.writers)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.put(_Pending(batch, done))
        return done

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the threads (waits up to ``timeout`` s)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
            for _ in threads:  # one stop mark for each thread
                self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = first.size
            while size < self.max_spans:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
                size += item.size
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        try:
            write_many(self.engine, [p.batch for p in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].done.set_exception(exc)
                return
            log.warning(
                "a group of %d batches failed (%s); writing them one by one", len(group), exc
            )
            for p in group:
                self._commit([p])
            return
        with self._lock:  # two writer threads count here
            self.commits += 1
            self.batches += len(group)
        for p in group:
            p.done.set_result(None)


async def commit(writer: GroupWriter, batch: Batch) -> None:
    """Wait for the group commit that holds ``batch`` (what a request answers after).

    A store that cannot write (unreachable, or locked past its timeout) is a 503 with
    ``Retry-After``: exporters retry those, where they would drop the spans on a 500.
    """
    try:
        await asyncio.wrap_future(writer.submit(batch))
    except OperationalError as exc:
        log.warning("ingest: the store could not write a batch: %s", exc)
        raise HTTPException(
            503, "the store cannot write now; retry", headers={"Retry-After": "1"}
        ) from None
