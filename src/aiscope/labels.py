"""Bounded label values: an allowlist and a cap on distinct values per label.

Model names, features and teams come from application code and sometimes from
users; left alone they would grow a metric's series (and our dicts) without end.
Each label keeps at most ``max_values`` distinct values; later ones fold into
``other`` and are counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiscope._fork import fork_safe_lock

OTHER = "other"


class LabelLimiter:
    """Maps raw label values to bounded ones.

    ``allowlist`` maps a label name to the only values it may take (others become
    ``other``); labels not in it accept the first ``max_values`` distinct values.
    """

    def __init__(
        self,
        max_values: int = 100,
        allowlist: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
            raise ValueError(f"max_values must be an int >= 1, got {max_values!r}")
        self.max_values = max_values
        self._allow: dict[str, frozenset[str]] = {}
        for name, values in (allowlist or {}).items():
            if isinstance(values, str):
                raise TypeError(f"allowlist[{name!r}] must be a collection of str, not a str")
            self._allow[name] = frozenset(values)
        self._seen: dict[str, dict[str, str]] = {}
        self._lock = fork_safe_lock()
        #: how many values each label folded into ``other``
        self.overflow: dict[str, int] = {}

    def table(self, label: str) -> dict[str, str]:
        """The live value map of one label (hot paths read it directly)."""
        seen = self._seen.get(label)
        if seen is None:
            with self._lock:
                seen = self._seen.setdefault(label, {"": ""})
        return seen

    def get(self, label: str, value: str) -> str:
        """The bounded value for ``value`` of ``label``."""
        seen = self.table(label)
        hit = seen.get(value)
        if hit is not None:
            return hit
        return self._admit(label, seen, value)

    def _admit(self, label: str, seen: dict[str, str], value: str) -> str:
        allowed = self._allow.get(label)
        with self._lock:
            hit = seen.get(value)
            if hit is not None:
                return hit
            if allowed is not None:
                out = value if value in allowed else OTHER
                if out == OTHER:
                    self.overflow[label] = self.overflow.get(label, 0) + 1
                if len(seen) < self.max_values * 4:  # remember misses too, but bounded
                    seen[value] = out
                return out
            if len(seen) <= self.max_values:
                seen[value] = value
                return value
            self.overflow[label] = self.overflow.get(label, 0) + 1
            return OTHER


__all__ = [
    "OTHER",
    "LabelLimiter",
]
