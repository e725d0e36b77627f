"""The mock's log of what it received and what it sent back."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiscope.record import Usage
from aiscope.testing.config import Fault


@dataclass(slots=True, eq=False)
class RecordedRequest:
    """One request the mock received, and what it answered.

    ``client`` is the peer's ``host:port`` (requests sharing it came over one
    keep-alive connection). ``headers`` has lower-cased names; ``body`` is the
    parsed JSON (None if the body was empty or not JSON). ``provider`` is
    ``"openai"``, ``"anthropic"``, ``"gemini"`` or None (unknown path);
    ``endpoint`` e.g. ``"chat.completions"``, ``"responses"``, ``"embeddings"``,
    ``"messages"``, ``"generateContent"``, ``"streamGenerateContent"``, ``"models"``.

    ``planned_usage`` is the usage the mock computed; ``usage`` (aiscope's
    :class:`~aiscope.record.Usage`: input includes cached tokens, output includes
    reasoning tokens) and ``wire_usage`` (the provider-format usage object) are
    what it actually *sent*: None when no usage reached the wire (an error, a
    stream without ``include_usage``, a stream cut before its usage frame).
    Fields are filled in before the corresponding bytes are written, so a client
    that has read a response sees them set.
    """

    seq: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    received_at: float
    client: str = ""
    provider: str | None = None
    endpoint: str | None = None
    model: str | None = None
    stream: bool = False
    status: int | None = None
    fault: Fault | None = None
    response_id: str | None = None
    reply_text: str | None = None
    tool_call: dict[str, Any] | None = None
    finish_reason: str | None = None
    planned_usage: Usage | None = None
    usage: Usage | None = None
    wire_usage: Mapping[str, Any] | None = None
    frames_sent: int = 0
    completed: bool = False
    disconnected: bool = False


class RequestLog:
    """A thread-safe, bounded log of :class:`RecordedRequest`\\ s."""

    def __init__(self, limit: int | None = 10_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=limit)
        self._seq = 0

    def add(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
        client: str = "",
    ) -> RecordedRequest:
        """Append a new record and return it (to be completed by its handler)."""
        with self._lock:
            self._seq += 1
            record = RecordedRequest(
                seq=self._seq,
                method=method,
                path=path,
                query=dict(query),
                headers=dict(headers),
                body=body,
                received_at=time.time(),
                client=client,
            )
            self._items.append(record)
        return record

    def snapshot(self) -> list[RecordedRequest]:
        """The records, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every record (the sequence numbers go on)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


__all__ = [
    "RecordedRequest",
    "RequestLog",
]
