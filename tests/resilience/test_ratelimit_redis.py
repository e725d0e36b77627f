"""RedisRateLimiter: rate limits shared through Redis (issue 14 item 5).

Against the shared Redis of ``AISCOPE_TEST_REDIS_URL`` (each test under its own key
prefix, deleted afterwards), and a ``redis-server`` of the test's own for the outage
test. The cross-process tests count grants, not timings: the limits are set so that
refill during the test is under one unit (one request or one token a minute), so the
number of grants is exactly the burst however slowly a loaded machine runs them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

import aiscope
from aiscope import MetricsCollector
from aiscope.client import AiClient, ConfigurationError
from aiscope.resilience import (
    RateLimiter,
    RateLimiterLike,
    RateLimitExceededError,
    RedisRateLimiter,
)
from aiscope.scope import Scope
from aiscope.testing import MockProvider
from tests.support.redis_support import REDIS_ENV, OwnRedis, service_url


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis (its keys deleted after)."""
    import redis

    url = service_url(REDIS_ENV)
    p = f"aiscope-test-rl-{uuid.uuid4().hex[:12]}:"
    yield p
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=p + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass(frozen=True)
class Spec:
    """How to build one limiter in any process (picklable for spawned workers)."""

    url: str
    prefix: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, **more: Any) -> RedisRateLimiter:
        return RedisRateLimiter(
            self.url, name=self.name, prefix=self.prefix, timeout_s=5.0, **self.kwargs, **more
        )


# -- across processes ---------------------------------------------------------------
def _grab(spec: Spec, tokens: int, mode: str, attempts: int) -> int:
    """Try ``attempts`` reservations that may not wait (max_wait_s=0); the grants."""
    limiter = spec.build()

    def one() -> int:
        try:
            limiter.reserve(tokens)
        except RateLimitExceededError:
            return 0
        return 1

    async def aone() -> int:
        try:
            await limiter.reserve_async(tokens)
        except RateLimitExceededError:
            return 0
        return 1

    async def amany() -> int:
        return sum(await asyncio.gather(*(aone() for _ in range(attempts))))

    if mode == "async":
        return asyncio.run(amany())
    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(lambda _: one(), range(attempts)))


def test_limits_hold_across_four_processes(prefix: str) -> None:
    url = service_url(REDIS_ENV)
    # one request (token) a minute refills: during the test, under one unit
    requests = Spec(url, prefix, "requests", {"requests_per_minute": 1, "request_capacity": 20,
                                              "max_wait_s": 0})  # fmt: skip
    arequests = Spec(url, prefix, "arequests", requests.kwargs)
    tokens = Spec(url, prefix, "tokens", {"tokens_per_minute": 1, "token_capacity": 1000,
                                          "max_wait_s": 0})  # fmt: skip
    jobs = [
        *((requests, 0, "sync", 40) for _ in range(4)),
        *((arequests, 0, "async", 40) for _ in range(4)),
        *((tokens, 100, "sync", 20) for _ in range(4)),
    ]
    t0 = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        grants = pool.starmap(_grab, jobs)
    minutes = (time.monotonic() - t0) / 60
    by = {"requests": sum(grants[0:4]), "arequests": sum(grants[4:8]), "tokens": sum(grants[8:])}
    # each process alone would have granted the whole burst: 4x as many
    assert 20 <= by["requests"] <= 20 + minutes, by
    assert 20 <= by["arequests"] <= 20 + minutes, by
    assert 10 <= by["tokens"] <= 10 + minutes / 100, by  # 1000 tokens = 10 calls of 100


# -- the same decisions as the in-process limiter ---------------------------------------
def _outcome(fn: Callable[[], float]) -> float | str:
    try:
        return fn()
    except RateLimitExceededError as exc:
        assert exc.retry_after_s is not None and exc.retry_after_s > 0
        return "refused"


