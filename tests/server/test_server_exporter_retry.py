"""ServerExporter retries as a RetryPolicy says: jittered exponential backoff, the
server's Retry-After honoured, a shutdown cutting a long wait short. Against a real
loopback HTTP server that answers from a script."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from aiscope import Scope, ServerExporter, record_call
from aiscope.resilience import RetryPolicy
from tests.support.scripted_http import ScriptedServer


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def _send_one(exporter: ServerExporter) -> None:
    record_call("gpt-4o", "openai", input_tokens=10, output_tokens=1, scope=Scope(sinks=[exporter]))


@pytest.mark.parametrize("status", [503, 429])
def test_a_busy_answer_with_retry_after_is_retried_no_sooner_than_the_server_asks(
    scripted: list[ScriptedServer], status: int
) -> None:
    server = ScriptedServer([(status, {"Retry-After": "1"}), (200, {})])
    scripted.append(server)
    exporter = ServerExporter(server.url, backoff_s=0.01, schedule_delay_s=0.01)
    _send_one(exporter)
    assert exporter.flush(timeout=5)
    (gap,) = server.gaps()
    assert 0.95 <= gap < 2.0, gap  # the backoff alone would have waited at most 0.01 s
    assert (exporter.exported, exporter.failed, exporter.rejected) == (1, 0, 0)
    exporter.close(timeout=1)


def test_retries_wait_the_policys_jittered_backoff(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer([(503, {})])
    scripted.append(server)

    def policy() -> RetryPolicy:
        return RetryPolicy(max_retries=3, base_delay_s=0.1, jitter="full", rng=random.Random(7))

    twin = policy()
    expected = [twin.delay_s(k) for k in range(3)]  # the same draws as the exporter's
    assert expected != [0.1, 0.2, 0.4]
    exporter = ServerExporter(server.url, retry=policy(), schedule_delay_s=0.01)
    _send_one(exporter)
    exporter.flush(timeout=5)  # waits for the batch to be given up (True or False)
    gaps = server.gaps()
    assert len(gaps) == 3
    for got, want in zip(gaps, expected, strict=True):
        assert want - 0.005 <= got <= want + 0.1, (gaps, expected)
    assert (exporter.exported, exporter.failed, exporter.rejected) == (1, 1, 0)
    exporter.close(timeout=1)


def test_the_default_policy_jitters_and_retries_what_a_server_may_take_later() -> None:
    exporter = ServerExporter("http://127.0.0.1:1", max_retries=4, backoff_s=0.25)
    policy = exporter.retry
    assert (policy.max_retries, policy.base_delay_s, policy.jitter) == (4, 0.25, "full")
    assert policy.retry_on_status == {408, 429, 500, 502, 503, 504}
    exporter.close(timeout=0.1)


def test_a_long_retry_after_is_respected_and_cut_short_by_close(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([(503, {"Retry-After": "30"})])
    scripted.append(server)
    exporter = ServerExporter(server.url, backoff_s=0.01, schedule_delay_s=0.01)
    _send_one(exporter)
    deadline = time.monotonic() + 5
    while not server.times and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)
    assert len(server.times) == 1  # waiting the 30 s the server asked for
    t0 = time.monotonic()
    exporter.close(timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert len(server.times) == 1
    assert (exporter.exported, exporter.failed) == (1, 1)  # accounted for, not vanished


def test_retry_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        ServerExporter("http://127.0.0.1:1", retry=RetryPolicy(), max_retries=1)
    with pytest.raises(TypeError, match="RetryPolicy"):
        ServerExporter("http://127.0.0.1:1", retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff_s must be a number of seconds >= 0"):
        ServerExporter("http://127.0.0.1:1", backoff_s=-1)
    with pytest.raises(ValueError, match="max_retries must be an int >= 0"):
        ServerExporter("http://127.0.0.1:1", max_retries=-1)


def test_closing_past_the_timeout_loses_the_rest_quietly_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = ServerExporter("http://127.0.0.1:9", max_retries=0, schedule_delay_s=60)
    scope = Scope(sinks=[exporter])
    for i in range(3000):
        record_call("gpt-4o", "openai", input_tokens=i, output_tokens=1, scope=scope)
    exporter.close(timeout=0)  # the worker is still sending when the client is closed
    deadline = time.monotonic() + 5
    while exporter.exported + exporter.dropped < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert exporter.exported == exporter.failed
    assert exporter.failed + exporter.dropped == 3000
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a closed client"
