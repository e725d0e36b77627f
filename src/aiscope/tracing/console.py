"""ConsoleExporter: each finished trace printed as a tree.

::

    [SPAN] chat gpt-4o (1.24s)
      ├─ gen_ai.usage.input_tokens: 15
      ├─ gen_ai.usage.output_tokens: 234
      └─ gen_ai.request.model: gpt-4o
      [SPAN] http_transport (1.20s)
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aiscope._fork import fork_safe_lock
from aiscope.masking import mask_secrets


class ConsoleExporter(SpanExporter):
    """Print spans as trees when their root span ends.

    Children end before their parent, so spans wait here until the local root
    of their trace (a span without a local parent) arrives; at most
    ``max_pending`` spans wait (oldest traces are printed as they are when more
    arrive). ``out`` defaults to ``sys.stdout`` at print time.
    """

    def __init__(
        self, show_attributes: bool = True, *, out: TextIO | None = None, max_pending: int = 10000
    ) -> None:
        if not isinstance(show_attributes, bool):
            raise TypeError(f"show_attributes must be a bool, got {show_attributes!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be an int >= 1, got {max_pending!r}")
        self.show_attributes = show_attributes
        self.out = out
        self.max_pending = max_pending
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._count = 0
        self._lock = fork_safe_lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer ``spans``; print every trace whose root is among them."""
        ready: list[tuple[ReadableSpan, list[ReadableSpan]]] = []
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id
                bucket = self._pending.setdefault(trace_id, [])
                bucket.append(span)
                self._count += 1
                if _is_root(span):
                    ready.append((span, bucket))
                    del self._pending[trace_id]
                    self._count -= len(bucket)
            while self._count > self.max_pending and self._pending:
                _, old = self._pending.popitem(last=False)
                self._count -= len(old)
                ready.extend((s, old) for s in old if _parent_missing(s, old))
        if ready:
            text = "".join(self.render(root, family) for root, family in ready)
            out = self.out if self.out is not None else sys.stdout
            out.write(text)
            out.flush()
        return SpanExportResult.SUCCESS

    def render(self, root: ReadableSpan, family: Sequence[ReadableSpan]) -> str:
        """The tree under ``root`` (its descendants are looked up in ``family``)."""
        children: dict[int, list[ReadableSpan]] = {}
        for s in family:
            if s.parent is not None and s is not root:
                children.setdefault(s.parent.span_id, []).append(s)
        lines: list[str] = []
        self._render(root, children, 0, lines)
        return "\n".join(lines) + "\n\n"

    def _render(
        self,
        span: ReadableSpan,
        children: dict[int, list[ReadableSpan]],
        depth: int,
        lines: list[str],
    ) -> None:
        pad = "  " * depth
        lines.append(f"{pad}[SPAN] {span.name} ({_seconds(span):.2f}s)")
        if self.show_attributes and span.attributes:
            items = list(span.attributes.items())
            for i, (key, value) in enumerate(items):
                branch = "└─" if i == len(items) - 1 else "├─"
                lines.append(f"{pad}  {branch} {key}: {mask_secrets(_show(value))}")
        kids = sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time or 0)
        for kid in kids:
            self._render(kid, children, depth + 1, lines)

    def shutdown(self) -> None:
        """Print whatever is still waiting for its root."""
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
            self._count = 0
        text = "".join(self.render(s, fam) for fam in left for s in fam if _parent_missing(s, fam))
        if text:
            (self.out if self.out is not None else sys.stdout).write(text)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered beyond spans waiting for their root."""
        return True


def _is_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _parent_missing(span: ReadableSpan, family: Sequence[ReadableSpan]) -> bool:
    if span.parent is None:
        return True
    return all(s.context.span_id != span.parent.span_id for s in family)


def _seconds(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e9


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
