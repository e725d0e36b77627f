"""``import aiscope`` next to the peers' imports: cumulative import time and modules loaded.

    .venv/bin/python bench/import_time.py                 # aiscope and every installed peer
    .venv/bin/python bench/import_time.py --rounds 21
    .venv/bin/python bench/import_time.py --also-src /path/to/other/checkout/src   # A/B two trees

Each contender is imported in a fresh process with ``python -X importtime``; the
figure is the cumulative time CPython reports for the top-level import (so interpreter
start-up is excluded), the median over the rounds, which run the contenders in rotating
order. The module count is ``len(sys.modules)`` after the import minus that of an empty
interpreter. The peers come from their own virtualenvs (``bash bench/setup_peers.sh``:
langfuse, openlit, traceloop for ``traceloop.sdk``); a peer whose venv is missing is
skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", ROOT / ".venv-peers"))
PEERS = (("langfuse", "langfuse"), ("openlit", "openlit"), ("traceloop", "traceloop.sdk"))
COUNT = "import sys; n0 = len(sys.modules); import {mod}; print(len(sys.modules) - n0)"


@dataclass
class Contender:
    """One import to time: ``module`` under ``python``, with ``pythonpath`` first on the path."""

    label: str
    python: str
    module: str
    pythonpath: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        return env

    def cumulative_us(self) -> int:
        """Cumulative microseconds of the top-level import, from ``-X importtime``."""
        out = subprocess.run(
            [self.python, "-X", "importtime", "-c", f"import {self.module}"],
            capture_output=True, text=True, env=self.env(), check=True, timeout=120,
        )  # fmt: skip
        for line in out.stderr.splitlines():
            # "import time:      self [us] | cumulative | imported package"
            parts = line.split("|")
            if len(parts) == 3 and parts[2].rstrip() == f" {self.module}":
                return int(parts[1])
        raise RuntimeError(f"{self.label}: no importtime line for {self.module}")

    def modules(self) -> int:
        out = subprocess.run(
            [self.python, "-c", COUNT.format(mod=self.module)],
            capture_output=True, text=True, env=self.env(), check=True, timeout=120,
        )  # fmt: skip
        return int(out.stdout.split()[-1])


def contenders(also_src: str | None) -> list[Contender]:
    src = str(ROOT / "src")
    out = [Contender("aiscope", sys.executable, "aiscope", src)]
    if also_src:
        out.append(Contender(f"aiscope ({also_src})", sys.executable, "aiscope", also_src))
    for venv, module in PEERS:
        python = PEERS_DIR / venv / "bin" / "python"
        if python.exists():
            out.append(Contender(module, str(python), module))
        else:
            hint = f"bash bench/setup_peers.sh {venv}"
            print(f"skipped {module}: no {python} ({hint})", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--also-src", help="a second aiscope source tree to time beside this one")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    cs = contenders(args.also_src)
    times: dict[str, list[int]] = {c.label: [] for c in cs}
    for c in cs:  # warm the file-system cache and .pyc files
        c.cumulative_us()
    for i in range(args.rounds):
        k = i % len(cs)
        order = cs[k:] + cs[:k]
        for c in reversed(order) if i % 2 else order:
            times[c.label].append(c.cumulative_us())
    rows = []
    for c in cs:
        ts = times[c.label]
        rows.append({"label": c.label, "median_ms": statistics.median(ts) / 1000,
                     "min_ms": min(ts) / 1000, "max_ms": max(ts) / 1000,
                     "modules": c.modules()})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    base = rows[0]["median_ms"]
    print(f"import time, cumulative (-X importtime), median of {args.rounds} rounds")
    print(f"{'import':<34}{'median ms':>10}{'min':>8}{'max':>8}{'modules':>9}{'vs aiscope':>12}")
    for r in rows:
        print(f"{r['label']:<34}{r['median_ms']:>10.1f}{r['min_ms']:>8.1f}{r['max_ms']:>8.1f}"
              f"{r['modules']:>9}{r['median_ms'] / base:>11.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
