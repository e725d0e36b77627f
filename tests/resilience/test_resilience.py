"""Resilience primitives: retry policy, circuit breaker, rate and in-flight limits, signals.

Clocks and sleeps are injected, so almost nothing sleeps for real; the few tests that
do (concurrency of real threads and loops) use rates that finish in well under a
second.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import pytest

from aiscope.client import AiClient
from aiscope.resilience import (
    DEFAULT_BURST_S,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ErrorRateWindow,
    InflightLimiter,
    InflightLimitError,
    RateLimiter,
    RateLimiterSnapshot,
    RateLimitExceededError,
    ResilienceError,
    RetryPolicy,
    SignalsSnapshot,
    parse_retry_after,
)
from aiscope.testing import MockProvider


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_threads(n: int, target: Callable[[int], None], timeout: float = 5.0) -> None:
    """Start ``n`` threads at once (behind a barrier) and join them."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "thread hung"
    if errors:
        raise errors[0]


# -- retry -------------------------------------------------------------------------------


def test_backoff_grows_exponentially_and_caps() -> None:
    p = RetryPolicy(base_delay_s=0.5, max_delay_s=5.0, multiplier=2.0, jitter="none")
    assert [p.delay_s(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert p.delay_s(10_000) == 5.0  # no overflow


@pytest.mark.parametrize(("jitter", "low"), [("full", 0.0), ("equal", 0.5)])
def test_jitter_bounds(jitter: str, low: float) -> None:
    p = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, jitter=jitter, rng=random.Random(7))  # type: ignore[arg-type]
    for attempt in range(5):
        backoff = p.backoff_s(attempt)
        delays = [p.delay_s(attempt) for _ in range(300)]
        assert all(low * backoff <= d <= backoff for d in delays)
        assert max(delays) - min(delays) > 0.3 * backoff  # actually jittered


def test_seeded_rng_is_reproducible() -> None:
    a = RetryPolicy(rng=random.Random(1))
    b = RetryPolicy(rng=random.Random(1))
    assert [a.delay_s(i) for i in range(4)] == [b.delay_s(i) for i in range(4)]


def test_retry_after_is_honoured_and_capped() -> None:
    p = RetryPolicy(base_delay_s=0.5, jitter="none", max_retry_after_s=60.0)
    assert p.delay_s(0, retry_after=5.0) == 5.0  # longer than the backoff: wins
    assert p.delay_s(3, retry_after=1.0) == 4.0  # shorter: the backoff wins
    assert p.delay_s(0, retry_after=3600.0) == 60.0  # capped
    assert p.delay_s(0, retry_after=float("nan")) == 0.5
    assert p.delay_s(0, retry_after=-3.0) == 0.5
    full = RetryPolicy(base_delay_s=10.0, jitter="full", rng=random.Random(3))
    assert all(full.delay_s(0, retry_after=7.0) >= 7.0 for _ in range(100))


def test_parse_retry_after_seconds_ms_and_date() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": " 1.5 "}) == 1.5  # any case, decimals
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    # ms is more precise and wins; a broken ms falls back to seconds
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now.timestamp) == pytest.approx(42.0)
    past = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now.timestamp) == 0.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after": "whenever"}) is None
    assert parse_retry_after({"retry-after": "inf"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(httpx2.Headers({"Retry-After-Ms": "20"})) == 0.02


def test_should_retry_by_status_exception_and_budget() -> None:
    p = RetryPolicy(max_retries=2)
    for status in (408, 409, 429, 500, 502, 503, 504, 529):
        assert p.should_retry(0, status=status)
    for status in (400, 401, 403, 404, 422):
        assert not p.should_retry(0, status=status)
    assert p.should_retry(1, status=503)
    assert not p.should_retry(2, status=503)  # budget spent
    request = httpx2.Request("POST", "https://example.invalid")
    assert p.should_retry(0, exc=httpx2.ConnectError("refused", request=request))
    assert p.should_retry(0, exc=httpx2.ReadTimeout("slow", request=request))
    assert p.should_retry(0, exc=ConnectionResetError())
    assert p.should_retry(0, exc=TimeoutError())
    assert not p.should_retry(0, exc=ValueError("bug"))
    assert not p.should_retry(0)  # nothing failed

    class Flagged(Exception):
        def __init__(self, retryable: bool) -> None:
            self.retryable = retryable

    assert p.should_retry(0, exc=Flagged(True))
    assert not p.should_retry(0, exc=Flagged(False))
    assert not RetryPolicy(max_retries=0).should_retry(0, status=503)
    custom = RetryPolicy(retry_on_exceptions=(KeyError,))
    assert custom.should_retry(0, exc=KeyError())
    assert not custom.should_retry(0, exc=ConnectionError())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"base_delay_s": -0.1}, "base_delay_s"),
        ({"max_delay_s": 0.1, "base_delay_s": 1.0}, "max_delay_s"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": "lots"}, "jitter"),
        ({"retry_on_status": {200, 1000}}, "retry_on_status"),
        ({"max_retry_after_s": float("inf")}, "max_retry_after_s"),
        ({"retry_on_exceptions": (int,)}, "retry_on_exceptions"),
    ],
)
def test_retry_policy_validates(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- circuit breaker ---------------------------------------------------------------------


def make_breaker(
    clock: FakeClock, **kwargs: object
) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def on_transition(name: str, old: CircuitState, new: CircuitState) -> None:
        assert name == "prov"
        seen.append((str(old), str(new)))

    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("recovery_timeout_s", 10.0)
    breaker = CircuitBreaker("prov", clock=clock, on_transition=on_transition, **kwargs)  # type: ignore[arg-type]
    return breaker, seen


def test_circuit_state_prints_nicely() -> None:
    assert str(CircuitState.CLOSED) == "closed"
    assert f"{CircuitState.HALF_OPEN}" == "half_open"
    assert CircuitState("open") is CircuitState.OPEN


def test_breaker_opens_after_consecutive_failures_and_rejects() -> None:
    clock = FakeClock()
    b, seen = make_breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the streak
    b.record_failure()
    b.record_failure()
    assert b.state is CircuitState.CLOSED
    assert b.failure_count == 2
    b.record_failure()
    assert b.state is CircuitState.OPEN
    assert seen == [("closed", "open")]
    clock.advance(4.0)
    assert not b.allow()
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert isinstance(info.value, ResilienceError)
    assert info.value.name == "prov"
    assert info.value.retry_in_s == pytest.approx(6.0)
    assert info.value.state == CircuitState.OPEN
    assert b.retry_in_s() == pytest.approx(6.0)


def test_breaker_half_opens_lazily_and_probe_success_closes() -> None:
    clock = FakeClock()
    b, seen = make_breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    assert b.state is CircuitState.HALF_OPEN  # on read, no timer
    permit = b.acquire()
    assert permit.probe
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()  # only one probe
    assert info.value.retry_in_s == 0.0
    assert info.value.state == CircuitState.HALF_OPEN
    permit.success()
    assert b.state is CircuitState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert b.failure_count == 0
    assert not b.acquire().probe


def test_probe_failure_reopens_and_restarts_timeout() -> None:
    clock = FakeClock()
    b, seen = make_breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    with b.acquire() as permit:
        clock.advance(2.0)
        permit.failure()
    assert b.state is CircuitState.OPEN
    clock.advance(9.0)  # 9 s after the probe failed: still open
    assert b.state is CircuitState.OPEN
    assert b.retry_in_s() == pytest.approx(1.0)
    clock.advance(1.0)
    assert b.state is CircuitState.HALF_OPEN
    assert seen == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
    ]


