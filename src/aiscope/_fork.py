"""Re-initialise aiscope's locks, queues and worker threads in a forked child.

``os.fork()`` (gunicorn ``--preload``, Celery prefork, multiprocessing pools) copies
the process with only the forking thread: a worker thread is gone, and a lock that
another thread held at that moment stays held forever in the child. Objects that own
such state register here; one ``os.register_at_fork(after_in_child=...)`` hook gives
each live one a fresh start in the child. Objects are held weakly: registering never
keeps one alive.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("aiscope")

T = TypeVar("T")

_hooks: weakref.WeakKeyDictionary[Any, list[Callable[[Any], None]]] = weakref.WeakKeyDictionary()


def after_fork_in_child(obj: T, reinit: Callable[[T], None]) -> None:
    """Call ``reinit(obj)`` in every child forked while ``obj`` is alive.

    ``reinit`` must not capture ``obj`` (that would keep it alive): it gets it as its
    argument. Registered before a fork, it runs in the child before ``fork()`` returns.
    """
    _hooks.setdefault(obj, []).append(reinit)


def _reinit_lock(lock: Any) -> None:
    lock._at_fork_reinit()  # in place: every holder of a reference sees it released


def fork_safe_lock(lock: threading.Lock | None = None) -> threading.Lock:
    """A ``threading.Lock`` that a forked child finds released, whoever held it in
    the parent when it forked (the same object, so whatever shares it sees that).
    ``lock``: make that existing lock so (default: a new one).

    For long-lived objects a child goes on using (sinks, limiters, ledgers). Not for
    per-call objects: registering costs about 0.4 µs, and a call in flight on another
    thread at the fork is never touched by the child anyway.
    """
    if lock is None:
        lock = threading.Lock()
    if hasattr(lock, "_at_fork_reinit"):
        after_fork_in_child(lock, _reinit_lock)
    return lock


#: modules aiscope imports lazily, once a first import of them has begun
_lazy_modules: set[str] = set()


def lazy_import(name: str) -> Any:
    """``importlib.import_module(name)`` for a dependency aiscope loads on first use
    (so ``import aiscope`` stays light), made safe against a fork during that import:
    a fork waits for any such import in progress to finish, since a child forked
    mid-import finds the module's import lock held for ever."""
    module = sys.modules.get(name)
    if module is not None and not getattr(module.__spec__, "_initializing", False):
        return module
    # not yet imported, or still being imported by another thread: import_module
    # waits for that import (a bare sys.modules lookup would hand out the module
    # half-initialized)
    _lazy_modules.add(name)
    return importlib.import_module(name)


def _finish_lazy_imports() -> None:
    for name in list(_lazy_modules):
        # waits for another thread's import of it to end; a failing import is its
        # caller's to report
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _run_in_child() -> None:
    for obj, fns in list(_hooks.items()):
        for fn in fns:
            try:
                fn(obj)
            except Exception:  # a child must never die of its telemetry
                log.warning("could not re-initialise %r after fork", obj, exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_lazy_imports, after_in_child=_run_in_child)
