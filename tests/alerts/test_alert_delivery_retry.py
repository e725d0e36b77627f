"""Alert delivery retries as a RetryPolicy says: the receiver's Retry-After honoured,
jittered exponential backoff. A real WebhookNotifier against a loopback HTTP server."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from aiscope.alerts import AlertEvent
from aiscope.alerts.notifiers import Delivery, WebhookNotifier
from aiscope.resilience import RetryPolicy
from tests.support.scripted_http import ScriptedServer


def _event() -> AlertEvent:
    return AlertEvent(
        rule="slow",
        severity="critical",
        state="firing",
        labels={},
        value=7680.0,
        threshold=5000.0,
        comparison=">",
        signal="latency_p95_ms",
        window="5m",
        description="p95 too slow",
        started_at=1_700_000_000.0,
        at=1_700_000_120.0,
    )


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


@pytest.mark.parametrize("status", [429, 503])
def test_a_receiver_asking_to_retry_later_is_not_retried_sooner(
    servers: list[ScriptedServer], status: int
) -> None:
    server = ScriptedServer([(status, {"Retry-After": "1"}), (200, {})])
    servers.append(server)
    delivery = Delivery(WebhookNotifier(server.url), backoff_s=0.01)
    assert delivery.submit(_event())
    assert delivery.flush(5)
    (gap,) = server.gaps()
    assert 0.95 <= gap < 2.0, gap  # the backoff alone would have waited at most 0.01 s
    assert (delivery.delivered, delivery.retries, delivery.failed) == (1, 1, 0)
    delivery.close(1)


def test_delivery_waits_the_policys_jittered_backoff(servers: list[ScriptedServer]) -> None:
    server = ScriptedServer([(503, {})])
    servers.append(server)

    def policy() -> RetryPolicy:
        return RetryPolicy(max_retries=3, base_delay_s=0.1, rng=random.Random(11))

    twin = policy()
    expected = [twin.delay_s(k) for k in range(3)]
    delivery = Delivery(WebhookNotifier(server.url), retry=policy())
    assert delivery.submit(_event())
    delivery.flush(5)  # waits for the event to be given up (True or False)
    gaps = server.gaps()
    assert len(gaps) == 3
    for got, want in zip(gaps, expected, strict=True):
        assert want - 0.005 <= got <= want + 0.1, (gaps, expected)
    assert (delivery.delivered, delivery.failed) == (0, 1)
    delivery.close(1)


def test_the_default_delivery_policy_jitters_from_the_given_backoff() -> None:
    delivery = Delivery(WebhookNotifier("http://127.0.0.1:1"), max_retries=5, backoff_s=60)
    policy = delivery.retry
    assert (policy.max_retries, policy.base_delay_s, policy.jitter) == (5, 60, "full")
    assert policy.max_delay_s == 60  # a backoff above max_backoff_s is kept, as before
    with pytest.raises(TypeError, match="RetryPolicy"):
        Delivery(WebhookNotifier("http://127.0.0.1:1"), retry=2)  # type: ignore[arg-type]
    delivery.close(0.1)