def test_success_threshold_needs_several_probe_successes() -> None:
    clock = FakeClock()
    b, _ = make_breaker(clock, success_threshold=3, half_open_max_probes=2)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    for _ in range(2):
        p1, p2 = b.acquire(), b.acquire()
        assert not b.allow()
        p1.success()
        p2.release()  # no verdict: frees the slot, counts nothing
    assert b.state is CircuitState.HALF_OPEN
    b.acquire().success()
    assert b.state is CircuitState.CLOSED


def test_half_open_admits_limited_probes_across_threads() -> None:
    clock = FakeClock()
    b, _ = make_breaker(clock, half_open_max_probes=3)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    admitted: list[int] = []
    rejected: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        try:
            b.acquire()
        except CircuitOpenError:
            with lock:
                rejected.append(i)
        else:
            with lock:
                admitted.append(i)

    run_threads(32, call)
    assert len(admitted) == 3
    assert len(rejected) == 29
    assert b.probes_in_flight == 3


def test_unresolved_permit_released_by_context_manager() -> None:
    clock = FakeClock()
    b, _ = make_breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    with pytest.raises(asyncio.CancelledError), b.acquire():
        raise asyncio.CancelledError  # the call was cancelled mid-flight
    assert b.state is CircuitState.HALF_OPEN
    permit = b.acquire()  # the slot is free again
    permit.success()
    permit.failure()  # resolved already: ignored
    assert b.state is CircuitState.CLOSED


