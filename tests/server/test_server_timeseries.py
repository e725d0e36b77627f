"""``GET /api/timeseries`` and ``GET /api/feedback`` (the dashboard's queries) over a
workload sent through OTLP: every bucket agrees with the calls sent, whatever the step,
the answers come from rollups alone, and each project sees only its own data."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import delete, select

from aiscope import sketch
from aiscope.server import create_project
from aiscope.server.rollup import compact
from aiscope.server.tables import calls
from tests.server.harness import Running

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")
DAY0 = 1_767_225_600  # 2026-01-01T00:00:00Z
TOKENS = {
    "input": "gen_ai.usage.input_tokens",
    "output": "gen_ai.usage.output_tokens",
    "cache_read": "gen_ai.usage.cache_read.input_tokens",
}


def _send(url: str, n: int, seed: int = 3, headers: dict[str, str] | None = None) -> list[dict]:
    """``n`` GenAI spans over two days (some errors, some streamed), sent over OTLP."""
    rng = random.Random(seed)
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("ts")
    sent = []
    for i in range(n):
        model = MODELS[i % 3]
        start = DAY0 + rng.uniform(0, 2 * 86400)
        latency = rng.lognormvariate(6, 0.8)
        inp = rng.randint(10, 5000)
        attrs: dict[str, Any] = {
            "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
            "gen_ai.request.model": model,
            TOKENS["input"]: inp,
            TOKENS["output"]: rng.randint(1, 800),
            TOKENS["cache_read"]: rng.randint(0, inp),
            "aiscope.tag.feature": rng.choice(("search", "chat")),
            "aiscope.tag.team": rng.choice(("a", "b")),
        }
        ttft = rng.uniform(0.01, latency / 1000) if i % 2 else None
        if ttft is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
        span = tracer.start_span("chat", attributes=attrs, start_time=int(start * 1e9))
        error = rng.random() < 0.1
        if error:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", "timeout")
        span.end(end_time=int(start * 1e9) + int(latency * 1e6))
        sent.append({"start": start, "latency": latency, "ttft": ttft, "error": error, **attrs})
    provider.shutdown()
    return sent


@pytest.fixture
def workload(local_server: Running) -> list[dict]:
    return _send(local_server.url, 450)


def _get(url: str, path: str, **params: Any) -> httpx2.Response:
    return httpx2.get(f"{url}{path}", params=params, timeout=20)


def _ts(url: str, **params: Any) -> dict[str, Any]:
    r = _get(url, "/api/timeseries", **params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("step", [120, 900, 3600, 6 * 3600, 86400])
def test_counts_and_tokens_per_bucket_match_the_calls(
    local_server: Running, workload: list[dict], step: int
) -> None:
    url = local_server.url
    start, end = DAY0, DAY0 + 2 * 86400
    got_calls = _ts(url, metric="calls", group_by="model", start=start, end=end, step=step)
    assert got_calls["step"] == step and got_calls["start"] == start
    assert got_calls["timestamps"] == list(range(start, end, step))
    want: dict[tuple[str, int], int] = defaultdict(int)
    errors: dict[int, int] = defaultdict(int)
    tokens: dict[tuple[str, int], int] = defaultdict(int)
    for w in workload:
        i = int((w["start"] - start) // step)
        want[(w["gen_ai.request.model"], i)] += 1
        errors[i] += w["error"]
        for name, attr in TOKENS.items():
            tokens[(name, i)] += w[attr]
    for s in got_calls["series"]:
        assert s["values"] == [want[(s["key"], i)] for i in range(len(s["values"]))]
    assert {s["key"] for s in got_calls["series"]} == set(MODELS)
    got_errors = _ts(url, metric="errors", group_by="none", start=start, end=end, step=step)
    assert got_errors["series"][0]["values"] == [
        errors[i] for i in range(end // step - start // step)
    ]
    by_type = _ts(url, metric="tokens", group_by="type", start=start, end=end, step=step)
    series = {s["key"]: s["values"] for s in by_type["series"]}
    assert set(series) == {"input", "output", "cache_read", "cache_write", "reasoning"}
    for name in TOKENS:
        assert series[name] == [tokens[(name, i)] for i in range(len(series[name]))]
    assert sum(series["cache_write"]) == sum(series["reasoning"]) == 0


def test_cost_per_bucket_matches_the_stored_calls(
    local_server: Running, workload: list[dict]
) -> None:
    url, step = local_server.url, 3 * 3600
    got = _ts(url, metric="cost", group_by="feature", start=DAY0, end=DAY0 + 2 * 86400, step=step)
    with local_server.engine.connect() as conn:
        rows = conn.execute(select(calls.c.feature, calls.c.start_ts, calls.c.cost_usd)).all()
    want: dict[tuple[str, int], float] = defaultdict(float)
    for feature, ts, cost in rows:
        want[(feature, int((ts - DAY0) // step))] += cost
    assert {s["key"] for s in got["series"]} == {"search", "chat"}
    for s in got["series"]:
        for i, v in enumerate(s["values"]):
            assert v == pytest.approx(want[(s["key"], i)], rel=1e-9, abs=1e-12)
    assert got["unit"] == "usd" and sum(sum(s["values"]) for s in got["series"]) > 0


@pytest.mark.parametrize("metric", ["latency", "ttft"])
def test_percentiles_per_bucket_are_the_merged_sketches(
    local_server: Running, workload: list[dict], metric: str
) -> None:
    url, step = local_server.url, 4 * 3600
    params = {"start": DAY0, "end": DAY0 + 2 * 86400, "step": step, "q": [0.5, 0.99]}
    got = _ts(url, metric=metric, group_by="model", **params)
    assert {(s["key"], s["quantile"]) for s in got["series"]} == {
        (m, q) for m in MODELS for q in ("p50", "p99")
    }
    for s in got["series"]:
        buckets: list[dict[str, int]] = [{} for _ in s["values"]]
        for w in workload:
            value = w["latency"] if metric == "latency" else w["ttft"]
            if w["gen_ai.request.model"] == s["key"] and value is not None:
                ms = value if metric == "latency" else value * 1000
                sketch.add(buckets[int((w["start"] - DAY0) // step)], ms)
        q = 0.5 if s["quantile"] == "p50" else 0.99
        want = [sketch.quantiles(b, [q])[0] for b in buckets]
        assert [None if v is None else pytest.approx(v, rel=1e-9) for v in s["values"]] == want
        assert any(v is not None for v in s["values"])
    # the series come from the rollups: with every call deleted, the same answer
    with local_server.engine.begin() as conn:
        conn.execute(delete(calls))
    assert _ts(url, metric=metric, group_by="model", **params) == got


def _latency_buckets(workload: list[dict], model: str, step: int) -> list[dict[str, int]]:
    buckets: list[dict[str, int]] = [{} for _ in range(2 * 86400 // step)]
    for w in workload:
        if w["gen_ai.request.model"] == model:
            sketch.add(buckets[int((w["start"] - DAY0) // step)], w["latency"])
    return buckets


def test_cached_percentiles_follow_new_rows_and_compaction(
    local_server: Running, workload: list[dict]
) -> None:
    # buckets' percentiles are cached by the rollup rows they merge: a bucket that
    # gets rows must be recomputed, and compaction (rows replaced) changes nothing
    url, step = local_server.url, 4 * 3600
    params = {"metric": "latency", "start": DAY0, "end": DAY0 + 2 * 86400, "step": step}
    model = MODELS[0]

    def p95() -> list[float | None]:
        got = _ts(url, group_by="model", q=[0.95], **params)
        return next(s["values"] for s in got["series"] if s["key"] == model)

    def want(sent: list[dict]) -> list[float | None]:
        return [sketch.quantiles(b, [0.95])[0] for b in _latency_buckets(sent, model, step)]

    assert p95() == pytest.approx(want(workload), rel=1e-9)
    assert p95() == pytest.approx(want(workload), rel=1e-9)  # from the cache
    more = workload + _send(url, 300, seed=11)
    assert want(more) != want(workload)
    assert p95() == pytest.approx(want(more), rel=1e-9)
    while compact(local_server.engine):
        pass
    assert p95() == pytest.approx(want(more), rel=1e-9)


def test_ranges_not_on_the_grid_count_whole_minutes(
    local_server: Running, workload: list[dict]
) -> None:
    lo, hi = DAY0 + 5400.5, DAY0 + 86400 + 5 * 3600 + 7 * 60 + 1.2
    got = _ts(local_server.url, metric="calls", group_by="none", start=lo, end=hi, step=3600)
    assert got["start"] == DAY0 + 3600 and got["end"] >= hi
    want = sum(lo // 60 * 60 <= w["start"] < -(-hi // 60) * 60 for w in workload)
    assert sum(got["series"][0]["values"]) == want > 0
    auto = _ts(local_server.url, metric="calls", group_by="none", start=lo, end=hi)
    assert auto["step"] == 900 and len(auto["timestamps"]) <= 120  # a round step
    assert sum(auto["series"][0]["values"]) == want


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"metric": "speed"}, 422, "metric"),
        ({"group_by": "colour"}, 422, "group_by"),
        ({"metric": "cost", "group_by": "type"}, 400, "type"),
        ({"step": 90}, 400, "step"),
        ({"step": 30}, 422, "step"),
        ({"step": 60, "start": 0, "end": 1e9}, 400, "buckets"),
        ({"start": 10, "end": 5}, 400, "end"),
        ({"metric": "latency", "q": 1.5}, 400, "quantile"),
        ({"start": "nan"}, 400, "start"),
    ],
)
def test_bad_timeseries_queries_get_4xx_naming_the_problem(
    local_server: Running, params: dict[str, Any], status: int, words: str
) -> None:
    r = _get(local_server.url, "/api/timeseries", **params)
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])


def test_timeseries_refuses_thousands_of_quantiles_with_400(local_server: Running) -> None:
    """2,500 repeated ``q`` parameters once built a 112 MB answer; now a clear 400."""
    for path in ("/api/timeseries", "/api/latency"):
        r = httpx2.get(
            f"{local_server.url}{path}",
            params=[("metric", "latency")] + [("q", 0.5 + i / 10_000) for i in range(2500)],
            timeout=20,
        )
        assert r.status_code == 400, r.text
        assert f"at most {sketch.MAX_QUANTILES} quantiles" in r.json()["detail"]
        again = _get(local_server.url, path, metric="latency", q=[0.5, 0.5])
        assert again.status_code == 400 and "once" in again.json()["detail"]


def test_timeseries_answers_at_most_limit_series_and_counts_the_rest(
    local_server: Running, workload: list[dict]
) -> None:
    everything = _ts(local_server.url, metric="calls", start=DAY0, end=DAY0 + 2 * 86400)
    assert len(everything["series"]) == 3 and everything["more_series"] == 0
    top = _ts(local_server.url, metric="calls", start=DAY0, end=DAY0 + 2 * 86400, limit=2)
    assert [s["key"] for s in top["series"]] == [s["key"] for s in everything["series"][:2]]
    assert top["more_series"] == 1
    lat = _ts(local_server.url, metric="latency", start=DAY0, end=DAY0 + 2 * 86400, limit=1, q=0.5)
    calls_of = {m: sum(w["gen_ai.request.model"] == m for w in workload) for m in MODELS}
    by_calls = min(MODELS, key=lambda m: (-calls_of[m], m))  # most calls, ties by name
    assert [s["key"] for s in lat["series"]] == [by_calls] and lat["more_series"] == 2
    too_many = _get(local_server.url, "/api/timeseries", limit=1000)
    assert too_many.status_code == 422 and "limit" in too_many.text


def test_feedback_report(local_server: Running, workload: list[dict]) -> None:
    url = local_server.url
    with local_server.engine.connect() as conn:
        rows = conn.execute(select(calls.c.trace_id, calls.c.span_id, calls.c.model)).all()
    # a score naming its call by trace id alone (one call per trace here)
    by_trace_model = rows[-1][2]
    by_trace = {"name": "by_trace", "score": 0.5, "trace_id": rows[-1][0]}
    assert httpx2.post(f"{url}/api/feedback", json=by_trace, timeout=10).status_code == 201
    scores: dict[str, list[float]] = defaultdict(list)
    for i, (trace_id, span_id, model) in enumerate(rows[:60]):
        score = (i % 5) / 4
        body = {"name": "helpful", "score": score, "trace_id": trace_id, "span_id": span_id}
        assert httpx2.post(f"{url}/api/feedback", json=body, timeout=10).status_code == 201
        scores[model].append(score)
    unlinked = {"name": "thumbs", "score": 1, "request_id": "r-1", "comment": "<b>great</b>"}
    assert httpx2.post(f"{url}/api/feedback", json=unlinked, timeout=10).status_code == 201

    got = _get(url, "/api/feedback", limit=5).json()  # default range: the last hour
    assert [i["name"] for i in got["items"]] == [
        "thumbs",
        "helpful",
        "helpful",
        "helpful",
        "helpful",
    ]
    assert got["items"][0]["comment"] == "<b>great</b>"
    stamps = [i["created_ts"] for i in got["items"]]
    assert stamps == sorted(stamps, reverse=True)
    by_name = {r["name"]: r for r in got["by_name"]}
    assert by_name["helpful"]["count"] == 60
    everything = [s for v in scores.values() for s in v]
    assert by_name["helpful"]["avg_score"] == pytest.approx(sum(everything) / 60)
    assert (by_name["helpful"]["min_score"], by_name["helpful"]["max_score"]) == (0.0, 1.0)
    assert by_name["thumbs"]["count"] == 1
    by_model = {r["model"]: r for r in got["by_model"] if r["name"] == "helpful"}
    assert "thumbs" not in {r["name"] for r in got["by_model"]}  # names no stored call
    assert set(by_model) == set(scores)
    for model, values in scores.items():
        assert by_model[model]["count"] == len(values)
        assert by_model[model]["avg_score"] == pytest.approx(sum(values) / len(values))
    assert sum(r["count"] for r in got["by_feature"] if r["name"] == "helpful") == 60
    assert [(r["model"], r["count"]) for r in got["by_model"] if r["name"] == "by_trace"] == [
        (by_trace_model, 1)
    ]
    series = {s["key"]: s["values"] for s in got["series"]}
    assert len(got["timestamps"]) == len(series["helpful"])
    filled = [v for v in series["helpful"] if v is not None]
    assert filled and all(0 <= v <= 1 for v in filled)
    only = _get(url, "/api/feedback", name="thumbs").json()
    assert [i["name"] for i in only["items"]] == ["thumbs"]
    assert _get(url, "/api/feedback", start=DAY0, end=DAY0 + 60).json()["items"] == []
    assert _get(url, "/api/feedback", limit=0).status_code == 422
    assert _get(url, "/api/feedback", step=61).status_code == 400


def test_each_project_sees_only_its_own_series(server: Running) -> None:
    a = create_project(server.engine, "a")
    b = create_project(server.engine, "b")
    sent_a = _send(server.url, 30, seed=1, headers={"authorization": f"Bearer {a.public_key}"})
    _send(server.url, 20, seed=2, headers={"authorization": f"Bearer {b.public_key}"})
    params = {"metric": "calls", "group_by": "none", "start": DAY0, "end": DAY0 + 2 * 86400}
    for keys, n in ((a, len(sent_a)), (b, 20)):
        r = httpx2.get(
            f"{server.url}/api/timeseries",
            params=params,
            headers={"authorization": f"Bearer {keys.secret_key}"},
            timeout=10,
        )
        assert sum(r.json()["series"][0]["values"]) == n
    fb = {"name": "n", "score": 1, "request_id": "x"}
    pub = {"authorization": f"Bearer {a.public_key}"}
    assert httpx2.post(f"{server.url}/api/feedback", json=fb, headers=pub).status_code == 201
    for keys, n in ((a, 1), (b, 0)):
        got = httpx2.get(
            f"{server.url}/api/feedback",
            headers={"authorization": f"Bearer {keys.secret_key}"},
            timeout=10,
        ).json()
        assert len(got["items"]) == n
    # reads need the secret key
    assert httpx2.get(f"{server.url}/api/timeseries", headers=pub).status_code == 403
    assert httpx2.get(f"{server.url}/api/feedback").status_code == 401