def test_waits_and_refusals_match_the_in_process_limiter(prefix: str) -> None:
    kw: dict[str, Any] = {
        "requests_per_minute": 60,  # one a second
        "request_capacity": 2,
        "tokens_per_minute": 6000,  # 100 a second
        "token_capacity": 300,
        "max_wait_s": 2.5,
    }
    slept: dict[str, list[float]] = {"local": [], "redis": []}
    local = RateLimiter(sleep=slept["local"].append, name="same", **kw)
    shared = Spec(service_url(REDIS_ENV), prefix, "same", kw).build(sleep=slept["redis"].append)
    assert isinstance(shared, RateLimiterLike) and isinstance(local, RateLimiterLike)

    def steps(lim: Any) -> list[Callable[[], float]]:
        return [
            lambda: lim.reserve(100),  # within both bursts: 0
            lambda: lim.acquire(100),  # second request of the burst: 0
            lambda: lim.acquire(0),  # requests in debt: ~1 s, slept
            lambda: lim.reserve(0),  # ~2 s
            lambda: lim.reserve(0),  # ~3 s > max_wait: refused, nothing taken
            lambda: (lim.adjust(100, 700), 0.0)[1],  # used 600 more tokens: token debt
            lambda: lim.reserve(50),  # token bucket: (50 - (-500)) / 100 = ~5.5 s: refused
            lambda: (lim.refund(500), 0.0)[1],
            lambda: lim.reserve(50),  # tokens ok again, requests ~3 s: refused
        ]

    got: dict[str, list[float | str]] = {"local": [], "redis": []}
    for a, b in zip(steps(local), steps(shared), strict=True):
        got["local"].append(_outcome(a))
        got["redis"].append(_outcome(b))
    expected: list[float | str] = [0.0, 0.0, 1.0, 2.0, "refused", 0.0, "refused", 0.0, "refused"]
    for name in ("local", "redis"):
        for g, e in zip(got[name], expected, strict=True):
            assert g == e if isinstance(e, str) else g == pytest.approx(e, abs=0.15), got
    assert len(slept["redis"]) == len(slept["local"]) == 1  # acquire slept the ~1 s wait
    assert slept["redis"][0] == pytest.approx(slept["local"][0], abs=0.15)
    assert slept["redis"][0] > 0.5
    snap = shared.snapshot()
    assert snap.request_capacity == 2.0 and snap.token_capacity == 300.0
    assert snap.available_requests is not None and snap.available_requests < 0  # debt


def test_oversized_and_async_acquire(prefix: str) -> None:
    waits: list[float] = []

    async def asleep(s: float) -> None:
        waits.append(s)

    lim = Spec(service_url(REDIS_ENV), prefix, "big", {"tokens_per_minute": 600}).build(
        async_sleep=asleep
    )  # burst: 10 tokens

    async def run() -> tuple[float, float]:
        first = await lim.acquire_async(50)  # larger than the burst: goes into debt at once
        second = await lim.acquire_async(5)  # waits for the debt of 40 plus 5: ~4.5 s
        return first, second

    first, second = asyncio.run(run())
    assert first == 0.0
    assert second == pytest.approx(4.5, abs=0.2)
    assert waits == [second]


# -- AiClient and the SDK instrumentation ---------------------------------------------------
def _client(mock: MockProvider, limiter: RateLimiterLike, metrics: MetricsCollector) -> AiClient:
    return (
        AiClient.builder().model("openai/gpt-4o-mini").api_key("k")
        .base_url(mock.base_url("openai")).metrics(metrics).rate_limiter(limiter).build()
    )  # fmt: skip


def test_aiclient_refused_by_the_shared_limit_sends_no_request(
    prefix: str, mock: MockProvider
) -> None:
    url = service_url(REDIS_ENV)
    spec = Spec(url, prefix, "client", {"requests_per_minute": 1, "max_wait_s": 0})
    metrics = MetricsCollector()
    # two replicas of one service: two clients, two limiters, one limit in Redis
    first, second = _client(mock, spec.build(), metrics), _client(mock, spec.build(), metrics)
    sent = len(mock.requests)
    first.chat().user("hi").execute_sync()
    assert len(mock.requests) == sent + 1
    with pytest.raises(RateLimitExceededError) as info:
        second.chat().user("hi").execute_sync()
    assert info.value.retry_after_s is not None and info.value.retry_after_s > 30
    with pytest.raises(RateLimitExceededError):
        asyncio.run(second.chat().user("hi").execute())
    assert len(mock.requests) == sent + 1  # the refused calls sent nothing
    text = metrics.export_prometheus()
    assert 'error_type="RateLimitExceededError"' in text
    snap = second.signals_snapshot().rate_limiter
    assert snap is not None and snap.requests_per_minute == 1


