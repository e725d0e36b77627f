"""JSONPath expressions from manifests, compiled once at load.

Every expression is compiled by ``python-jsonpath`` (so a bad one fails at load,
naming the manifest key). Plain paths — names and integer indexes only, such as
``$.choices[0].delta.content``, which is almost all of them — are also compiled
to a tuple of keys and walked directly: the same result at a fraction of the cost,
which matters on the per-chunk streaming path.
"""

from __future__ import annotations

import re
from typing import Any

import jsonpath

_SIMPLE = re.compile(r"^\$((?:\.[A-Za-z_][A-Za-z0-9_\-]*|\[\d+\]|\['[^'\]]+'\])*)$")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^'\]]+)'\]")

_MISSING = object()


class PathError(ValueError):
    """A JSONPath expression that does not compile."""


class JsonPath:
    """A compiled JSONPath: :meth:`first` gives the first match or None, :meth:`all` every match."""

    __slots__ = ("_compiled", "_steps", "expr")

    def __init__(self, expr: str) -> None:
        if not isinstance(expr, str) or not expr.startswith("$"):
            raise PathError(f"a JSONPath must be a string starting with '$', got {expr!r}")
        try:
            self._compiled = jsonpath.compile(expr)
        except Exception as exc:  # python-jsonpath raises its own error types
            raise PathError(f"invalid JSONPath {expr!r}: {exc}") from None
        self.expr = expr
        self._steps: tuple[str | int, ...] | None = None
        m = _SIMPLE.match(expr)
        if m is not None:
            steps: list[str | int] = []
            for name, index, quoted in _STEP.findall(m.group(1)):
                if name:
                    steps.append(name)
                elif quoted:
                    steps.append(quoted)
                else:
                    steps.append(int(index))
            self._steps = tuple(steps)

    @property
    def is_simple(self) -> bool:
        """True when walked directly (no filters, wildcards or slices)."""
        return self._steps is not None

    def first(self, data: Any) -> Any:
        """The first match, or None (JSON null counts as no match)."""
        steps = self._steps
        if steps is not None:
            node = data
            for step in steps:
                if isinstance(step, str):
                    if not isinstance(node, dict):
                        return None
                    node = node.get(step, _MISSING)
                    if node is _MISSING:
                        return None
                else:
                    if not isinstance(node, list) or step >= len(node):
                        return None
                    node = node[step]
            return node
        found = self._compiled.findall(data)
        return found[0] if found else None

    def all(self, data: Any) -> list[Any]:
        """Every match (non-null), in document order."""
        if self._steps is not None:
            value = self.first(data)
            return [] if value is None else [value]
        return [v for v in self._compiled.findall(data) if v is not None]

    def __repr__(self) -> str:
        return f"JsonPath({self.expr!r})"
