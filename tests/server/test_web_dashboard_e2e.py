"""The web dashboard in headless Chromium (Debian's, driven by Playwright) over a real
workload: AiClient calls to the mock provider, traced by aiscope's Tracer and sent to
the server with the official OTLP exporter, plus feedback over HTTP.

The page must show the per-model totals the client recorded, plot charts, open a
call's trace with its span tree, take a secret key when keys are required, and
show stored strings as text (never as markup). Screenshots go to
``$AISCOPE_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from sqlalchemy import Engine, func, select

from aiscope.client import AiClient, AiClientError
from aiscope.resilience import RetryPolicy
from aiscope.server import Settings, create_project
from aiscope.server.tables import calls
from aiscope.testing import MockProvider
from aiscope.tracing import InMemoryExporter, Tracer
from tests.server.harness import Running, run_server

CHROMIUM = os.environ.get("AISCOPE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MODELS = (("openai/gpt-4o", "openai"), ("anthropic/claude-sonnet-4-5", "anthropic"))
FEATURES = (("search", "growth"), ("summarize", "platform"), ("chat", "support"))


def _artifacts() -> Path:
    path = Path(os.environ.get("AISCOPE_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no Playwright browser download)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI must run the browser test (apt chromium)")
        pytest.skip(f"the dashboard test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _workload(url: str, n: int = 60) -> InMemoryExporter:
    """``n`` real AiClient calls (some streamed, some failing) inside request spans,
    exported over OTLP to ``url``; returns the spans the client side recorded."""
    rng = random.Random(5)
    memory = InMemoryExporter()
    tracer = Tracer(
        service_name="e2e-shop",
        exporter=[OTLPSpanExporter(endpoint=f"{url}/v1/traces"), memory],
        schedule_delay_s=0.2,
    )
    with MockProvider(api_key="k") as mock:
        clients = [
            AiClient.builder()
            .model(spec)
            .api_key("k")
            .base_url(mock.base_url(base))
            .tracer(tracer)
            .retry(RetryPolicy(max_retries=0))
            .build()
            for spec, base in MODELS
        ]
        for i in range(n):
            client = clients[i % 2]
            feature, team = FEATURES[rng.randrange(3)]
            mock.behave(reply_tokens=rng.randint(20, 200), cache_read_tokens=rng.choice((0, 8)))
            if i % 7 == 6:
                mock.fail_next(500)
            chat = (
                client.chat()
                .user("Explain p95 latency. " + "context " * rng.randint(10, 80))
                .max_tokens(256)
                .tags(feature=feature, team=team)
            )
            with tracer.span("handle_request", attributes={"route": f"/{feature}"}):
                try:
                    if i % 3 == 2:
                        list(chat.stream_sync())
                    else:
                        chat.execute_sync()
                except AiClientError:
                    pass
        for c in clients:
            c.close()
    tracer.shutdown()
    return memory


def _expected(memory: InMemoryExporter) -> dict[str, dict[str, float]]:
    """Calls and cost per model, from the spans the client recorded."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0, "cost": 0.0})
    for span in memory.spans():
        attrs = span.attributes or {}
        if "gen_ai.request.model" in attrs:
            row = out[str(attrs["gen_ai.request.model"])]
            row["calls"] += 1
            row["cost"] += float(attrs.get("aiscope.cost_usd", 0.0))  # type: ignore[arg-type]
    return dict(out)


def _send_feedback(url: str, memory: InMemoryExporter) -> int:
    sent = 0
    for span in memory.spans():
        attrs = span.attributes or {}
        if "gen_ai.request.model" in attrs and span.status.is_ok:
            ctx = span.get_span_context()
            r = httpx2.post(
                f"{url}/api/feedback",
                json={
                    "name": "helpfulness",
                    "score": 0.9 if "gpt" in str(attrs["gen_ai.request.model"]) else 0.4,
                    "trace_id": format(ctx.trace_id, "032x"),
                    "span_id": format(ctx.span_id, "016x"),
                },
                timeout=10,
            )
            assert r.status_code == 201, r.text
            sent += 1
    return sent


def _render(page: Any, action: Callable[[], object]) -> None:
    """Do ``action`` and wait until the page has rendered anew (selectors only: the page's
    Content-Security-Policy forbids the string evaluation wait_for_function uses)."""
    before = page.get_attribute("body", "data-rendered") if page.url != "about:blank" else None
    action()
    done = "body[data-state=ready][data-rendered]"
    if before is not None:
        done += f":not([data-rendered='{before}'])"
    page.wait_for_selector(done, state="attached", timeout=20_000)


