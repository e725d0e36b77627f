"""A cap on calls in flight, shared by threads and any number of event loops.

One ``threading.Lock`` guards a counter and a FIFO queue of waiters; it is held for
a few operations only, never while waiting. A thread waits on its own
``threading.Event``; a coroutine waits on a future of its own loop. Releasing a slot
with waiters queued *hands it over* to the first one (the count does not drop), then
wakes it: ``Event.set()`` for a thread, ``loop.call_soon_threadsafe`` for a
coroutine, so a slot released in one thread or loop wakes a waiter in another.
Waiters are served in arrival order, threads and coroutines alike, and a newcomer
cannot overtake them.

A waiter that gives up - cancelled, timed out, interrupted - leaves the queue under
the lock; if a slot was handed to it in the meantime it passes the slot on, so no
slot leaks. A waiter whose event loop was closed before it could be woken is skipped
the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from types import TracebackType

from aiscope._fork import after_fork_in_child, fork_safe_lock
from aiscope.resilience.errors import InflightLimitError

__all__ = ["AsyncInflightSlot", "InflightLimiter", "InflightSlot"]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    """One queued thread (``event``) or coroutine (``loop`` and ``future``)."""

    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.granted = False  # a slot was handed over to this waiter

    def wake(self) -> bool:
        """Wake the waiter; False if it cannot be woken (its loop is closed)."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None and self.future is not None
        try:
            self.loop.call_soon_threadsafe(_wake, self.future)
        except RuntimeError:  # the loop is closed: nobody will ever take the slot
            return False
        return True


class InflightLimiter:
    """At most ``max_inflight`` calls at a time (None: no limit, calls are only counted).

    Use ``with limiter.slot():`` in threads and ``async with limiter.aslot():`` in
    coroutines; both wait for a free slot (FIFO) and raise :class:`InflightLimitError`
    if ``timeout`` seconds pass first. ``acquire()`` / ``acquire_async()`` and
    ``release()`` are the same without a context manager.
    """

    def __init__(self, max_inflight: int | None = None) -> None:
        if max_inflight is not None and (
            isinstance(max_inflight, bool) or not isinstance(max_inflight, int) or max_inflight < 1
        ):
            raise ValueError(f"max_inflight must be an int >= 1 or None, got {max_inflight!r}")
        self.max_inflight = max_inflight
        self._lock = fork_safe_lock()
        self._current = 0
        self._waiters: OrderedDict[_Waiter, None] = OrderedDict()
        #: slots a forked child inherited: their releases (by the forking thread, the
        #: only one the child has) are taken without complaint
        self._inherited = 0
        after_fork_in_child(self, InflightLimiter._forget_parent_calls)

    def _forget_parent_calls(self) -> None:
        # In a forked child the parent's calls in flight (and its waiting threads) do
        # not exist: counted, they would hold the child's slots for ever.
        self._inherited += self._current
        self._current = 0
        self._waiters = OrderedDict()

    @property
    def current(self) -> int:
        """Slots taken now (including ones handed to waiters that have not resumed yet)."""
        return self._current

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._waiters)

    def _try_take(self) -> bool:
        """Under the lock: take a slot if one is free and nobody is queued before us."""
        limit = self.max_inflight
        if limit is None or (self._current < limit and not self._waiters):
            self._current += 1
            return True
        return False

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting."""
        with self._lock:
            return self._try_take()

    def acquire(self, timeout: float | None = None) -> None:
        """Take a slot, blocking this thread until one is free (at most ``timeout`` s)."""
        with self._lock:
            if self._try_take():
                return
            if timeout is not None and timeout <= 0:
                raise InflightLimitError(self.max_inflight, timeout)
            waiter = _Waiter(event=threading.Event())
            self._waiters[waiter] = None
        assert waiter.event is not None
        try:
            woken = waiter.event.wait(timeout)
        except BaseException:
            self._abandon(waiter)
            raise
        if not woken and not self._abandon(waiter, keep_granted=True):
            raise InflightLimitError(self.max_inflight, timeout)

    async def acquire_async(self, timeout: float | None = None) -> None:
        """Take a slot, awaiting one without blocking the event loop (at most ``timeout`` s).

        Cancelling the waiting coroutine never leaks a slot.
        """
        with self._lock:
            if self._try_take():
                return
            if timeout is not None and timeout <= 0:
                raise InflightLimitError(self.max_inflight, timeout)
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop=loop, future=loop.create_future())
            self._waiters[waiter] = None
        assert waiter.future is not None
        try:
            if timeout is None:
                await waiter.future
            else:
                async with asyncio.timeout(timeout):
                    await waiter.future
        except TimeoutError:
            if not self._abandon(waiter, keep_granted=True):
                raise InflightLimitError(self.max_inflight, timeout) from None
        except BaseException:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter, keep_granted: bool = False) -> bool:
        """A waiter gives up: leave the queue, or deal with a slot handed over meanwhile.

        Returns True if the waiter keeps such a slot (only with ``keep_granted``).
        """
        with self._lock:
            granted = waiter.granted
            if not granted:
                self._waiters.pop(waiter, None)
        if granted and not keep_granted:
            self.release()
        return granted and keep_granted

    def release(self) -> None:
        """Give a slot back (to the first waiter, if any)."""
        while True:
            with self._lock:
                if not self._waiters:
                    if self._current <= 0 and self._inherited > 0:
                        self._inherited -= 1  # a slot taken before the fork
                        return
                    if self._current <= 0:
                        raise RuntimeError("InflightLimiter.release() without a matching acquire")
                    self._current -= 1
                    return
                waiter, _ = self._waiters.popitem(last=False)
                waiter.granted = True  # the slot passes on; the count stays
            if waiter.wake():
                return
            # The waiter's loop is closed and will never run it: take the slot back
            # and release it on the waiter's behalf.
            with self._lock:
                waiter.granted = False

    def slot(self, timeout: float | None = None) -> InflightSlot:
        """``with limiter.slot(timeout):`` holds a slot for the block (threads)."""
        return InflightSlot(self, timeout)

    def aslot(self, timeout: float | None = None) -> AsyncInflightSlot:
        """``async with limiter.aslot(timeout):`` holds a slot for the block (asyncio)."""
        return AsyncInflightSlot(self, timeout)

    def __repr__(self) -> str:
        return f"<InflightLimiter {self._current}/{self.max_inflight} waiting={len(self._waiters)}>"


class InflightSlot:
    """Synchronous context manager holding one slot of an :class:`InflightLimiter`."""

    __slots__ = ("_limiter", "_timeout")

    def __init__(self, limiter: InflightLimiter, timeout: float | None) -> None:
        self._limiter = limiter
        self._timeout = timeout

    def __enter__(self) -> None:
        self._limiter.acquire(self._timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release()


class AsyncInflightSlot:
    """Asynchronous context manager holding one slot of an :class:`InflightLimiter`."""

    __slots__ = ("_limiter", "_timeout")

    def __init__(self, limiter: InflightLimiter, timeout: float | None) -> None:
        self._limiter = limiter
        self._timeout = timeout

    async def __aenter__(self) -> None:
        await self._limiter.acquire_async(self._timeout)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release()
