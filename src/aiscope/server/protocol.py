"""uvicorn's HTTP/1.1 protocol with the one timeout it lacks: a connection must
deliver a whole request (headers and body) within ``request_timeout_s`` of its first
byte, or of its opening, or it is closed.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) only after a
first response; a client that connects and sends nothing, or half a request line,
or a body that never ends, held its connection and a file descriptor for ever, so
a thousand such sockets starved a server (slowloris).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: seconds a client has to send one whole request (16 MiB at 5 Mbit/s is ~27 s)
REQUEST_TIMEOUT_S = 30.0
#: seconds an idle keep-alive connection stays open between requests (uvicorn's 5)
KEEP_ALIVE_S = 5


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request does not arrive
    whole in time (see the module docstring)."""

    request_timeout_s: float = REQUEST_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE or self.conn.their_state is h11.ERROR:
            self._disarm()  # the request is in: the app's turn, then keep-alive's
        elif self._request_timer is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._request_timer = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _too_slow(self) -> None:
        self._request_timer = None
        if self.transport.is_closing() or self.conn.their_state is h11.DONE:
            return
        # mid-request: the app (if it began) sees http.disconnect when the socket goes
        self.logger.info("closing a connection that sent no whole request in time")
        self.transport.close()


def protocol(request_timeout_s: float = REQUEST_TIMEOUT_S) -> type[GuardedH11Protocol]:
    """The protocol class with its timeout, for ``uvicorn.Config(http=...)``."""
    if not request_timeout_s > 0:
        raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s!r}")
    return type(
        "GuardedH11Protocol", (GuardedH11Protocol,), {"request_timeout_s": request_timeout_s}
    )


def config(
    app: Any,
    *,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    keep_alive_s: int = KEEP_ALIVE_S,
    **kwargs: Any,
) -> uvicorn.Config:
    """The uvicorn configuration aiscope serves with: the guarded protocol, the
    keep-alive timeout, and ``kwargs`` (host, port, log_level, ...)."""
    return uvicorn.Config(
        app, http=protocol(request_timeout_s), timeout_keep_alive=keep_alive_s, **kwargs
    )
