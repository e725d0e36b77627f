"""Streams: SSE framing, the manifest's event map, and accumulation into a response."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiscope.client._parse import estimate_usage, normalize_usage
from aiscope.client.errors import StreamProtocolError
from aiscope.client.manifest import ProviderManifest
from aiscope.client.response import ChatResponse, ToolCall
from aiscope.client.streaming import StreamEvent, ToolCallDelta
from aiscope.logs import TRACE
from aiscope.masking import mask_secrets

log = logging.getLogger("aiscope.client.stream")


@dataclass(slots=True)
class SSEFrame:
    """One server-sent event."""

    event: str | None
    data: str


class SSEDecoder:
    """Incremental decoder of ``text/event-stream`` (the WHATWG framing rules)."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> Iterator[SSEFrame]:
        """Frames completed by ``chunk``."""
        buf = self._buf + chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            raw = buf[:nl]
            buf = buf[nl + 1 :]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            frame = self._line(raw.decode("utf-8", errors="replace"))
            if frame is not None:
                yield frame
        self._buf = buf

    def flush(self) -> Iterator[SSEFrame]:
        """A last frame not followed by a blank line."""
        if self._buf:
            frame = self._line(self._buf.decode("utf-8", errors="replace").rstrip("\r"))
            self._buf = b""
            if frame is not None:
                yield frame
        if self._data:
            yield SSEFrame(self._event, "\n".join(self._data))
            self._data, self._event = [], None

    def _line(self, line: str) -> SSEFrame | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            frame = SSEFrame(self._event, "\n".join(self._data))
            self._data, self._event = [], None
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


@dataclass(slots=True)
class StreamState:
    """What a stream has said so far."""

    text: list[str] = field(default_factory=list)
    tools: dict[int, ToolCallDelta] = field(default_factory=dict)
    usage_values: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    id: str | None = None
    model: str | None = None
    done: bool = False
    frames: int = 0
    first_token_at: float | None = None
    error: Any = None

    def response(self, manifest: ProviderManifest, prompt: str, messages: int = 1) -> ChatResponse:
        text = "".join(self.text)
        usage = normalize_usage(manifest.usage, dict(self.usage_values))
        if usage is None:
            usage = estimate_usage(prompt, text, messages)
        tools = [
            ToolCall(t.id or f"call_{i}", t.name or "", t.arguments or "")
            for i, t in sorted(self.tools.items())
        ]
        return ChatResponse(text, self.finish_reason, usage, self.id, self.model, tools)


class EventMapper:
    """Applies a manifest's event map to decoded frames."""

    def __init__(self, manifest: ProviderManifest) -> None:
        self.manifest = manifest
        self.rules = manifest.events
        self.done_data = manifest.done_data

    def frame(self, frame: SSEFrame, state: StreamState) -> list[StreamEvent]:
        """Events of one frame (and update ``state``)."""
        data = frame.data
        if self.done_data is not None and data.strip() == self.done_data:
            state.done = True
            return []
        if not data.strip():
            return []
        try:
            obj = json.loads(data)
        except ValueError:
            raise StreamProtocolError(
                f"malformed stream frame (not JSON): {data[:200]!r}", provider=self.manifest.id
            ) from None
        state.frames += 1
        if log.isEnabledFor(TRACE):
            # masked here, not only by a filter: a provider's error frame may echo the key
            log.log(
                TRACE,
                "frame %d event=%s data=%s",
                state.frames,
                frame.event,
                mask_secrets(data[:500]),
            )
        return self.map(obj, state)

    def map(self, obj: Any, state: StreamState) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        trace = log.isEnabledFor(TRACE)
        for rule in self.rules:
            if rule.when and not all(c.holds(obj) for c in rule.when):
                continue
            kind = rule.emit
            if kind == "end":
                state.done = True
                continue
            if kind == "meta":
                if state.id is None and "id" in rule.fields:
                    v = rule.fields["id"].first(obj)
                    state.id = str(v) if v is not None else None
                if state.model is None and "model" in rule.fields:
                    v = rule.fields["model"].first(obj)
                    state.model = str(v) if v is not None else None
                continue
            if kind == "usage":
                got = False
                for name, path in rule.fields.items():
                    v = path.first(obj)
                    if isinstance(v, int) and not isinstance(v, bool):
                        state.usage_values[name] = v
                        got = True
                if got:
                    out.append(StreamEvent("usage"))
                continue
            selected: list[Any]
            if rule.select is None:
                selected = [obj]
            elif rule.each or not rule.select.is_simple:
                selected = rule.select.all(obj)
                if rule.each:
                    flat: list[Any] = []
                    for s in selected:
                        flat.extend(s if isinstance(s, list) else [s])
                    selected = flat
            else:
                v = rule.select.first(obj)
                selected = [] if v is None else [v]
            if not selected:
                continue
            if trace:
                log.log(
                    TRACE,
                    "jsonpath %s matched %s -> %s",
                    rule.select.expr if rule.select else "$",
                    mask_secrets(repr(selected)),
                    kind,
                )
            if kind == "text_delta":
                text = "".join(s for s in selected if isinstance(s, str))
                if text:
                    state.text.append(text)
                    out.append(StreamEvent("text_delta", text=text))
            elif kind == "finish":
                state.finish_reason = str(selected[0])
                out.append(StreamEvent("finish", finish_reason=state.finish_reason))
            elif kind == "tool_call_delta":
                for item in selected:
                    out.append(
                        StreamEvent(
                            "tool_call_delta", tool_call=self._tool(rule.fields, item, state)
                        )
                    )
            elif kind == "error":
                state.error = selected[0]
        return out

    @staticmethod
    def _tool(fields: Any, item: Any, state: StreamState) -> ToolCallDelta:
        def get(name: str) -> Any:
            p = fields.get(name)
            return p.first(item) if p is not None else None

        index = get("index")
        if not isinstance(index, int):
            index = len(state.tools) if get("id") or get("name") else max(state.tools, default=0)
        args = get("arguments")
        if args is not None and not isinstance(args, str):
            args = json.dumps(args)
        delta = ToolCallDelta(index, get("id"), get("name"), args)
        acc = state.tools.get(index)
        if acc is None:
            state.tools[index] = ToolCallDelta(index, delta.id, delta.name, delta.arguments or "")
        else:
            acc.id = acc.id or delta.id
            acc.name = acc.name or delta.name
            if delta.arguments:
                acc.arguments = (acc.arguments or "") + delta.arguments
        return delta