def test_tokenless_flow_used_by_client() -> None:
    """acquire() ignoring the permit, then record_*() / release_probe() without one."""
    clock = FakeClock()
    b, _ = make_breaker(clock)
    b.acquire()
    b.release_probe()  # closed: a no-op
    for _ in range(3):
        b.acquire()
        b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    assert not b.allow()
    b.release_probe()  # cancelled probe frees the slot
    assert b.allow()
    b.record_success()
    assert b.state is CircuitState.CLOSED
    # half-open with no probe out: token-less outcomes are stale, ignored
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    assert b.state is CircuitState.HALF_OPEN
    b.record_success()
    b.record_failure()
    assert b.state is CircuitState.HALF_OPEN


def test_stale_permits_are_ignored() -> None:
    clock = FakeClock()
    b, _ = make_breaker(clock)
    early = b.acquire()  # admitted while closed
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    probe = b.acquire()
    early.success()  # started before the circuit opened: says nothing now
    assert b.state is CircuitState.HALF_OPEN
    probe.failure()
    assert b.state is CircuitState.OPEN
    probe.success()  # already resolved
    assert b.state is CircuitState.OPEN


def test_lost_probe_is_reclaimed_after_probe_timeout() -> None:
    clock = FakeClock()
    b, _ = make_breaker(clock, probe_timeout_s=60.0)
    for _ in range(3):
        b.record_failure()
    clock.advance(10.0)
    lost = b.acquire()  # never resolved
    clock.advance(59.0)
    assert not b.allow()
    clock.advance(1.0)
    fresh = b.acquire()
    fresh.success()
    assert b.state is CircuitState.CLOSED
    assert not lost.done


def test_failure_rate_window_opens_circuit() -> None:
    clock = FakeClock()
    b, _ = make_breaker(
        clock,
        failure_threshold=100,
        failure_rate_threshold=0.5,
        failure_rate_window_s=10.0,
        failure_rate_min_calls=10,
    )
    for _ in range(4):  # alternate: never 2 failures in a row
        b.record_failure()
        b.record_success()
    assert b.state is CircuitState.CLOSED  # 8 calls < min_calls
    b.record_failure()
    b.record_success()
    assert b.state is CircuitState.CLOSED  # 10 calls but last one ok: rate checked on failure
    b.record_failure()
    assert b.state is CircuitState.OPEN  # 6/11 failed
    clock.advance(10.0)
    b.acquire().success()
    assert b.state is CircuitState.CLOSED  # closing forgets the window
    b.record_failure()
    assert b.state is CircuitState.CLOSED


def test_callbacks_run_outside_lock_in_order_and_errors_are_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    b = CircuitBreaker("p", failure_threshold=1, recovery_timeout_s=1.0, clock=clock)
    order: list[str] = []

    def reentrant(name: str, old: CircuitState, new: CircuitState) -> None:
        order.append(f"a:{old}->{new}")
        _ = b.state  # would deadlock if called under the lock
        _ = b.allow()

    def broken(name: str, old: CircuitState, new: CircuitState) -> None:
        order.append(f"b:{old}->{new}")
        raise RuntimeError("listener bug")

    b.add_listener(reentrant)
    b.add_listener(broken)

    def scenario() -> None:
        b.record_failure()
        clock.advance(1.0)
        b.acquire().success()

    t = threading.Thread(target=scenario)
    with caplog.at_level(logging.ERROR, logger="aiscope.resilience"):
        t.start()
        t.join(2.0)
    assert not t.is_alive(), "callback deadlocked"
    assert order == [
        "a:closed->open",
        "b:closed->open",
        "a:open->half_open",
        "b:open->half_open",
        "a:half_open->closed",
        "b:half_open->closed",
    ]
    assert sum("listener bug" in r.exc_text for r in caplog.records if r.exc_text) == 3
    b.remove_listener(broken)
    b.record_failure()
    assert order[-1] == "a:closed->open"


