"""Stream events: what ``ChatRequestBuilder.stream()`` yields, one kind for every provider."""

from __future__ import annotations

from dataclasses import dataclass

from aiscope.client.response import ChatResponse
from aiscope.record import CallStats, Usage

__all__ = ["StreamEvent", "ToolCallDelta"]


@dataclass(slots=True)
class ToolCallDelta:
    """Part of a streamed tool call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(slots=True)
class StreamEvent:
    """A unified stream event: ``text_delta``, ``tool_call_delta``, ``usage``, ``finish``
    or ``end`` (the last one, carrying the whole response and the call's stats)."""

    kind: str
    text: str | None = None
    tool_call: ToolCallDelta | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    response: ChatResponse | None = None
    stats: CallStats | None = None
