"""The server's background work, started and stopped by the app's one lifespan.

Each job runs on its own daemon thread every so many seconds: rollup compaction (and
retention) and alert evaluation. A job's failure is logged and retried at its next
turn; ingest never waits for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from aiscope.server import rollup
from aiscope.server.settings import Settings

log = logging.getLogger("aiscope.server")


def repeat(job: Callable[[], object], every_s: float, stop: threading.Event, what: str) -> None:
    """Run ``job`` every ``every_s`` seconds until ``stop`` is set; a failure is logged
    (naming ``what``) and the job runs again at its next turn."""
    while not stop.wait(every_s):
        try:
            job()
        except Exception:
            log.exception("%s failed", what)


def maintain(settings: Settings) -> None:
    """One maintenance step: compact the rollups, delete raw rows past retention."""
    rollup.compact(settings.engine)
    if settings.retention_days is not None:
        rollup.prune(settings.engine, time.time() - settings.retention_days * 86400)


@dataclass(frozen=True, slots=True)
class Job:
    """A named piece of background work and how often it runs."""

    name: str
    every_s: float
    run: Callable[[], object]


class Background:
    """The jobs of one app, each on its own thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, jobs: list[Job], on_stop: list[Callable[[], object]] | None = None) -> None:
        self.jobs = jobs
        #: run at stop, after the jobs' threads ended (or timed out), in order
        self.on_stop = list(on_stop or [])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every job's thread."""
        self._stop.clear()
        for job in self.jobs:
            thread = threading.Thread(
                target=repeat,
                args=(job.run, job.every_s, self._stop, job.name),
                name=f"aiscope-{job.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the jobs (waiting at most ``timeout_s`` in all), then run ``on_stop``."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        for step in self.on_stop:
            try:
                step()
            except Exception:
                log.exception("stopping the server's background work failed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan: its :class:`Background` runs while the app serves."""
    background: Background = app.state.background
    background.start()
    try:
        yield
    finally:
        background.stop()