def test_aiclient_waits_for_the_shared_limit_and_counts_the_wait(
    prefix: str, mock: MockProvider
) -> None:
    kw = {"requests_per_minute": 60, "request_capacity": 5}  # a burst of 5, then 1 a second
    spec = Spec(service_url(REDIS_ENV), prefix, "wait", kw)
    metrics = MetricsCollector()
    clients = [_client(mock, spec.build(), metrics) for _ in range(2)]
    t0 = time.monotonic()
    for i in range(7):
        clients[i % 2].chat().user("hi").execute_sync()
    assert time.monotonic() - t0 >= 1.5  # the 2 past the burst waited ~1 s each
    text = metrics.export_prometheus()
    assert 'ai_lib_rate_limit_waits_total{provider="openai"} 2.0' in text


def test_instrumented_sdk_calls_use_the_shared_limit(prefix: str, mock: MockProvider) -> None:
    spec = Spec(service_url(REDIS_ENV), prefix, "sdk", {"requests_per_minute": 1,
                                                        "max_wait_s": 0})  # fmt: skip
    metrics = MetricsCollector()
    scope = Scope(metrics=metrics)
    made = lambda: openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)  # noqa: E731
    one = aiscope.wrap(made(), scope=scope, rate_limiter=spec.build())
    other = aiscope.wrap(made(), scope=scope, rate_limiter=spec.build())
    sent = len(mock.requests)
    one.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(RateLimitExceededError):
        other.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert len(mock.requests) == sent + 1
    assert 'error_type="RateLimitExceededError"' in metrics.export_prometheus()

    async def run() -> None:
        client = aiscope.wrap(
            openai.AsyncOpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0),
            scope=scope,
            rate_limiter=spec.build(),
        )
        with pytest.raises(RateLimitExceededError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )

    asyncio.run(run())
    assert len(mock.requests) == sent + 1


def test_instrument_takes_a_limiter_and_counts_its_waits(prefix: str, mock: MockProvider) -> None:
    kw = {"requests_per_minute": 60, "request_capacity": 10}  # a burst of 10, then 1 a second
    spec = Spec(service_url(REDIS_ENV), prefix, "inst", kw)
    metrics = MetricsCollector()
    aiscope.instrument(rate_limiter=spec.build())
    try:
        client = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
        with aiscope.use_scope(Scope(metrics=metrics)):
            for _ in range(12):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        aiscope.uninstrument()
    assert 'ai_lib_rate_limit_waits_total{provider="openai"} 2.0' in metrics.export_prometheus()
    with pytest.raises(TypeError, match="rate_limiter"):
        aiscope.instrument(rate_limiter="600/min")  # type: ignore[arg-type]


# -- Redis stopped mid-run ------------------------------------------------------------------
def test_redis_down_fail_open_allows_fail_closed_refuses_and_service_resumes(
    own_redis: OwnRedis,
) -> None:
    timeout = 0.3
    kw: dict[str, Any] = {"requests_per_minute": 1, "request_capacity": 2, "max_wait_s": 0,
                          "timeout_s": timeout, "retry_interval_s": 0.2}  # fmt: skip
    opened = RedisRateLimiter(own_redis.url, name="open", on_down="open", **kw)
    closed = RedisRateLimiter(own_redis.url, name="closed", on_down="closed", **kw)

    def _refusal(fn: Callable[[], float]) -> float | str:
        try:
            return fn()
        except RateLimitExceededError as exc:
            return "down" if exc.retry_after_s is None else "refused"

    def timed(fn: Callable[[], float]) -> tuple[float, float | str]:
        t0 = time.monotonic()
        out = _refusal(fn)
        return time.monotonic() - t0, out

    # up: the limit holds (a burst of 2)
    assert [timed(opened.reserve)[1] for _ in range(3)] == [0.0, 0.0, "refused"]
    assert [timed(closed.reserve)[1] for _ in range(3)] == [0.0, 0.0, "refused"]

    # 1) Redis hangs (SIGSTOP: connections accepted, never answered)
    own_redis.signal(signal.SIGSTOP)
    hung = [timed(opened.reserve) for _ in range(4)] + [timed(closed.reserve) for _ in range(4)]
    own_redis.signal(signal.SIGCONT)
    assert [out for _, out in hung] == [0.0] * 4 + ["down"] * 4
    assert max(dt for dt, _ in hung) < timeout + 0.25, hung

    # 2) Redis killed: connection refused, at once
    own_redis.kill()
    time.sleep(0.25)  # past retry_interval_s: the network is tried again
    dead = [timed(opened.reserve) for _ in range(4)] + [timed(closed.reserve) for _ in range(4)]
    assert [out for _, out in dead] == [0.0] * 4 + ["down"] * 4
    assert max(dt for dt, _ in dead) < timeout + 0.25, dead
    assert opened.allowed_while_down == 8 and opened.refused_while_down == 0
    assert closed.refused_while_down == 8 and closed.allowed_while_down == 0
    assert opened.unavailable_count >= 2 and closed.unavailable_count >= 2

    async def adown() -> list[tuple[float, float | str]]:
        out = []
        for lim in (opened, closed):
            t0 = time.monotonic()
            try:
                res: float | str = await lim.reserve_async()
            except RateLimitExceededError:
                res = "down"
            out.append((time.monotonic() - t0, res))
        return out

    adead = asyncio.run(adown())
    assert [r for _, r in adead] == [0.0, "down"]
    assert max(dt for dt, _ in adead) < timeout + 0.25, adead

    # 3) Redis back (empty: a restart without persistence): the limits apply again
    own_redis.start()
    time.sleep(0.25)
    assert [_refusal(opened.reserve) for _ in range(3)] == [0.0, 0.0, "refused"]
    assert [_refusal(closed.reserve) for _ in range(3)] == [0.0, 0.0, "refused"]
    assert opened.snapshot().available_requests is not None


