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