def _shot(page: Any, name: str) -> Path:
    path = _artifacts() / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_dashboard_shows_the_workload(browser: Any, local_server: Running, db_url: str) -> None:
    memory = _workload(local_server.url)
    want = _expected(memory)
    assert set(want) == {"gpt-4o", "claude-sonnet-4-5"}
    assert _send_feedback(local_server.url, memory) > 0
    _check_db(local_server.engine, want)

    backend = db_url.split(":", 1)[0]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _render(page, lambda: page.goto(f"{local_server.url}/#/overview"))

    # the per-model totals
    table = page.locator("#cost-by-model")
    for model, row in want.items():
        cells = table.locator(f"tr[data-model='{model}'] td")
        texts = dict(zip(cells.evaluate_all("cs => cs.map(c => c.dataset.col)"),
                         cells.all_inner_texts(), strict=True))  # fmt: skip
        assert texts["model"] == model
        assert texts["calls"] == str(row["calls"])
        assert texts["cost"] == f"${row['cost']:.6f}"
    total_calls = sum(int(r["calls"]) for r in want.values())
    assert page.locator("#total-calls .value").inner_text() == str(total_calls)
    total_cost = sum(r["cost"] for r in want.values())
    assert page.locator("#total-spend .value").inner_text() == f"${total_cost:.6f}"

    # charts plot the data: each model's spend line has points
    for chart in ("#chart-cost", "#chart-latency", "#chart-tokens", "#chart-requests"):
        paths = page.locator(f"{chart} svg path.series")
        assert paths.count() > 0, chart
        points = [int(p) for p in paths.evaluate_all("ps => ps.map(p => p.dataset.points)")]
        assert sum(points) > 0, chart
        assert page.locator(f"{chart} svg circle.point").count() == sum(points)
    cost_lines = page.locator("#chart-cost svg path.series")
    assert set(cost_lines.evaluate_all("ps => ps.map(p => p.dataset.series)")) == set(want)
    assert page.locator("#chart-quality svg path.series").count() == 1  # "helpfulness"
    assert "no alerts" in page.locator("#active-alerts").inner_text()  # endpoint absent: 404
    _shot(page, f"dashboard-overview-{backend}.png")

    # the time range drives the queries: a custom range before the workload is empty
    _render(page, lambda: page.select_option("#range", "custom"))
    page.fill("#range-start", "2020-01-01T00:00")
    page.fill("#range-end", "2020-01-02T00:00")
    _render(page, lambda: page.click("#refresh"))
    assert page.locator("#cost-by-model").count() == 0
    assert page.locator("#total-calls .value").inner_text() == "0"
    _render(page, lambda: page.select_option("#range", "900"))  # the last 15 minutes
    assert page.locator("#total-calls .value").inner_text() == str(total_calls)

    # the calls table, paged and filtered, and a call's trace
    _render(page, lambda: page.goto(f"{local_server.url}/#/calls"))
    rows = page.locator("#calls-table tbody tr")
    assert rows.count() == 50 and page.locator("#newer").is_disabled()
    first_page = rows.evaluate_all("rs => rs.map(r => r.dataset.spanId)")
    _render(page, lambda: page.click("#older"))
    assert rows.count() == total_calls - 50 and page.locator("#older").is_disabled()
    second_page = rows.evaluate_all("rs => rs.map(r => r.dataset.spanId)")
    assert len(set(first_page) | set(second_page)) == total_calls
    _render(page, lambda: page.click("#newer"))
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.spanId)") == first_page
    page.fill("#call-filters input[name=model]", "claude-sonnet-4-5")
    _render(page, lambda: page.click("#call-filters button[type=submit]"))
    assert rows.count() == want["claude-sonnet-4-5"]["calls"]
    models = page.locator("#calls-table td[data-col=model]").all_inner_texts()
    assert set(models) == {"claude-sonnet-4-5"}
    _shot(page, f"dashboard-calls-{backend}.png")
    span_id = rows.first.get_attribute("data-span-id")
    trace_id = rows.first.get_attribute("data-trace-id")
    _render(page, rows.first.click)
    assert page.url.endswith(f"#/trace/{trace_id}/{span_id}")
    tree = page.locator("#trace-tree tbody tr.span-row")
    names = tree.locator("td.span-name").all_inner_texts()
    depths = [int(d) for d in tree.evaluate_all("rs => rs.map(r => r.dataset.depth)")]
    assert names[0] == "handle_request" and depths[0] == 0
    assert "chat claude-sonnet-4-5" in names
    assert depths[names.index("chat claude-sonnet-4-5")] == 1  # the call under its request
    selected = page.locator("#trace-tree tr.selected")
    assert selected.get_attribute("data-span-id") == span_id
    assert "claude-sonnet-4-5" in page.locator("#span-details").inner_text()
    _shot(page, f"dashboard-trace-{backend}.png")

    _render(page, lambda: page.goto(f"{local_server.url}/#/feedback"))
    assert page.locator("#feedback-table tbody tr").count() > 0

    # alerts and budgets on the stored data: a budget the workload overspent and a rule
    # the workload's errors fire, both shown as the server computes them
    budget = {"name": "tight", "limit_usd": round(total_cost / 2, 6), "period": "total"}
    rule = {"name": "errors_seen", "severity": "warning", "signal": "error_rate",
            "comparison": ">", "threshold": 0.0, "window": "1h"}  # fmt: skip
    assert httpx2.post(f"{local_server.url}/api/budgets", json=budget).status_code == 201
    assert httpx2.post(f"{local_server.url}/api/alert-rules", json=rule).status_code == 201
    alerts = httpx2.get(f"{local_server.url}/api/alerts").json()["alerts"]
    assert {"errors_seen", "budget_tight"} <= {a["name"] for a in alerts}
    _render(page, lambda: page.goto(f"{local_server.url}/#/alerts"))
    shown = page.locator("#alerts-table td[data-col=name]").all_inner_texts()
    assert set(shown) == {a["name"] for a in alerts}
    cells = page.locator("#budgets-table tbody tr").first.locator("td")
    by_col = dict(zip(cells.evaluate_all("cs => cs.map(c => c.dataset.col)"),
                      cells.all_inner_texts(), strict=True))  # fmt: skip
    assert by_col["name"] == "tight" and by_col["spent"] == f"${total_cost:.6f}"
    _shot(page, f"dashboard-alerts-{backend}.png")
    assert errors == []
    page.close()


