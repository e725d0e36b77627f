"""Sinks do not import each other (the layers of aiscope's design): each reads what it
shares with another (metric names, labels, buckets) from the core, e.g.
:mod:`aiscope.metric_definitions`. Checked on the source, statically, since importing
any of them imports the package root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aiscope"
SINKS = (
    "alerts",
    "cost",
    "dashboards",
    "feedback",
    "logs",
    "metrics",
    "server_exporter",
    "tracing",
)


def _files(sink: str) -> list[Path]:
    package = SRC / sink
    return sorted(package.rglob("*.py")) if package.is_dir() else [SRC / f"{sink}.py"]


def _sinks_imported(path: Path) -> set[str]:
    """The sinks other than its own that the module at ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "aiscope":  # from aiscope import metrics
                names += [f"aiscope.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "aiscope" and parts[1] in SINKS:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("sink", SINKS)
def test_a_sink_imports_no_other_sink(sink: str) -> None:
    imported = {
        (str(p.relative_to(SRC)), other)
        for p in _files(sink)
        for other in _sinks_imported(p)
        if other != sink
    }
    assert not imported, f"{sink} imports other sinks: {sorted(imported)}"
