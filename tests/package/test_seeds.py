"""The seed documents' Python snippets run against aiscope with only the import changed.

The snippets are read from ``../shared/seeds`` (beside the repository, as in CI), not
copied here, so a changed seed is noticed. Where a snippet drives the seed project's
own engine (``RLM.from_openai(...)``, ``rlm.run(...)``), aiscope's AiClient stands in,
taking the same ``tracer=``/``cost_tracker=``. Providers are aiscope's mock over real
HTTP, reached through the ``OPENAI_BASE_URL`` the OpenAI SDK also honours.
"""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiscope
from aiscope.testing import MockProvider
from tests.conftest import IN_CI

# AISCOPE_SEEDS points elsewhere (e.g. from a git worktree, which is not beside shared/).
SEEDS = Path(
    os.environ.get("AISCOPE_SEEDS") or Path(__file__).resolve().parents[3] / "shared" / "seeds"
)
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(needle: str) -> list[str]:
    if not SEEDS.is_dir():
        if IN_CI:
            pytest.fail(f"seed documents not found at {SEEDS}")
        pytest.skip(f"seed documents not found at {SEEDS}")
    found = []
    for path in sorted(SEEDS.glob("*.txt")):
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            if needle in block:
                found.append(block)
    assert found, f"no seed snippet mentions {needle!r}"
    return found


def _port(code: str) -> str:
    """Only the import changes."""
    code = re.sub(
        r"from (ai_lib_python\.telemetry|rlm_toolkit\.observability) import",
        "from aiscope import",
        code,
    )
    return code.replace("from rlm_toolkit import RLM", "from seed_engine import RLM")


class _Result:
    def __init__(self, text: str) -> None:
        self.final_answer = text


class RLM:
    """The seed engine's façade over aiscope's AiClient."""

    def __init__(self, client: aiscope.AiClient) -> None:
        self.client = client

    @classmethod
    def from_openai(cls, model: str, **sinks: Any) -> RLM:
        builder = aiscope.AiClient.builder().model(f"openai/{model}")
        for name, sink in sinks.items():
            getattr(builder, name)(sink)  # tracer=, cost_tracker=, metrics=
        return cls(builder.build())

    def run(self, prompt: str, instruction: str | None = None) -> _Result:
        chat = self.client.chat()
        if instruction:
            chat = chat.system(instruction)
        return _Result(chat.user(prompt).execute_sync().text)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockProvider]:
    import sys
    import types

    with MockProvider() as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.base_url("openai"))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-seed-test-0000")
        engine = types.ModuleType("seed_engine")
        engine.RLM = RLM  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "seed_engine", engine)
        yield mock
    aiscope.configure()