def _check_db(engine: Engine, want: dict[str, dict[str, float]]) -> None:
    """The server stored what the client recorded (so the page is checked against both)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(calls.c.model, func.count(), func.sum(calls.c.cost_usd)).group_by(calls.c.model)
        ).all()
    assert {r[0]: r[1] for r in rows} == {m: r["calls"] for m, r in want.items()}
    for model, _n, cost in rows:
        assert float(cost) == pytest.approx(want[model]["cost"], rel=1e-9)


XSS = (
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '"><svg onload="window.__xss=3">',
)


def _hostile_span(i: int, start_ns: int) -> dict[str, Any]:
    def s(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    return {
        "traceId": "ab" * 16,
        "spanId": f"{i + 1:016x}",
        "parentSpanId": "" if i == 0 else f"{1:016x}",
        "name": XSS[i % 3],
        "startTimeUnixNano": start_ns + i * 1000,
        "endTimeUnixNano": start_ns + 200_000_000,
        "attributes": []
        if i == 0
        else [
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", XSS[i % 3]),
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 10}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 5}},
            s("aiscope.tag.feature", XSS[(i + 1) % 3]),
            s("aiscope.tag.team", XSS[(i + 2) % 3]),
            {"key": "aiscope.cost_usd", "value": {"doubleValue": 0.001}},
        ],
    }


def test_keys_and_hostile_strings(browser: Any, engine: Engine, tmp_path: Path) -> None:
    """With keys required the page asks for the secret key; stored markup shows as text."""
    keys = create_project(engine, "shop")
    for running in run_server(Settings(engine=engine)):
        _keys_and_hostile_strings(browser, running, keys.public_key, keys.secret_key)


def _keys_and_hostile_strings(browser: Any, server: Running, public: str, secret: str) -> None:
    now = time.time_ns()
    body = {
        "resourceSpans": [{"scopeSpans": [{"spans": [_hostile_span(i, now) for i in range(4)]}]}]
    }
    r = httpx2.post(
        f"{server.url}/v1/traces", json=body, headers={"authorization": f"Bearer {public}"}
    )
    assert r.status_code == 200 and "rejected" not in r.text, r.text
    fb = {"name": XSS[1], "score": 1, "comment": XSS[0], "trace_id": "ab" * 16}
    r = httpx2.post(
        f"{server.url}/api/feedback", json=fb, headers={"authorization": f"Bearer {public}"}
    )
    assert r.status_code == 201, r.text
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _render(page, lambda: page.goto(f"{server.url}/"))
    assert "secret key" in page.locator("#status").inner_text()  # 401 without a key
    page.fill("#key", secret)
    _render(page, lambda: page.click("#key-form button[type=submit]"))
    assert page.locator("#status").inner_text() == ""
    assert page.evaluate("sessionStorage.getItem('aiscope.key')") == secret

    shown = page.locator("#cost-by-model td[data-col=model]").all_inner_texts()
    assert sorted(shown) == sorted(XSS)  # the markup, shown as text
    _shot(page, "dashboard-hostile-overview.png")
    _render(page, lambda: page.goto(f"{server.url}/#/calls"))
    assert sorted(page.locator("#calls-table td[data-col=feature]").all_inner_texts()) == sorted(
        XSS
    )
    _render(page, lambda: page.goto(f"{server.url}/#/trace/{'ab' * 16}"))
    names = page.locator("#trace-tree td.span-name").all_inner_texts()
    assert sorted(names) == sorted([XSS[0], *XSS])
    _shot(page, "dashboard-hostile-trace.png")
    _render(page, lambda: page.goto(f"{server.url}/#/feedback"))
    assert page.locator("#feedback-table td[data-col=comment]").all_inner_texts() == [XSS[0]]
    assert page.locator("#feedback-table td[data-col=name]").all_inner_texts() == [XSS[1]]
    # nothing was parsed as markup, let alone run
    assert page.locator("#view img, #view script, #view svg[onload]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    page.close()
