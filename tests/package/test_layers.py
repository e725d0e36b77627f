"""The package's layers hold: the import-linter contract in ``pyproject.toml`` is kept,
it really fails when a forbidden import is added, and no aiscope modules import each
other in a cycle (imports inside functions count; ``if TYPE_CHECKING:`` ones do not)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_layers_contract_is_kept() -> None:
    got = _lint(ROOT, ROOT / "src")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "1 kept, 0 broken" in got.stdout


def test_the_contract_names_every_top_level_module() -> None:
    # a new module outside every layer would escape the contract unnoticed
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in contract["contracts"] if c["type"] == "layers"]
    named = {m.strip() for line in layers for m in line.replace("|", ":").split(":")}
    package = ROOT / "src" / "aiscope"
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert present == named


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("cost/pricing.py", "aiscope.metrics"),  # a sink importing another sink
        ("tracing/tracer.py", "aiscope.logs"),
        ("record.py", "aiscope.scope"),  # the core importing the Scope
        ("scope.py", "aiscope.client"),  # the Scope importing a capture adapter
        ("instrument/_openai.py", "aiscope.server"),  # an adapter importing an app
    ],
)  # fmt: skip
def test_the_contract_fails_when_a_forbidden_import_is_added(
    tmp_path: Path, module: str, forbidden: str
) -> None:
    importer = "aiscope." + module.split("/")[0].removesuffix(".py")
    message = f"{importer} is not allowed to import {forbidden}"
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "aiscope", src / "aiscope",
                    ignore=shutil.ignore_patterns("__pycache__", "static"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint(tmp_path, src).returncode == 0  # the copy is as clean as the original
    with (src / "aiscope" / module).open("a") as f:
        f.write(f"\nimport {forbidden}  # the forbidden import\n")
    got = _lint(tmp_path, src)
    assert got.returncode == 1
    assert message in got.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_aiscope_modules() -> None:
    graph = grimp.build_graph("aiscope", exclude_type_checking_imports=True)
    edges = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("aiscope")}
        for m in graph.modules
    }
    assert _cycles(edges) == []
