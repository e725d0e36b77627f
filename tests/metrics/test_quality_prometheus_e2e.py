"""Issue 13's quality acceptance, end to end: with only ``aiscope.configure(metrics=m,
feedback=FeedbackCollector())``, feedback on AiClient and instrumented openai SDK calls
reaches ``m``, a real Prometheus scrapes ``m`` and answers every PromQL expression of
the Grafana dashboard's Quality row (taken from the generated dashboard) with the
values the scores given make."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

import aiscope
from aiscope import AiClient, FeedbackCollector, MetricsCollector
from aiscope.dashboards import dashboard_queries, expand_variables, grafana_dashboard
from aiscope.testing import MockProvider
from tests.metrics.test_prometheus_e2e import (
    SCRAPE_JOB,
    PromServer,
    _wait_for_scrape_after,
    run_prometheus,
)
from tests.support.sdk_support import Records

pytestmark = pytest.mark.prometheus

#: the feedback of one round: (capture path, feature, rating or None, judge's score or None)
ROUND = [
    ("client", "search", 5, None),
    ("sdk", "chat", 3, None),
    ("sdk", "chat", None, 0.25),  # an LLM judge's score on the same call
]
MODELS = {"client": "gpt-4o", "sdk": "gpt-4o-mini"}
RATING_SCALE = 5


def _quality_row() -> list[tuple[str, str]]:
    """(panel title, PromQL) of the generated dashboard's Quality row."""
    panels, row = [], None
    for p in grafana_dashboard()["panels"]:
        if p["type"] == "row":
            row = p["title"]
        elif row == "Quality":
            panels.append(p)
    return list(dashboard_queries({"panels": panels}))


def _one_round(mock: MockProvider, calls: Records, fb: FeedbackCollector) -> None:
    """One AiClient and one instrumented openai SDK call, then the round's feedback on
    them by request id (the same label sets every round, so every series has a sample
    before and after the round)."""
    client = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("k")
        .base_url(mock.base_url("openai"))
        .build()
    )
    sdk = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
    ids: dict[str, str] = {}
    for path, feature, _, _ in ROUND:
        if path in ids:
            continue
        with aiscope.tags(feature=feature):
            if path == "client":
                _, stats = client.chat().user("hi").execute_with_stats_sync()
                ids[path] = stats.request_id
            else:
                sdk.chat.completions.create(
                    model=MODELS[path], messages=[{"role": "user", "content": "hi"}]
                )
                ids[path] = calls.items[-1].stats().request_id
    client.close()
    for path, _, rating, score in ROUND:
        if rating is not None:
            fb.record(request_id=ids[path], rating=rating)
        else:
            fb.record(request_id=ids[path], score=score, source="llm-judge")


def _expected() -> dict[str, dict[str, float]]:
    """What each Quality panel must answer over one round: mean scores overall, by
    feature and by model, and the number of scores by source."""
    scores = [
        (MODELS[path], feature, "human" if r is not None else "llm-judge",
         (r - 1) / (RATING_SCALE - 1) if r is not None else s)
        for path, feature, r, s in ROUND
    ]  # fmt: skip

    def mean_by(i: int | None) -> dict[str, float]:
        groups: dict[str, list[float]] = {}
        for row in scores:
            groups.setdefault("" if i is None else str(row[i]), []).append(float(row[3]))
        return {k: sum(v) / len(v) for k, v in groups.items()}

    by_source: dict[str, float] = {}
    for _, _, source, _ in scores:
        by_source[source] = by_source.get(source, 0) + 1
    return {
        "Quality score over time": mean_by(None),
        "Quality by feature": mean_by(1),
        "Quality by model": mean_by(0),
        "Scores by source": by_source,
    }


def _last_scrape_ms(prom: PromServer) -> int:
    (r,) = prom.query(f'timestamp(up{{job="{SCRAPE_JOB}"}})')
    return round(float(r["value"][1]) * 1000)


def _query_at(prom: PromServer, promql: str, at_ms: int) -> dict[str, float]:
    """An instant query at ``at_ms`` as {the one label's value, or "": sample value}."""
    when = datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
    data = prom.get("/api/v1/query", query=promql, time=when.replace("+00:00", "Z"))
    assert data["status"] == "success", data
    out = {}
    for r in data["data"]["result"]:
        labels = list(r["metric"].values())
        assert len(labels) <= 1, r
        out[labels[0] if labels else ""] = float(r["value"][1])
    return out


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MetricsCollector, Any, Any]]:
    """``aiscope.configure(metrics=m, feedback=FeedbackCollector())`` (and a sink that
    keeps the records, for the SDK calls' request ids), the openai SDK instrumented,
    and ``m`` served on a free loopback port."""
    m, fb, calls = MetricsCollector(), FeedbackCollector(), Records()
    # configure() replaces the process-wide scope: the test's own is put back after
    monkeypatch.setattr("aiscope.scope._default_scope", aiscope.current_scope())
    aiscope.configure(metrics=m, feedback=fb, sinks=[calls])
    aiscope.instrument()
    server, port = m.serve(port=0, addr="127.0.0.1")
    try:
        yield m, fb, (calls, port)
    finally:
        aiscope.uninstrument()
        server.shutdown()
        server.server_close()


def test_prometheus_answers_the_dashboards_quality_row_from_feedback(
    configured: tuple[MetricsCollector, FeedbackCollector, tuple[Records, int]],
    mock: MockProvider,
    tmp_path: Path,
) -> None:
    m, fb, (calls, port) = configured
    mock.reset()
    queries = _quality_row()
    want = _expected()
    assert {title for title, _ in queries} == set(want)  # a new Quality panel needs a check
    with run_prometheus(tmp_path, port) as prom:
        _one_round(mock, calls, fb)
        _wait_for_scrape_after(prom, time.time())
        first = _last_scrape_ms(prom)  # every series holds the first round here
        _one_round(mock, calls, fb)
        _wait_for_scrape_after(prom, time.time())
        last = _last_scrape_ms(prom)  # and both rounds here
        # the range [first, last] ends on two scrapes: rate() and increase() see exactly
        # the second round (Prometheus extrapolates nothing past samples on its edges)
        window = f"{last - first}ms"
        for title, expr in queries:
            promql = expand_variables(expr, rate_interval=window, range_=window)
            got = _query_at(prom, promql, last)
            assert got.keys() == want[title].keys(), (title, promql, got)
            for key, value in want[title].items():
                assert math.isclose(got[key], value, rel_tol=1e-9), (title, key, got)
    text = m.export_prometheus()
    assert 'ai_lib_quality_score_count{feature="search",model="gpt-4o",source="human"} 2.0' in text
