"""Per-minute rollups of calls, computed from one ingest batch before it is written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiscope.server import sketch

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def rollup_rows(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``rollups`` row per (project, minute, provider, model, feature, team) of ``calls``."""
    groups: dict[tuple[str, int, str, str, str, str], dict[str, Any]] = {}
    for c in calls:
        key = (
            c["project_id"],
            int(c["start_ts"] // 60),
            c["provider"],
            c["model"],
            c["feature"] or "",
            c["team"] or "",
        )
        row = groups.get(key)
        if row is None:
            row = groups[key] = {
                "project_id": key[0],
                "minute": key[1],
                "provider": key[2],
                "model": key[3],
                "feature": key[4],
                "team": key[5],
                "calls": 0,
                "errors": 0,
                **dict.fromkeys(_TOKENS, 0),
                "cost_usd": 0.0,
                "unpriced_calls": 0,
                "latency_bins": {},
                "ttft_bins": {},
            }
        row["calls"] += 1
        row["errors"] += c["status"] == "error"
        for t in _TOKENS:
            row[t] += c[t]
        if c["cost_usd"] is None:
            row["unpriced_calls"] += 1
        else:
            row["cost_usd"] += c["cost_usd"]
        sketch.add(row["latency_bins"], c["latency_ms"])
        if c["ttft_ms"] is not None:
            sketch.add(row["ttft_bins"], c["ttft_ms"])
    return list(groups.values())
