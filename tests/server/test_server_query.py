"""The query API over a workload sent through OTLP: paging, filters, cost groupings and
latency percentiles (from rollups) agree with the calls themselves."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import Engine, delete, func, select

from aiscope.server import create_project
from aiscope.server.rollup import compact, prune, rollup_rows
from aiscope.server.tables import calls, rollups
from tests.server.harness import Running

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")
DAY0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _workload(url: str, n: int) -> list[dict]:
    rng = random.Random(11)
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces"), max_export_batch_size=64)
    )
    tracer = provider.get_tracer("q")
    sent = []
    for i in range(n):
        model = MODELS[i % 3]
        start = DAY0 + rng.uniform(0, 2 * 86400)  # two days
        latency = rng.lognormvariate(6, 0.8)  # ms
        attrs = {
            "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": rng.randint(10, 5000),
            "gen_ai.usage.output_tokens": rng.randint(1, 800),
            "aiscope.tag.feature": rng.choice(("search", "chat")),
            "aiscope.tag.team": rng.choice(("a", "b", "c")),
        }
        span = tracer.start_span("chat", attributes=attrs, start_time=int(start * 1e9))
        span.end(end_time=int(start * 1e9) + int(latency * 1e6))
        sent.append({"start": start, "latency": latency, **attrs})
    provider.shutdown()
    return sent


@pytest.fixture
def workload(local_server: Running) -> list[dict]:
    return _workload(local_server.url, 600)


def _all_calls(url: str, **params: object) -> list[dict]:
    out: list[dict] = []
    cursor = None
    while True:
        page = httpx2.get(
            f"{url}/api/calls", params={**params, "limit": 70, "cursor": cursor}, timeout=10
        ).json()
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_paging_returns_every_call_once_newest_first(
    local_server: Running, workload: list[dict]
) -> None:
    got = _all_calls(local_server.url)
    assert len(got) == len(workload) == len({c["id"] for c in got})
    starts = [c["start_ts"] for c in got]
    assert starts == sorted(starts, reverse=True)
    only = _all_calls(local_server.url, model="gpt-4o", team="b", feature="chat")
    want = [
        w
        for w in workload
        if (w["gen_ai.request.model"], w["aiscope.tag.team"], w["aiscope.tag.feature"])
        == ("gpt-4o", "b", "chat")
    ]
    assert len(only) == len(want) > 0
    day1 = _all_calls(local_server.url, start=DAY0 + 86400, end=DAY0 + 2 * 86400)
    assert len(day1) == sum(w["start"] >= DAY0 + 86400 for w in workload)


@pytest.mark.parametrize("group_by", ["model", "feature", "team", "day", "provider"])
def test_cost_groupings_match_the_calls(
    local_server: Running, workload: list[dict], group_by: str
) -> None:
    got = httpx2.get(
        f"{local_server.url}/api/cost", params={"group_by": group_by}, timeout=10
    ).json()["rows"]
    want_cost: dict[str, float] = defaultdict(float)
    want_calls: dict[str, int] = defaultdict(int)
    want_input: dict[str, int] = defaultdict(int)
    for c in _all_calls(local_server.url):
        if group_by == "day":
            key = datetime.fromtimestamp(c["start_ts"], UTC).date().isoformat()
        else:
            key = c[group_by]
        want_cost[key] += c["cost_usd"]
        want_calls[key] += 1
        want_input[key] += c["input_tokens"]
    assert {r[group_by]: r["calls"] for r in got} == dict(want_calls)
    assert {r[group_by]: r["input_tokens"] for r in got} == dict(want_input)
    for r in got:
        assert r["cost_usd"] == pytest.approx(want_cost[r[group_by]], rel=1e-9)
        assert r["cost_usd"] > 0
    assert [r["cost_usd"] for r in got] == sorted((r["cost_usd"] for r in got), reverse=True)
    if group_by == "day":
        assert {r["day"] for r in got} == {"2026-01-01", "2026-01-02"}


def test_latency_percentiles_come_from_rollups(local_server: Running, workload: list[dict]) -> None:
    url = f"{local_server.url}/api/latency"
    rows = httpx2.get(url, params={"q": [0.5, 0.95]}, timeout=10).json()["rows"]
    assert {r["model"] for r in rows} == set(MODELS)
    for r in rows:
        values = sorted(w["latency"] for w in workload if w["gen_ai.request.model"] == r["model"])
        assert r["count"] == len(values)
        for name, q in (("p50", 0.5), ("p95", 0.95)):
            exact = values[round(q * (len(values) - 1))]
            assert r["quantiles"][name] == pytest.approx(exact, rel=0.03)
    # the answer does not read calls: with every call deleted, the rollups still answer
    with local_server.engine.begin() as conn:
        conn.execute(delete(calls))
    again = httpx2.get(url, params={"q": [0.5, 0.95]}, timeout=10).json()["rows"]
    assert again == rows
    # a time range selects rollup buckets: whole minutes, wherever the range starts and ends
    lo, hi = DAY0 + 5400.5, DAY0 + 86400 + 5 * 3600 + 7 * 60 + 1.2
    odd = httpx2.get(url, params={"start": lo, "end": hi}, timeout=10).json()["rows"]
    want = sum(lo // 60 * 60 <= w["start"] < -(-hi // 60) * 60 for w in workload)
    assert sum(r["count"] for r in odd) == want > 0
    first_day = httpx2.get(url, params={"start": DAY0, "end": DAY0 + 86400}, timeout=10).json()
    assert sum(r["count"] for r in first_day["rows"]) == sum(
        w["start"] < DAY0 + 86400 for w in workload
    )


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/calls", {"limit": 0}, 422),
        ("/api/calls", {"limit": 5000}, 422),
        ("/api/calls", {"cursor": "nonsense"}, 400),
        ("/api/calls", {"status": "maybe"}, 422),
        ("/api/cost", {"group_by": "colour"}, 422),
        ("/api/cost", {"start": 10, "end": 5}, 400),
        ("/api/latency", {"q": 1.5}, 400),
        ("/api/latency", {"start": "nan"}, 400),
        ("/api/cost", {"start": 1e300}, 400),
        ("/api/calls", {"model": "a\x00b"}, 400),
        ("/api/calls", {"cursor": "1.5:99999999999999999999999"}, 400),
        ("/api/traces/%00%00zz", {}, 400),  # a NUL names nothing
        ("/api/traces/" + "0" * 32, {}, 404),
    ],
)
def test_bad_queries_get_4xx_with_a_message(
    local_server: Running, path: str, params: dict, status: int
) -> None:
    r = httpx2.get(f"{local_server.url}{path}", params=params, timeout=10)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_feedback_is_stored_for_the_project(local_server: Running) -> None:
    url = f"{local_server.url}/api/feedback"
    ok = httpx2.post(url, json={"name": "thumbs", "score": 1, "trace_id": "d" * 32}, timeout=10)
    assert ok.status_code == 201
    missing = httpx2.post(url, json={"name": "thumbs", "score": 1}, timeout=10)
    assert missing.status_code == 400 and "trace_id or request_id" in missing.json()["detail"]
    bad = httpx2.post(url, json={"name": "t", "trace_id": "xyz"}, timeout=10)
    assert bad.status_code == 422


def test_compaction_merges_rollup_rows_without_changing_answers(
    local_server: Running, workload: list[dict]
) -> None:
    def answers() -> list[object]:
        return [
            httpx2.get(f"{local_server.url}{path}", params=params, timeout=10).json()
            for path, params in (
                ("/api/cost", {"group_by": "model"}),
                ("/api/cost", {"group_by": "day"}),
                ("/api/latency", {"q": [0.5, 0.99]}),
            )
        ]

    def n_rows() -> int:
        with local_server.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(rollups)).scalar() or 0)

    before, rows_before = answers(), n_rows()
    removed = compact(local_server.engine)
    assert removed > 0 and n_rows() == rows_before - removed
    after = answers()
    assert after[2] == before[2]  # sketches merge exactly
    for a, b in zip(after[:2], before[:2], strict=True):
        assert [{k: v for k, v in r.items() if k != "cost_usd"} for r in a["rows"]] == [
            {k: v for k, v in r.items() if k != "cost_usd"} for r in b["rows"]
        ]
        for ra, rb in zip(a["rows"], b["rows"], strict=True):
            assert ra["cost_usd"] == pytest.approx(rb["cost_usd"], rel=1e-12)
    assert compact(local_server.engine) == 0  # nothing left to merge


def test_retention_deletes_raw_calls_and_keeps_rollups(
    local_server: Running, workload: list[dict]
) -> None:
    url = local_server.url
    cost_before = httpx2.get(f"{url}/api/cost", params={"group_by": "day"}, timeout=10).json()
    cutoff = DAY0 + 86400
    deleted = prune(local_server.engine, cutoff)
    assert deleted == sum(w["start"] < cutoff for w in workload) > 0
    left = _all_calls(url)
    assert len(left) == len(workload) - deleted
    assert min(c["start_ts"] for c in left) >= cutoff
    cost_after = httpx2.get(f"{url}/api/cost", params={"group_by": "day"}, timeout=10).json()
    assert cost_after == cost_before  # the first day is still answered from rollups


def test_compaction_of_one_project_with_huge_sums_never_blocks_another(engine: Engine) -> None:
    """Rows whose merged sums would overflow a BIGINT stay unmerged; other projects merge."""
    bad, good = create_project(engine, "bad"), create_project(engine, "good")

    def call(project_id: str, tokens: int) -> dict[str, Any]:
        return {
            "project_id": project_id, "start_ts": 1_767_225_600.0, "provider": "openai",
            "model": "gpt-4o", "feature": None, "team": None, "status": "ok",
            "input_tokens": tokens, "output_tokens": 1, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.5,
            "latency_ms": 100.0, "ttft_ms": None,
        }  # fmt: skip

    with engine.begin() as conn:
        for project_id, tokens in ((bad.project_id, 2**62), (good.project_id, 10)):
            for _ in range(2):  # two ingest batches: two rows per group to merge
                conn.execute(rollups.insert(), rollup_rows([call(project_id, tokens)]))
    removed = compact(engine)
    with engine.connect() as conn:
        left = dict(
            conn.execute(
                select(rollups.c.project_id, func.count()).group_by(rollups.c.project_id)
            ).all()
        )
        merged = conn.execute(
            select(rollups.c.input_tokens, rollups.c.calls).where(
                rollups.c.project_id == good.project_id, rollups.c.resolution == 1
            )
        ).all()
    assert removed == 3  # the good project's three resolutions, two rows each, now one
    assert left == {bad.project_id: 6, good.project_id: 3}
    assert merged == [(20, 2)]
