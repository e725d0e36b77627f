"""The provider-neutral chat response (what a call returns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiscope.record import Usage

__all__ = ["ChatResponse", "ToolCall"]


@dataclass(slots=True)
class ToolCall:
    """A function call the model asked for (arguments as a JSON string)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ChatResponse:
    """A provider-neutral chat response."""

    text: str
    finish_reason: str | None
    usage: Usage
    id: str | None = None
    model: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    request_id: str | None = None
    raw: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.text