def test_breaker_validates() -> None:
    for kwargs, name in [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_timeout_s": -1}, "recovery_timeout_s"),
        ({"half_open_max_probes": 0}, "half_open_max_probes"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"probe_timeout_s": 0}, "probe_timeout_s"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
    ]:
        with pytest.raises(ValueError, match=name):
            CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]


def test_breaker_reset_and_pickle_error() -> None:
    import pickle

    b = CircuitBreaker("x", failure_threshold=1)
    b.record_failure()
    assert b.state is CircuitState.OPEN
    b.reset()
    assert b.state is CircuitState.CLOSED
    err = pickle.loads(pickle.dumps(CircuitOpenError("x", 1.5, state=CircuitState.OPEN)))
    assert (err.name, err.retry_in_s, str(err.state)) == ("x", 1.5, "open")


# -- rate limiter ------------------------------------------------------------------------


def test_rpm_spaces_requests_with_debt() -> None:
    clock = FakeClock()
    rl = RateLimiter(requests_per_minute=60, clock=clock, request_capacity=2)
    assert [rl.reserve() for _ in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]
    clock.advance(3.0)  # the debt of 3 is paid off
    assert rl.reserve() == 1.0
    clock.advance(10.0)  # refills up to the capacity only
    assert rl.snapshot().available_requests == 2.0


def test_max_wait_refuses_without_taking_and_aiclient_sends_nothing(mock: MockProvider) -> None:
    clock = FakeClock()
    rl = RateLimiter(60, 600, clock=clock, request_capacity=2, token_capacity=100, max_wait_s=1.5)
    assert [rl.reserve(10), rl.reserve(10), rl.reserve(10)] == [0.0, 0.0, 1.0]
    with pytest.raises(RateLimitExceededError) as info:
        rl.reserve()  # would wait 2 s
    assert info.value.retry_after_s == pytest.approx(2.0) and info.value.name == "rate_limiter"
    assert rl.snapshot().available_requests == -1.0  # the refusal took nothing
    with pytest.raises(RateLimitExceededError):
        rl.reserve(500)  # the token bucket too: (100 - 70) / 10 per s = 3 s
    assert rl.snapshot().available_tokens == 70.0
    clock.advance(1.0)
    assert rl.reserve() == pytest.approx(1.0)  # within max_wait_s again
    zero = RateLimiter(60, max_wait_s=0)  # never waits
    assert zero.acquire() == 0.0
    with pytest.raises(RateLimitExceededError):
        zero.acquire()
    with pytest.raises(ValueError, match="max_wait_s"):
        RateLimiter(60, max_wait_s=-1)
    client = (
        AiClient.builder().model("openai/gpt-4o-mini").api_key("k")
        .base_url(mock.base_url("openai")).rate_limit(60, max_wait_s=0).build()
    )  # fmt: skip
    sent = len(mock.requests)
    client.chat().user("hi").execute_sync()
    with pytest.raises(RateLimitExceededError):
        client.chat().user("hi").execute_sync()
    assert len(mock.requests) == sent + 1  # the refused call sent nothing


