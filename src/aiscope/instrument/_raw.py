"""Observing ``with_streaming_response`` without changing it.

With ``client.chat.completions.with_streaming_response.create(...)`` the SDK hands
the application an ``APIResponse`` whose body has not been read: the application
reads it, with ``parse()`` (the SDK's response model, or its ``Stream`` for
``stream=True``) or raw (``iter_lines()``, ``read()``...), and ``close()`` ends it
(the ``with`` block does). aiscope shadows ``parse`` and ``close`` on that one
object, as it does for streams: what ``parse()`` returns is read like any response
(a stream is watched until it ends), and the record is emitted exactly once, by
whichever comes first: the parsed response, the end of the parsed stream,
``close()``, or the object being garbage-collected. A body read raw is not parsed
by aiscope: that record has the call's status and timing, not its tokens.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from aiscope.capture import LLMCall
from aiscope.instrument._endpoint import Endpoint
from aiscope.instrument._streams import ChunkReader, finish_call, observe_stream

log = logging.getLogger("aiscope.instrument")


class _RawRecord:
    """One raw response's record: finished once, or handed to a stream's watcher."""

    __slots__ = ("__weakref__", "_done", "_lock", "call", "ep", "finalizer", "stream_reader")

    def __init__(self, call: LLMCall, ep: Endpoint, stream_reader: ChunkReader | None) -> None:
        self.call = call
        self.ep = ep
        self.stream_reader = stream_reader
        self.finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
        if self.finalizer is not None:
            self.finalizer.detach()
        return True

    def finish(self) -> None:
        """Emit the record with what is known (never raises)."""
        if self._claim():
            finish_call(self.call, None)

    def parsed(self, value: Any, is_async: bool) -> None:
        """Read what the application's ``parse()`` returned (never raises)."""
        if not self._claim():
            return
        try:
            if self.stream_reader is not None:
                self.call.streaming = True
                if observe_stream(value, self.call, self.stream_reader, is_async=is_async):
                    return  # the stream's watcher emits the record when it ends
            else:
                self.ep.read_response(self.call, value)
        except Exception:
            log.warning("aiscope could not read an SDK response", exc_info=True)
        finish_call(self.call, None)


def observe_raw(
    response: Any,
    call: LLMCall,
    ep: Endpoint,
    stream_reader: ChunkReader | None,
    *,
    is_async: bool,
) -> None:
    """Make a ``with_streaming_response`` response report to ``call`` (see the module).

    ``stream_reader`` reads the stream ``parse()`` returns when the request asked for one.
    """
    rec = _RawRecord(call, ep, stream_reader)
    cls = type(response)
    # The SDK's own methods, reached through a weak reference: closures holding the
    # response, stored on it, would make a cycle and delay its collection.
    ref = weakref.ref(response)

    if is_async:

        async def aparse(**kwargs: Any) -> Any:
            value = await cls.parse(ref(), **kwargs)
            if not kwargs:  # parse(to=...) is the application's own type: not read
                rec.parsed(value, True)
            return value

        async def aclose() -> None:
            try:
                r = ref()
                if r is not None:
                    await cls.close(r)
            finally:
                rec.finish()

        response.parse, response.close = aparse, aclose
    else:

        def parse(**kwargs: Any) -> Any:
            value = cls.parse(ref(), **kwargs)
            if not kwargs:
                rec.parsed(value, False)
            return value

        def close() -> None:
            try:
                r = ref()
                if r is not None:
                    cls.close(r)
            finally:
                rec.finish()

        response.parse, response.close = parse, close
    rec.finalizer = weakref.finalize(response, rec.finish)
