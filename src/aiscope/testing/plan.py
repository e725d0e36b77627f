"""What the mock answers, independent of wire format.

A ``wire_*`` module reads a request into a :class:`PromptInfo`; :func:`plan` turns
it and the :class:`~aiscope.testing.config.Behavior` into a :class:`Completion`
(text or tool call, finish reason, token counts); the wire module writes that in
its provider's format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiscope.testing.config import Behavior
from aiscope.testing.tokens import count_prompt_tokens, generated_text, split_tokens

#: Why a completion ended, provider-neutral.
Finish = Literal["stop", "stop_sequence", "length", "tool_call"]

#: Put ``[[call]]``, ``[[call:NAME]]`` or ``[[call:NAME {"json": "args"}]]`` in the
#: last user message of a request that declares tools to make the mock call a tool.
TOOL_MARKER_RE = re.compile(
    r"\[\[call(?::(?P<name>[\w.\-]+))?(?P<args>\s*\{.*?\})?\s*\]\]",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class PromptInfo:
    """What the mock needs to know of a request, read by a wire module."""

    model: str
    texts: tuple[str, ...]
    last_user_text: str = ""
    after_tool_result: bool = False
    tool_names: tuple[str, ...] = ()
    max_output_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    """A tool call to send: its name and its (possibly truncated) arguments JSON."""

    name: str
    arguments: str
    pieces: tuple[str, ...]

    def arguments_dict(self) -> dict[str, Any]:
        """The arguments as a dict; ``{}`` if they were truncated into invalid JSON."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer to send, and every token count a usage object needs.

    ``prompt_tokens`` includes the cached ones; ``output_tokens`` counts the
    visible text (or tool-call arguments) only, ``reasoning_tokens`` come on top.
    """

    model: str
    pieces: tuple[str, ...]
    tool_call: PlannedToolCall | None
    finish: Finish
    stop_sequence: str | None
    prompt_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int

    @property
    def text(self) -> str:
        """The visible reply text (empty for a tool call)."""
        return "".join(self.pieces)


def default_reply(last_user_text: str) -> str:
    """The reply when none is configured: it quotes the start of the last user message."""
    snippet = " ".join(last_user_text.split())
    if len(snippet) > 80:
        snippet = snippet[:80].rstrip() + "..."
    return f"This is a mock reply to: {snippet}" if snippet else "This is a mock reply."


def _requested_tool(info: PromptInfo, behavior: Behavior) -> tuple[str, dict[str, Any]] | None:
    if not info.tool_names or info.after_tool_result:
        return None
    match = TOOL_MARKER_RE.search(info.last_user_text)
    if match is not None:
        name = match.group("name") or info.tool_names[0]
        try:
            args = json.loads(match.group("args") or "{}")
        except ValueError:
            args = {}
        return name, args if isinstance(args, dict) else {}
    if behavior.tool_call is not None:
        return behavior.tool_call.name or info.tool_names[0], dict(behavior.tool_call.arguments)
    return None


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    best: tuple[int, str] | None = None
    for s in stop:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def plan(info: PromptInfo, behavior: Behavior) -> Completion:
    """The completion the mock sends for a request described by ``info``."""
    prompt = count_prompt_tokens(info.texts)
    cache_read = min(behavior.cache_read_tokens, prompt)
    cache_write = min(behavior.cache_write_tokens, prompt - cache_read)
    reasoning = behavior.reasoning_tokens
    budget: int | None = None
    if info.max_output_tokens is not None:
        reasoning = min(reasoning, max(info.max_output_tokens, 0))
        budget = max(info.max_output_tokens - reasoning, 0)

    tool = _requested_tool(info, behavior)
    tool_call: PlannedToolCall | None = None
    stop_sequence: str | None = None
    pieces: list[str] = []
    finish: Finish
    if tool is not None:
        name, args = tool
        arg_pieces = split_tokens(json.dumps(args, separators=(",", ":")))
        finish = "tool_call"
        if budget is not None and len(arg_pieces) > budget:
            arg_pieces, finish = arg_pieces[:budget], "length"
        tool_call = PlannedToolCall(name, "".join(arg_pieces), tuple(arg_pieces))
        output = len(arg_pieces)
    else:
        if behavior.reply_text is not None:
            text = behavior.reply_text
        elif behavior.reply_tokens is not None:
            text = generated_text(behavior.reply_tokens)
        else:
            text = default_reply(info.last_user_text)
        text, stop_sequence = _cut_at_stop(text, info.stop)
        finish = "stop" if stop_sequence is None else "stop_sequence"
        pieces = split_tokens(text)
        if budget is not None and len(pieces) > budget:
            pieces, finish, stop_sequence = pieces[:budget], "length", None
        output = len(pieces)
    return Completion(
        model=behavior.model or info.model,
        pieces=tuple(pieces),
        tool_call=tool_call,
        finish=finish,
        stop_sequence=stop_sequence,
        prompt_tokens=prompt,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


def group(pieces: Sequence[str], size: int) -> list[str]:
    """``pieces`` joined ``size`` at a time: the deltas of a stream."""
    return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


__all__ = [
    "TOOL_MARKER_RE",
    "Completion",
    "Finish",
    "PlannedToolCall",
    "PromptInfo",
    "default_reply",
    "group",
    "plan",
]
