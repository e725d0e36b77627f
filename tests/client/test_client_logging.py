"""The client's logs: INFO summaries, DEBUG stages, TRACE frames, and no API key anywhere."""

from __future__ import annotations

import logging

import pytest

from aiscope.client import AiClient
from aiscope.logs import TRACE, mask_secrets
from aiscope.testing import MockProvider

KEY = "sk-live-SECRET-0123456789abcdef"


def test_levels_and_masking(caplog: pytest.LogCaptureFixture) -> None:
    with MockProvider(api_key=KEY) as mock:
        client = (
            AiClient.builder()
            .model("openai/gpt-4o")
            .api_key(KEY)
            .base_url(mock.base_url("openai"))
            .build()
        )
        with caplog.at_level(TRACE, logger="aiscope"):
            client.chat().user("hello").execute_sync()
            list(client.chat().user("hello").stream_sync())
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    info = [m for lvl, m in messages if lvl == logging.INFO]
    debug = [m for lvl, m in messages if lvl == logging.DEBUG]
    trace = [m for lvl, m in messages if lvl == TRACE]
    assert any("status=ok" in m and "tokens=" in m and "cost=" in m for m in info)
    for stage in ("request_compilation", "http_transport", "pipeline_processing", "event_mapping"):
        assert any(f"stage {stage}" in m for m in debug), stage
    assert any(m.startswith("request POST") for m in debug)
    assert any(m.startswith("frame ") for m in trace) and any(
        m.startswith("jsonpath ") for m in trace
    )
    assert all(KEY not in m for _, m in messages)
    assert all("SECRET" not in m for _, m in messages)


def test_mask_secrets() -> None:
    assert KEY not in mask_secrets(f"Authorization: Bearer {KEY}")
    assert "abcdef" not in mask_secrets(f"url?key={KEY[3:]}")
    assert mask_secrets("nothing secret here") == "nothing secret here"


def test_every_capture_path_logs_one_summary_line_with_its_call_spans_trace_id() -> None:
    import io
    import json

    import openai

    import aiscope
    from aiscope import InMemoryExporter, Tracer, configure_logging, record_call
    from aiscope.scope import Scope, use_scope

    out = io.StringIO()
    handler = configure_logging("INFO", stream=out)
    spans = InMemoryExporter()
    tracer = Tracer(service_name="t", exporter=spans)
    try:
        with MockProvider() as mock, use_scope(Scope(tracer=tracer)):
            client = (
                AiClient.builder().model("openai/gpt-4o").api_key("k")
                .base_url(mock.base_url("openai")).tracer(tracer).build()
            )  # fmt: skip
            client.chat().user("hello").execute_sync()
            aiscope.instrument()
            try:
                sdk = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
                sdk.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=9
                )
            finally:
                aiscope.uninstrument()
            record_call("gpt-4o", "openai", input_tokens=3, output_tokens=4)
        tracer.flush(timeout=5)
    finally:
        logging.getLogger("aiscope").removeHandler(handler)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    summaries = [x for x in lines if x["logger"] == "aiscope.calls"]
    assert len(summaries) == 3, lines
    span_traces = {s.context.trace_id for s in spans.spans()}
    for line in summaries:
        assert "status=ok" in line["message"] and "openai/gpt-4o" in line["message"]
        assert int(line["trace_id"], 16) in span_traces, line