def test_default_burst_is_one_second_of_the_rate_not_a_minute() -> None:
    clock = FakeClock()
    # rpm=60: one request at once, then one a second (a minute's burst let 60 through).
    rl = RateLimiter(requests_per_minute=60, tokens_per_minute=6000, clock=clock)
    assert [rl.reserve() for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    snap = rl.snapshot()
    assert (snap.request_capacity, snap.token_capacity) == (1.0, 100.0)
    # rpm=600: ten at once, then one every 0.1 s.
    rl = RateLimiter(requests_per_minute=600, clock=clock)
    waits = [rl.reserve() for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == [pytest.approx(0.1), pytest.approx(0.2)]
    # A slow rate still lets one request through at once, never a fraction of one.
    rl = RateLimiter(requests_per_minute=6, tokens_per_minute=30, clock=clock)
    snap = rl.snapshot()
    assert (snap.request_capacity, snap.token_capacity) == (1.0, 1.0)
    assert rl.reserve() == 0.0 and rl.reserve() == pytest.approx(10.0)
    assert DEFAULT_BURST_S == 1.0


def test_tpm_spacing_adjust_and_refund() -> None:
    clock = FakeClock()
    rl = RateLimiter(tokens_per_minute=600, clock=clock, token_capacity=600)  # 10 tokens/s
    assert rl.reserve(500) == 0.0
    assert rl.reserve(200) == pytest.approx(10.0)  # 100 short
    rl.adjust(estimated=200, actual=50)  # used less: 150 back
    assert rl.snapshot().available_tokens == pytest.approx(50.0)
    rl.adjust(estimated=10, actual=110)  # used more: 100 of debt
    assert rl.snapshot().available_tokens == pytest.approx(-50.0)
    assert rl.reserve(0) == 0.0  # no token limit on a token-less request
    rl.refund(650)
    assert rl.snapshot().available_tokens == 600.0  # capped


def test_both_limits_wait_for_the_slower() -> None:
    clock = FakeClock()
    rl = RateLimiter(60, 600, clock=clock, request_capacity=1, token_capacity=100)
    assert rl.reserve(100) == 0.0
    assert rl.reserve(10) == pytest.approx(1.0)  # requests: 1 s; tokens: 1 s
    assert rl.reserve(100) == pytest.approx(11.0)  # tokens: (100 + 10 in debt) / 10 per s


def test_oversized_request_waits_for_full_bucket_then_goes_into_debt() -> None:
    clock = FakeClock()
    rl = RateLimiter(tokens_per_minute=600, clock=clock, token_capacity=100)
    assert rl.reserve(250) == 0.0  # full bucket: goes at once, 150 in debt
    assert rl.reserve(10) == pytest.approx(16.0)  # pays the debt first
    clock.advance(16.0)
    assert rl.snapshot().available_tokens == pytest.approx(0.0)
    assert rl.reserve(250) == pytest.approx(10.0)  # waits for a full bucket only


def test_update_from_headers_only_lowers() -> None:
    clock = FakeClock()
    rl = RateLimiter(100, 10_000, clock=clock, request_capacity=100, token_capacity=10_000)
    assert rl.update_from_headers(
        {"x-ratelimit-remaining-requests": "7", "X-RateLimit-Remaining-Tokens": "500"}
    )
    snap = rl.snapshot()
    assert (snap.available_requests, snap.available_tokens) == (7.0, 500.0)
    assert not rl.update_from_headers({"anthropic-ratelimit-tokens-remaining": "9000"})
    assert rl.update_from_headers({"anthropic-ratelimit-requests-remaining": "3"})
    assert not rl.update_from_headers({"x-ratelimit-remaining-tokens": "lots"})


def test_unlimited_and_validation() -> None:
    rl = RateLimiter()
    assert rl.reserve(10**9) == 0.0
    assert rl.snapshot() == RateLimiterSnapshot(None, None, None, None, None, None, 0)
    for kwargs, name in [
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"tokens_per_minute": -5}, "tokens_per_minute"),
        ({"request_capacity": 5}, "request_capacity"),
        ({"tokens_per_minute": 5, "token_capacity": float("nan")}, "token_capacity"),
    ]:
        with pytest.raises(ValueError, match=name):
            RateLimiter(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokens"):
        RateLimiter(tokens_per_minute=10).reserve(-1)


def test_sync_acquire_sleeps_outside_the_lock() -> None:
    clock = FakeClock()
    entered = threading.Event()
    go_on = threading.Event()
    slept: list[float] = []

    def blocking_sleep(s: float) -> None:
        slept.append(s)
        entered.set()
        go_on.wait(2.0)

    rl = RateLimiter(60, clock=clock, request_capacity=1, sleep=blocking_sleep)
    assert rl.acquire() == 0.0
    t = threading.Thread(target=rl.acquire)
    t.start()
    assert entered.wait(2.0)
    # The sleeper holds no lock: other callers reserve and look right away.
    done = threading.Event()

    def other() -> None:
        assert rl.reserve() == pytest.approx(2.0)
        assert rl.snapshot().waiting == 1
        done.set()

    threading.Thread(target=other).start()
    assert done.wait(1.0), "reserve() blocked while another caller slept"
    go_on.set()
    t.join(2.0)
    assert slept == [pytest.approx(1.0)]
    assert rl.snapshot().waiting == 0


def test_many_threads_wait_concurrently_at_the_rate() -> None:
    # 500 requests/s, no burst: 50 callers need ~98 ms in all if they wait side by
    # side; waiting under the lock would add the waits up (~2.5 s).
    rl = RateLimiter(requests_per_minute=500 * 60, request_capacity=1)
    waits: list[float] = []
    lock = threading.Lock()

    def call(_: int) -> None:
        w = rl.acquire()
        with lock:
            waits.append(w)

    t0 = time.perf_counter()
    run_threads(50, call)
    elapsed = time.perf_counter() - t0
    assert max(waits) <= 49 / 500 + 1e-6  # nobody waits longer than its place in line
    assert elapsed >= 49 / 500 - 1e-3  # the rate holds
    assert elapsed < 0.6  # the waits overlapped


async def test_async_acquire_uses_injected_sleep_and_gives_back_on_cancel() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    rl = RateLimiter(60, 600, clock=clock, request_capacity=1, async_sleep=fake_sleep)
    assert await rl.acquire_async(10) == 0.0
    assert await rl.acquire_async(10) == pytest.approx(1.0)
    assert slept == [pytest.approx(1.0)]

    async def never(s: float) -> None:
        await asyncio.Event().wait()

    blocked = RateLimiter(
        60, 600, clock=clock, request_capacity=1, token_capacity=600, async_sleep=never
    )
    await blocked.acquire_async(100)
    task = asyncio.create_task(blocked.acquire_async(100))
    await asyncio.sleep(0)
    assert blocked.snapshot().waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = blocked.snapshot()
    assert snap.waiting == 0
    assert (snap.available_requests, snap.available_tokens) == (0.0, 500.0)  # given back


async def test_async_acquire_real_rate_does_not_block_loop() -> None:
    rl = RateLimiter(requests_per_minute=200 * 60, request_capacity=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await asyncio.gather(*(rl.acquire_async() for _ in range(20)))
    elapsed = time.perf_counter() - t0
    tick.cancel()
    assert 0.09 <= elapsed < 0.5  # 19 intervals of 5 ms
    assert ticks >= 5  # the loop kept running meanwhile


# -- in-flight limiter -------------------------------------------------------------------


def test_inflight_threads_never_exceed_max() -> None:
    lim = InflightLimiter(3)
    peak = 0
    lock = threading.Lock()

    def call(_: int) -> None:
        nonlocal peak
        for _ in range(5):
            with lim.slot():
                with lock:
                    peak = max(peak, lim.current)
                time.sleep(0.001)

    run_threads(16, call)
    assert peak == 3
    assert lim.current == 0
    assert lim.waiting == 0


def test_inflight_sync_timeout_and_unlimited() -> None:
    lim = InflightLimiter(1)
    with lim.slot():
        with pytest.raises(InflightLimitError) as info, lim.slot(timeout=0.02):
            pass  # pragma: no cover
        assert isinstance(info.value, ResilienceError)
        assert not lim.try_acquire()
        with pytest.raises(InflightLimitError):
            lim.acquire(timeout=0)
    assert lim.current == 0 and lim.waiting == 0
    free = InflightLimiter(None)
    with free.slot(), free.slot():
        assert free.current == 2
    assert free.current == 0
    with pytest.raises(RuntimeError):
        free.release()
    with pytest.raises(ValueError, match="max_inflight"):
        InflightLimiter(0)


async def test_inflight_async_never_exceeds_max() -> None:
    lim = InflightLimiter(4)
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with lim.aslot():
            peak = max(peak, lim.current)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(call() for _ in range(50)))
    assert peak == 4
    assert lim.current == 0


async def test_inflight_async_fifo_order() -> None:
    lim = InflightLimiter(1)
    order: list[int] = []
    await lim.acquire_async()

    async def call(i: int) -> None:
        async with lim.aslot():
            order.append(i)

    tasks = [asyncio.create_task(call(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert lim.waiting == 5
    lim.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_inflight_cancelled_waiter_does_not_leak() -> None:
    lim = InflightLimiter(1)
    await lim.acquire_async()
    waiter = asyncio.create_task(lim.acquire_async())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.waiting == 0
    lim.release()
    assert lim.current == 0

    # Cancelled after the slot was handed over, before it resumed: passed on.
    await lim.acquire_async()
    waiter = asyncio.create_task(lim.acquire_async())
    await asyncio.sleep(0)
    lim.release()  # hands the slot to the waiter (wake-up scheduled)
    assert lim.current == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.current == 0
    await asyncio.wait_for(lim.acquire_async(), 1.0)
    lim.release()


async def test_inflight_async_timeout() -> None:
    lim = InflightLimiter(1)
    async with lim.aslot():
        with pytest.raises(InflightLimitError):
            async with lim.aslot(timeout=0.01):
                pass  # pragma: no cover
    assert lim.current == 0 and lim.waiting == 0


def test_inflight_shared_by_threads_and_several_loops() -> None:
    lim = InflightLimiter(2)
    peak = 0
    lock = threading.Lock()

    def note() -> None:
        nonlocal peak
        with lock:
            peak = max(peak, lim.current)

    async def coro_calls() -> None:
        async def one() -> None:
            async with lim.aslot():
                note()
                await asyncio.sleep(0.002)

        await asyncio.gather(*(one() for _ in range(10)))

    def worker(i: int) -> None:
        if i % 2:
            asyncio.run(coro_calls())  # its own loop
        else:
            for _ in range(10):
                with lim.slot():
                    note()
                    time.sleep(0.002)

    run_threads(4, worker)
    assert peak == 2
    assert lim.current == 0 and lim.waiting == 0


def test_inflight_waiter_of_closed_loop_is_skipped() -> None:
    lim = InflightLimiter(1)
    lim.acquire()
    loop = asyncio.new_event_loop()
    task = loop.create_task(lim.acquire_async())
    loop.run_until_complete(asyncio.sleep(0))  # the task is now queued
    assert lim.waiting == 1
    loop.close()  # abandoned with the waiter queued
    lim.release()  # cannot wake it: the slot must not be lost
    assert lim.current == 0
    del task
    gc.collect()  # the coroutine's cleanup must not release the slot a second time
    assert lim.current == 0
    lim.acquire(timeout=0)
    lim.release()


# -- signals -----------------------------------------------------------------------------


def test_error_rate_window_expires() -> None:
    clock = FakeClock(0.0)
    w = ErrorRateWindow(window_s=60.0, clock=clock, buckets=6)
    for ok in (True, True, False):
        w.record(ok)
    clock.advance(30.0)
    w.record(False)
    assert w.counts() == (2, 2)
    assert w.rate() == 0.5
    clock.advance(35.0)  # the first three are older than the window now
    assert w.counts() == (0, 1)
    assert w.rate() == 1.0
    clock.advance(600.0)
    assert w.counts() == (0, 0)
    assert w.rate() == 0.0
    w.record(True)
    w.clear()
    assert w.counts() == (0, 0)
    with pytest.raises(ValueError, match="window_s"):
        ErrorRateWindow(0)


def test_signals_snapshot() -> None:
    clock = FakeClock()
    rl = RateLimiter(600, clock=clock)
    snap = SignalsSnapshot(
        circuit_state=CircuitState.HALF_OPEN,
        current_inflight=2,
        max_inflight=8,
        rate_limiter=rl.snapshot(),
        recent_error_rate=0.25,
        recent_requests=4,
    )
    assert f"Circuit: {snap.circuit_state}" == "Circuit: half_open"
    d = snap.as_dict()
    assert d["circuit_state"] == "half_open"
    assert d["rate_limiter"]["available_requests"] == 10.0
    assert d["rate_limiter"]["request_capacity"] == 10.0  # the burst: one second's worth
    assert d["rate_limiter"]["waiting"] == 0
    with pytest.raises(AttributeError):
        snap.current_inflight = 3  # type: ignore[misc]


def test_happy_path_is_cheap() -> None:
    b = CircuitBreaker("x")
    rl = RateLimiter(10**9, 10**12)
    lim = InflightLimiter(100)
    w = ErrorRateWindow()
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        with lim.slot():
            permit = b.acquire()
            rl.reserve(100)
            permit.success()
            w.record(True)
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 50e-6  # a few µs in practice; generous for slow CI
