"""Every ```python block in the README and docs/ runs (blocks of a page share a namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import aiscope

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
    finally:
        aiscope.configure()