def _run(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    code = _port(code)
    if "await " in code:
        wrapped = (
            "async def __seed__():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
        )
        exec(compile(wrapped, "<seed>", "exec"), namespace)
        namespace.update(asyncio.run(namespace["__seed__"]()))
    else:
        exec(compile(code, "<seed>", "exec"), namespace)
    return namespace


def test_metrics_collector_snippet(provider: MockProvider) -> None:
    (block,) = {b for b in _blocks("MetricsCollector()")}
    ns: dict[str, Any] = {"AiClient": aiscope.AiClient}
    # "After some requests..." — make some through the client the snippet built.
    block = block.replace("# After some requests...", "await client.chat().user('Hello').execute()")
    ns = _run(block, ns)
    text = ns["prometheus_text"]
    for name in ("ai_lib_requests_total", "ai_lib_request_duration_seconds", "ai_lib_tokens_total"):
        assert name in text
    assert (
        'ai_lib_requests_total{feature="",model="gpt-4o",provider="openai",status="ok",team=""} 1.0'
        in text
    )
    assert len(provider.requests) == 1


def test_signals_snippet(provider: MockProvider, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = {b for b in _blocks("signals_snapshot()")}
    client = aiscope.AiClient.from_model("openai/gpt-4o")
    client.chat().user("hi").execute_sync()
    _run(block, {"client": client})
    out = capsys.readouterr().out
    assert "Circuit: closed" in out and "Inflight: 0" in out


def test_cost_tracker_budget_snippet(
    provider: MockProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    block = next(b for b in _blocks("CostTracker(") if "budget_usd=10.0" in b)
    # Each mock call costs a few hundred-thousandths of a dollar; a $10 budget would take
    # forever to approach, so the check is that all 100 run and the report adds up.
    ns = _run(block, {"RLM": RLM})
    tracker = ns["tracker"]
    report = tracker.get_report()
    assert report.call_count == 100 and len(provider.requests) == 100
    assert report.total_cost == pytest.approx(sum(report.by_model.values()))
    assert "Всего потрачено: $" in capsys.readouterr().out


def test_cost_tracker_budget_snippet_stops_near_the_limit(provider: MockProvider) -> None:
    block = next(b for b in _blocks("CostTracker(") if "budget_usd=10.0" in b)
    # Same snippet with a budget the loop reaches: it warns and breaks at 80 %.
    provider.behave(reply_tokens=2000)
    ns = _run(block.replace("budget_usd=10.0", "budget_usd=0.25"), {"RLM": RLM})
    tracker = ns["tracker"]
    assert tracker.is_near_limit() and not tracker.is_over_budget
    assert 0.2 <= tracker.get_report().total_cost < 0.25
    assert ns["i"] < 99


def test_track_operation_snippet(
    provider: MockProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    block = next(b for b in _blocks('tracker.track("heavy_analysis")'))
    tracker = aiscope.CostTracker(budget_usd=10.0)
    rlm = RLM.from_openai("gpt-4o", cost_tracker=tracker)
    _run(block, {"tracker": tracker, "rlm": rlm, "huge_document": "lorem ipsum " * 500})
    assert tracker.get_operation_cost("heavy_analysis") > 0
    assert tracker.get_operation_cost("heavy_analysis") == tracker.get_report().total_cost
    assert "Стоимость анализа: $" in capsys.readouterr().out


def test_distributed_tracing_snippet(provider: MockProvider) -> None:
    """``Tracer(service_name="my-app", endpoint="http://jaeger:4317")`` builds a gRPC OTLP
    exporter (jaeger is unreachable here: export fails in the background, never in
    the call), and the client built with ``.tracer(tracer)`` traces its calls."""
    import time

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    (block,) = {b for b in _blocks('endpoint="http://jaeger:4317"')}
    ns = _run(block, {"AiClient": aiscope.AiClient})
    tracer, client = ns["tracer"], ns["client"]
    (proc,) = tracer.processors
    assert isinstance(proc.exporter, OTLPSpanExporter)
    response = client.chat().user("Hello").execute_sync()
    assert response.text and len(provider.requests) == 1
    assert proc.queued + proc.exported >= 1
    t0 = time.monotonic()
    tracer.shutdown(timeout=2)
    assert time.monotonic() - t0 < 3


def test_console_tracer_snippet(provider: MockProvider, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = {b for b in _blocks("ConsoleExporter(show_attributes=True)")}
    ns = _run(block, {})
    assert len(provider.requests) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("[SPAN] chat gpt-4o ("))
    assert re.fullmatch(r"\[SPAN\] chat gpt-4o \(\d+\.\d\ds\)", lines[head])
    attrs = []
    for line in lines[head + 1 :]:
        if not line.startswith("  ├─ ") and not line.startswith("  └─ "):
            break
        attrs.append(line)
    assert attrs[-1].startswith("  └─ ") and all(a.startswith("  ├─ ") for a in attrs[:-1])
    shown = dict(a[5:].split(": ", 1) for a in attrs)
    assert shown["gen_ai.request.model"] == "gpt-4o"
    assert int(shown["gen_ai.usage.input_tokens"]) > 0
    assert int(shown["gen_ai.usage.output_tokens"]) > 0
    ns["tracer"].shutdown(timeout=1)


def test_langfuse_snippet(provider: MockProvider) -> None:
    (block,) = {b for b in _blocks("LangfuseExporter(\n")}
    ns = _run(block, {"Tracer": aiscope.Tracer, "RLM": RLM})
    exporter, tracer = ns["exporter"], ns["tracer"]
    assert exporter.endpoint == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert tracer.service_name == "production-api"
    assert ns["rlm"].client.scope.tracer is tracer
    tracer.shutdown(timeout=1)


def test_custom_spans_snippet(provider: MockProvider) -> None:
    (block,) = {b for b in _blocks('tracer.span("data_pipeline")')}
    mem = aiscope.InMemoryExporter()
    tracer = aiscope.Tracer(service_name="seed", exporter=mem)
    saved: list[object] = []
    docs = ["first document", "second document"]
    ns = _run(
        block,
        {
            "tracer": tracer,
            "rlm": RLM.from_openai("gpt-4o", tracer=tracer),
            "load_all_documents": lambda: docs,
            "save_to_database": saved.append,
            "results": ["r"],
        },
    )
    assert saved == [["r"]] and ns["result"].final_answer
    spans = {s.name: s for s in mem.spans()}
    root = spans["data_pipeline"]
    for name in ("load_documents", "process", "save_results"):
        assert spans[name].parent.span_id == root.context.span_id
    assert spans["load_documents"].attributes["doc_count"] == 2
    assert spans["process"].attributes["processed"] is True
    calls = mem.spans("chat gpt-4o")
    assert len(calls) == 2 and len(provider.requests) == 2
    assert all(c.parent.span_id == spans["process"].context.span_id for c in calls)
    tracer.shutdown(timeout=1)


def test_health_checker_snippet(provider: MockProvider, capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = {b for b in _blocks("HealthChecker()")}
    _run(block, {})
    out = capsys.readouterr().out
    assert "Healthy: True" in out
    assert "'sinks': {'status': 'healthy'" in out


def test_feedback_collector_snippet(provider: MockProvider) -> None:
    (block,) = {b for b in _blocks("FeedbackCollector()")}
    metrics = aiscope.MetricsCollector()
    # "After getting a response": a real call, made while the snippet's collector is
    # in the scope (the snippet creates it first, then the call, then the feedback).
    before, after = block.split("# After getting a response")
    ns = _run(before, {})
    client = aiscope.AiClient("openai/gpt-4o", metrics=metrics, feedback=ns["feedback"])
    _, stats = client.chat().user("Hello").execute_with_stats_sync()
    ns["stats"] = stats
    _run(after, ns)
    (fb,) = ns["feedback"].feedback()
    assert fb.request_id == stats.request_id and fb.joined
    assert (fb.model, fb.provider, fb.rating, fb.score) == ("gpt-4o", "openai", 5, 1.0)
    assert fb.comment == "Helpful response"
