"""Transport-level pieces shared by the wire modules and the HTTP server.

An :class:`Incoming` request goes to the dispatcher, which answers with an
:class:`Outcome`: a whole body, or a list of stream :class:`Frame`\\ s plus how to
deliver them (delays, a cut, a corrupted frame). The server writes it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiscope.record import Usage

if TYPE_CHECKING:
    from aiscope.testing.records import RecordedRequest


def random_id(prefix: str, length: int = 24) -> str:
    """``prefix`` followed by ``length`` random hex digits."""
    return f"{prefix}{random.getrandbits(4 * length):0{length}x}"


def dumps(obj: Any) -> str:
    """Compact JSON, as the providers send it in stream frames."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def corrupt(data: str) -> str:
    """``data`` cut in half: invalid JSON for any JSON object or array."""
    return data[: max(1, len(data) // 2)]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One HTTP request as the server read it (header names lower-cased; ``client``
    is the peer's ``host:port``)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    client: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a stream.

    ``data`` is the frame's payload (JSON text, or ``[DONE]``); ``event`` the SSE
    event name, if any. ``sse`` False writes ``data`` as is (Gemini's JSON-array
    streams); ``crlf`` ends SSE lines with CRLF (Gemini). ``usage``/``wire_usage``
    are set on the frame that completes the usage report: when it is written, the
    request's record learns what usage was sent.
    """

    data: str
    event: str | None = None
    usage: Usage | None = None
    wire_usage: Mapping[str, Any] | None = None
    sse: bool = True
    crlf: bool = False

    def encode(self, *, malformed: bool = False) -> bytes:
        """The frame's bytes; ``malformed`` corrupts its JSON."""
        data = corrupt(self.data) if malformed else self.data
        if not self.sse:
            return data.encode()
        eol = "\r\n" if self.crlf else "\n"
        head = f"event: {self.event}{eol}" if self.event is not None else ""
        return f"{head}data: {data}{eol}{eol}".encode()


def json_frame(obj: Any, event: str | None = None, **kwargs: Any) -> Frame:
    """An SSE frame carrying ``obj`` as compact JSON."""
    return Frame(dumps(obj), event, **kwargs)


Headers = list[tuple[str, str]]


@dataclass(slots=True)
class Outcome:
    """A response to write, and how to write it.

    ``frames`` None means a whole ``body``; otherwise a chunked stream of
    ``content_type``. ``delay_s`` is slept before the first byte,
    ``first_frame_delay_s`` after the stream's headers, ``chunk_delay_s`` between
    frames. ``drop_after`` cuts the connection after that many frames (for a whole
    body: after half of it); ``malformed_at`` corrupts that frame.
    """

    status: int
    headers: Headers
    body: bytes = b""
    frames: list[Frame] | None = None
    content_type: str = "application/json"
    record: RecordedRequest | None = None
    usage: Usage | None = None
    wire_usage: Mapping[str, Any] | None = None
    delay_s: float = 0.0
    first_frame_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    drop_after: int | None = None
    malformed_at: int | None = None


@dataclass(slots=True)
class Rendered:
    """A successful answer in one provider's format, before transport.

    Exactly one of ``body`` (a whole JSON response) and ``frames`` (a stream) is set.
    ``usage``/``wire_usage`` are the usage of the answer (a stream reports it only
    in the frames that carry it, if any); ``finish_reason`` is in the provider's words.
    """

    response_id: str
    finish_reason: str
    usage: Usage | None
    wire_usage: Mapping[str, Any] | None
    body: Any = None
    frames: list[Frame] | None = None
    tool_call: dict[str, Any] | None = None
