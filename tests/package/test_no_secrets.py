"""No API key in any log line, span attribute or exported payload.

Calls with a recognisable fake key go through AiClient (OpenAI, Anthropic and Gemini
protocols; plain, streamed, failed and retried calls) with a Tracer capturing
content and exporting over OTLP/HTTP to a loopback receiver, with the ``aiscope``
logger at TRACE as JSON lines; every log line, every span attribute and event,
and every exported byte is scanned for the key and for its distinctive core.
"""

from __future__ import annotations

import io
import logging

import pytest

from aiscope import AiClient, ConsoleExporter, InMemoryExporter, Tracer, configure_logging
from aiscope.client.errors import AiClientError
from aiscope.resilience import RetryPolicy
from aiscope.testing import MockProvider, OtlpReceiver

CORE = "ZZLEAKCANARY7f3a9b2c41d8"
KEYS = {
    "openai": f"sk-proj-{CORE}",
    "anthropic": f"sk-ant-api03-{CORE}",
    "gemini": f"AIza{CORE}",
}


def _assert_clean(text: str, where: str) -> None:
    for key in KEYS.values():
        assert key not in text, f"API key in {where}"
    assert CORE not in text, f"part of an API key in {where}"


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_no_api_key_in_logs_spans_or_exports(provider: str) -> None:
    key = KEYS[provider]
    log_out = io.StringIO()
    console_out = io.StringIO()
    handler = configure_logging("TRACE", stream=log_out)
    mem = InMemoryExporter()
    try:
        with OtlpReceiver() as rx, MockProvider(api_key=key) as mock:
            tracer = Tracer(
                service_name="leak-test",
                exporter=[mem, ConsoleExporter(show_attributes=True, out=console_out)],
                endpoint=rx.endpoint,
                capture_content=True,
                schedule_delay_s=0.05,
            )
            model = {"openai": "gpt-4o", "anthropic": "claude-3-5-sonnet-latest"}.get(
                provider, "gemini-1.5-flash"
            )
            client = (
                AiClient.builder()
                .model(f"{provider}/{model}")
                .api_key(key)
                .base_url(mock.base_url(provider))
                .tracer(tracer)
                .retry(RetryPolicy(max_retries=1, base_delay_s=0.01))
                .build()
            )
            # The system prompt carries the key: content capture must redact it. (Not the
            # user message: the mock quotes that back, and the reply is content too.)
            client.chat().system(f"be brief; api_key={key}").user("hello").execute_sync()
            list(client.chat().system(f"key: {key}").user("stream").stream_sync())
            mock.fail_next(500, times=1)  # retried, then fine
            client.chat().user("retry me").execute_sync()
            mock.fail_next(401, times=1)
            with pytest.raises(AiClientError):
                client.chat().user("unauthorised").execute_sync()
            wrong = (
                AiClient.builder()
                .model(f"{provider}/{model}")
                .api_key(key[:-1] + "X")  # the provider rejects it and may echo it
                .base_url(mock.base_url(provider))
                .tracer(tracer)
                .build()
            )
            with pytest.raises(AiClientError):
                wrong.chat().user("wrong key").execute_sync()
            assert tracer.flush(timeout=5)
            tracer.shutdown(timeout=2)
            client.close()
            wrong.close()
            exports = rx.exports()
            received = rx.spans()
    finally:
        logging.getLogger("aiscope").removeHandler(handler)
        logging.getLogger("aiscope").setLevel(logging.NOTSET)
    lines = log_out.getvalue().splitlines()
    assert any('"level": "TRACE"' in line for line in lines)
    for line in lines:
        _assert_clean(line, f"log line {line[:80]!r}")
    spans = mem.spans()
    assert len(spans) >= 5 and received
    for span in spans:
        _assert_clean(repr(dict(span.attributes or {})), f"attributes of span {span.name}")
        for event in span.events:
            _assert_clean(repr(dict(event.attributes or {})), f"event of span {span.name}")
        _assert_clean(span.status.description or "", f"status of span {span.name}")
    for export in exports:
        _assert_clean(export.body.decode("latin-1"), "an OTLP payload")
        _assert_clean(repr(export.headers), "OTLP export headers")
    _assert_clean(console_out.getvalue(), "console exporter output")
    # Content capture really was on: the redaction, not its absence, kept the key out.
    captured = [s for s in spans if "gen_ai.system_instructions" in (s.attributes or {})]
    assert captured
    assert all("****" in str(s.attributes["gen_ai.system_instructions"]) for s in captured)


@pytest.mark.parametrize("provider", sorted(KEYS))
@pytest.mark.parametrize("where", ["error_status", "in_stream_error"])
def test_provider_error_echoing_the_key_is_masked_in_exception_text_and_logs(
    provider: str, where: str
) -> None:
    import traceback

    from aiscope.testing import Fault

    key = KEYS[provider]
    echo = f"Incorrect API key provided: {key}. You can find your API key at ..."
    # a handler of the application's own, without aiscope's masking filter: what
    # aiscope logs must already be masked
    log_out = io.StringIO()
    plain = logging.StreamHandler(log_out)
    logger = logging.getLogger("aiscope")
    logger.addHandler(plain)
    logger.setLevel(5)  # TRACE: stream frames are logged too
    mem = InMemoryExporter()
    try:
        with MockProvider() as mock:
            model = {"openai": "gpt-4o", "anthropic": "claude-3-5-sonnet-latest"}.get(
                provider, "gemini-1.5-flash"
            )
            client = (
                AiClient.builder()
                .model(f"{provider}/{model}")
                .api_key(key)
                .base_url(mock.base_url(provider))
                .tracer(Tracer(service_name="leak-test", exporter=mem, batch=False))
                .build()
            )
            with pytest.raises(AiClientError) as info:
                if where == "error_status":
                    mock.fail_next(401, message=echo)
                    client.chat().user("hello").execute_sync()
                else:
                    mock.enqueue(Fault(stream_error_after=1, message=echo))
                    list(client.chat().user("hello").stream_sync())
            client.close()
    finally:
        logger.removeHandler(plain)
        logger.setLevel(logging.NOTSET)
    exc = info.value
    assert "****" in str(exc)  # the message is kept, masked
    _assert_clean(str(exc), "the exception's text")
    _assert_clean(repr(exc.args), "the exception's args")
    _assert_clean(str(getattr(exc, "message", "")), "the exception's message attribute")
    _assert_clean("".join(traceback.format_exception(exc)), "the traceback")
    _assert_clean(log_out.getvalue(), "aiscope's log lines (no masking filter)")
    for span in mem.spans():
        for event in span.events:
            _assert_clean(repr(dict(event.attributes or {})), f"event of span {span.name}")
