"""Observing an SDK's stream without changing it.

The openai and anthropic SDKs' ``Stream``/``AsyncStream`` (and anthropic's
``MessageStream``, which reads a raw ``Stream``) pull every item through the
instance attribute ``_iterator`` and release the connection in ``close()``. So
instead of handing the application a proxy, aiscope swaps that one attribute for
a generator that watches the items, and shadows ``close`` on the instance: the
application keeps the SDK's own object (same type, ``with``, ``.response``,
``text_stream``, ``get_final_message()``...). The record is emitted exactly once,
by whichever comes first: the end of the stream, an error in it, ``close()``
(also what ``with`` calls), or the stream being garbage-collected unfinished.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from aiscope.capture import LLMCall

log = logging.getLogger("aiscope.instrument")


class ChunkReader(Protocol):
    """Reads one provider's stream items into an :class:`LLMCall` (usage, TTFT, ids)."""

    def on_item(self, call: LLMCall, item: Any) -> None:
        """Look at one item as it passes to the application."""

    def on_end(self, call: LLMCall) -> None:
        """The stream ended (or was abandoned): set the usage seen."""


class StreamRecord:
    """One streamed call's record, finished exactly once (thread-safe)."""

    __slots__ = ("__weakref__", "_done", "_lock", "call", "finalizer", "reader")

    def __init__(self, call: LLMCall, reader: ChunkReader) -> None:
        self.call = call
        self.reader = reader
        self.finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False
        self._lock = threading.Lock()

    def on_item(self, item: Any) -> None:
        try:
            self.reader.on_item(self.call, item)
        except Exception:
            log.debug("aiscope could not read a stream item", exc_info=True)

    def finish(self, exc: BaseException | None = None) -> None:
        """Emit the record (once); never raises."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.finalizer is not None:
            self.finalizer.detach()  # finished: nothing left for the collector to do
        try:
            self.reader.on_end(self.call)
        except Exception:
            log.debug("aiscope could not read a stream's usage", exc_info=True)
        finish_call(self.call, exc)


def finish_call(call: LLMCall, exc: BaseException | None) -> None:
    """End ``call`` as a success or with ``exc``; a telemetry failure is logged, never raised."""
    try:
        if exc is None:
            call.__exit__(None, None, None)
        else:
            call.__exit__(type(exc), exc, exc.__traceback__)
    except Exception:
        log.warning("aiscope could not record a call; the call is unaffected", exc_info=True)


def _watch_sync(inner: Iterator[Any], rec: StreamRecord) -> Iterator[Any]:
    # Must not refer to the stream object itself: that would keep it alive.
    try:
        for item in inner:
            rec.on_item(item)
            yield item
    except GeneratorExit:
        rec.finish()
        raise
    except BaseException as exc:
        rec.finish(exc)
        raise
    rec.finish()


async def _watch_async(inner: AsyncIterator[Any], rec: StreamRecord) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            rec.on_item(item)
            yield item
    except GeneratorExit:
        rec.finish()
        raise
    except BaseException as exc:
        rec.finish(exc)
        raise
    rec.finish()


def _shadow_close(stream: Any, rec: StreamRecord, is_async: bool) -> None:
    # The SDK's own close, reached through a weak reference: a closure holding the
    # stream, stored on the stream, would make a cycle and delay its collection.
    ref = weakref.ref(stream)
    if is_async:

        async def aclose() -> None:
            try:
                s = ref()
                if s is not None:
                    await type(s).close(s)
            finally:
                rec.finish()

        stream.close = aclose
    else:

        def close() -> None:
            try:
                s = ref()
                if s is not None:
                    type(s).close(s)
            finally:
                rec.finish()

        stream.close = close


def observe_stream(stream: Any, call: LLMCall, reader: ChunkReader, *, is_async: bool) -> bool:
    """Make ``stream`` report to ``call``; False (and nothing changed) if it has no
    ``_iterator`` to watch."""
    try:
        inner = stream._iterator
    except AttributeError:
        return False
    rec = StreamRecord(call, reader)
    stream._iterator = _watch_async(inner, rec) if is_async else _watch_sync(inner, rec)
    _shadow_close(stream, rec, is_async)
    # Abandoned without close(): emit with what was seen when the stream is collected.
    rec.finalizer = weakref.finalize(stream, rec.finish)
    return True