def test_bad_configuration_is_named() -> None:
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match="on_down"):
        RedisRateLimiter(url, name="x", requests_per_minute=1, on_down="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_wait_s"):
        RedisRateLimiter(url, name="x", requests_per_minute=1, max_wait_s=-1)
    with pytest.raises(ValueError, match="name"):
        RedisRateLimiter(url, name="", requests_per_minute=1)
    with pytest.raises(ValueError, match="requests_per_minute"):
        RedisRateLimiter(url, name="x", requests_per_minute=0)
    with pytest.raises(ValueError, match="prefix"):
        RedisRateLimiter(url, name="x", prefix="a{b}")
    with pytest.raises(ConfigurationError, match="rate_limiter"):
        AiClient("openai/gpt-4o", api_key="k", rate_limiter="600/min")  # type: ignore[arg-type]
    lim = RedisRateLimiter(url, name="team{a}", requests_per_minute=1)
    assert lim.key.count("{") == 1 and lim.key.endswith("}")  # one hash tag: one slot


def test_cancelled_wait_gives_back_and_async_calls_correct_the_estimate(
    prefix: str, mock: MockProvider
) -> None:
    url = service_url(REDIS_ENV)
    lim = Spec(url, prefix, "cancel", {"requests_per_minute": 60}).build()  # burst of 1

    async def cancel_a_wait() -> tuple[float | None, float | None]:
        await lim.acquire_async()  # the burst
        waiter = asyncio.create_task(lim.acquire_async())  # waits ~1 s
        await asyncio.sleep(0.2)
        assert lim.snapshot().waiting == 1
        before = lim.snapshot().available_requests  # about -1 + 0.2: the waiter's share
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(0.1)  # the give-back runs as a task
        return before, lim.snapshot().available_requests

    before, after = asyncio.run(cancel_a_wait())
    assert before is not None and after is not None
    assert before < -0.5 and after > 0.1, (before, after)  # the share came back

    # an async AiClient call: the estimate (prompt + max_tokens) is corrected to the usage
    tokens = Spec(url, prefix, "usage", {"tokens_per_minute": 6, "token_capacity": 10_000}).build()
    client = _client(mock, tokens, MetricsCollector())

    async def call() -> int:
        _, stats = await client.chat().user("hi").max_tokens(5000).execute_with_stats()
        await asyncio.sleep(0.1)  # the correction runs as a task on the loop
        await tokens.aclose()
        return stats.total_tokens

    used = asyncio.run(call())
    left = tokens.snapshot().available_tokens
    assert left is not None and left == pytest.approx(10_000 - used, abs=1), (left, used)


_forked: RedisRateLimiter | None = None


def _reserve_in_child(_: int) -> str:
    assert _forked is not None
    try:
        return f"{_forked.reserve():.0f}"
    except RateLimitExceededError:
        return "refused"


def test_a_forked_child_shares_the_parents_limiter(prefix: str) -> None:
    global _forked
    _forked = Spec(service_url(REDIS_ENV), prefix, "fork", {"requests_per_minute": 1,
                   "request_capacity": 3, "max_wait_s": 0}).build()  # fmt: skip
    assert _forked.reserve() == 0.0  # the parent's connection is open when it forks
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_reserve_in_child, range(4))
    assert sorted(children) == ["0", "0", "refused", "refused"]  # 3 in all, parent included
    with pytest.raises(RateLimitExceededError):
        _forked.reserve()
