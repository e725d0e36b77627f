"""RedisLedger and PostgresLedger against the real services (issue 14 items 2 and 3).

The shared services come from ``AISCOPE_TEST_REDIS_URL`` and
``AISCOPE_TEST_POSTGRES_URL``; without them these tests skip (and fail when
``CI=true``). Each test works under its own Redis key prefix (deleted afterwards,
never FLUSHALL) or its own PostgreSQL schema (dropped afterwards). The outage test
starts and kills its own ``redis-server``; the shared Redis is never touched.

Calls go through :class:`aiscope.AiClient` over real HTTP to aiscope.testing's
mock provider, each with a known cost: input tokens are free and the mock answers
exactly ``max_tokens`` output tokens, so estimate == actual == $0.01 and exactly
100 calls fit in $1.00.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiscope
from aiscope import MetricsCollector
from aiscope.client import AiClient
from aiscope.cost import (
    AsyncRedisLedger,
    Budget,
    BudgetExceededError,
    BudgetUnavailableError,
    CostTracker,
    LedgerUnavailableError,
    PostgresLedger,
    Pricing,
    RedisLedger,
)
from aiscope.cost._remote import RemoteLedger
from aiscope.resilience.retry import RetryPolicy
from aiscope.testing import Behavior, MockProvider
from tests.support.redis_support import PG_ENV, REDIS_ENV, OwnRedis, redis_prefix, service_url

OUT_TOKENS = 10
#: free input, $1000 per million output tokens: 10 output tokens cost exactly $0.01
PRICES = {"openai/gpt-4o": {"input_mtok": 0, "output_mtok": 1000}}
CALL_USD = 0.01


@dataclass(frozen=True)
class Spec:
    """How to build a ledger in any process (picklable for spawned workers)."""

    kind: str
    url: str
    where: str  # Redis key prefix or PostgreSQL schema
    lease_s: float = 600.0
    timeout_s: float = 2.0
    on_down: str = "closed"

    def build(self) -> RemoteLedger:
        if self.kind == "redis":
            return RedisLedger(
                self.url,
                prefix=self.where,
                lease_s=self.lease_s,
                timeout_s=self.timeout_s,
                on_down=self.on_down,  # type: ignore[arg-type]
            )
        return PostgresLedger(
            self.url,
            schema=self.where,
            pool_size=4,  # 4 processes x 4: the shared server has other clients
            lease_s=self.lease_s,
            timeout_s=self.timeout_s,
            on_down=self.on_down,  # type: ignore[arg-type]
        )


def _redis_spec() -> Iterator[Spec]:
    url = service_url(REDIS_ENV)
    with redis_prefix(url, "ledger") as prefix:
        yield Spec("redis", url, prefix)


def _pg_spec() -> Iterator[Spec]:
    import psycopg

    url = service_url(PG_ENV)
    schema = f"aiscope_ledger_{uuid.uuid4().hex[:12]}"
    try:
        yield Spec("postgres", url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["redis", "postgres"])
def spec(request: pytest.FixtureRequest) -> Iterator[Spec]:
    """A fresh place for a ledger on each of the two services."""
    yield from (_redis_spec() if request.param == "redis" else _pg_spec())


@pytest.fixture
def redis_spec() -> Iterator[Spec]:
    yield from _redis_spec()


@pytest.fixture
def pg_spec() -> Iterator[Spec]:
    yield from _pg_spec()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProvider]:
    with MockProvider() as m:
        yield m


def _client(base_url: str, tracker: CostTracker) -> AiClient:
    built = (
        AiClient.builder()
        .model("openai/gpt-4o")
        .api_key("test-key-123456")
        .base_url(base_url)
        .metrics(MetricsCollector())
        .cost_tracker(tracker)
        .retry(RetryPolicy(max_retries=0))
        .build()
    )
    assert isinstance(built, AiClient)
    return built


def _call(client: AiClient, call_id: str) -> None:
    client.chat().user(f"call {call_id}").max_tokens(OUT_TOKENS).execute_sync()


def _sent_ids(mock: MockProvider, tag: str) -> list[str]:
    """The call ids the mock received (from the prompt text), for this test's tag."""
    out = []
    for r in mock.requests:
        body = r.body or {}
        for m in body.get("messages", []):
            text = m.get("content")
            if isinstance(text, str) and text.startswith(f"call {tag}-"):
                out.append(text.removeprefix("call "))
    return out


# -- the interface ----------------------------------------------------------------------------
def test_remote_ledger_reserves_settles_and_lands_exactly_on_the_limit(spec: Spec) -> None:
    ledger = spec.build()
    key = "default:total:all"
    # 15 x $0.0075 + $0.0075 == $0.12 exactly in integer nano-dollars
    ids = [ledger.try_reserve(key, 0.0075, 0.12) for _ in range(16)]
    assert all(ids)
    assert ledger.reserved(key) == pytest.approx(0.12, abs=1e-12)
    assert ledger.try_reserve(key, 1e-9, 0.12) is None  # one nano-dollar more is refused
    for rid in ids:
        ledger.settle(key, rid, 0.0075)
    assert ledger.spent(key) == 0.12
    assert ledger.reserved(key) == 0.0
    # a settle without a reservation, and one of an unknown id, only add spend
    assert ledger.settle(key, None, 0.01) == pytest.approx(0.13)
    assert ledger.settle(key, "no-such-id", 0.0) == pytest.approx(0.13)
    assert ledger.reserved(key) == 0.0


def test_a_refusal_from_a_remote_ledger_reports_what_was_spent_and_held(spec: Spec) -> None:
    tracker = CostTracker(budget_usd=0.025, ledger=spec.build(), pricing=Pricing(PRICES))
    first = tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
    second = tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
    tracker.release(first)
    tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
    with pytest.raises(BudgetExceededError) as err:
        tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
    assert (err.value.spent_usd, err.value.reserved_usd) == (0.0, pytest.approx(0.02))
    tracker.release(second)
    st = tracker.budget_statuses()[0]
    assert (st.spent_usd, st.reserved_usd) == (0.0, pytest.approx(0.01))


def test_redis_keys_share_a_cluster_slot_and_expire_after_their_window(
    redis_spec: Spec,
) -> None:
    from redis.crc import key_slot

    ledger = redis_spec.build()
    assert isinstance(ledger, RedisLedger)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for key in (f"team:daily:{today}", "we{ir}d:daily:" + today):
        h, z = ledger._keys(key)
        assert key_slot(h.encode()) == key_slot(z.encode())
        assert ledger.try_reserve(key, 0.5, 1.0) is not None
        ttl = ledger.client.ttl(h)
        day_end = (time.time() // 86400 + 1) * 86400
        assert day_end - time.time() + 3600 - 5 <= ttl <= day_end - time.time() + 3600 + 5
        assert ledger.client.ttl(z) == pytest.approx(ttl, abs=2)
    ledger.try_reserve("b:total:all", 0.1, 1.0)
    assert ledger.client.ttl(ledger._keys("b:total:all")[0]) == -1  # total: kept


def test_remote_ledgers_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisLedger("redis://127.0.0.1:1/0", prefix="a{b}:")
    with pytest.raises(ValueError, match="on_ledger_down"):
        RedisLedger("redis://127.0.0.1:1/0", on_down="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        RedisLedger("redis://127.0.0.1:1/0", timeout_s=0)
    with pytest.raises(ValueError, match="exactly one"):
        RedisLedger()
    with pytest.raises(ValueError, match="on_ledger_down"):
        Budget(1.0, on_ledger_down="sometimes")  # type: ignore[arg-type]


def test_remote_ledgers_refuse_bad_amounts_by_name(spec: Spec) -> None:
    ledger = spec.build()
    with pytest.raises(ValueError, match="amount must be a finite"):
        ledger.try_reserve("k:total:all", float("nan"), 1.0)
    with pytest.raises(ValueError, match="amount must be >= 0"):
        ledger.try_reserve("k:total:all", -0.5, 1.0)
    with pytest.raises(ValueError, match="limit must be a finite"):
        ledger.try_reserve("k:total:all", 0.5, float("inf"))
    with pytest.raises(ValueError, match="actual must be a finite"):
        ledger.settle("k:total:all", None, float("nan"))
    # a limit beyond int64 nano-dollars is clamped, not an overflow in the store
    assert ledger.try_reserve("k:total:all", 0.5, 1e12) is not None
    assert ledger.reserved("k:total:all") == 0.5


def test_import_aiscope_does_not_import_redis_or_psycopg() -> None:
    code = "import sys, aiscope; print(sorted(m for m in ('redis', 'psycopg') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(Path(aiscope.__file__).parent.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


# -- 4 processes x 16 threads on one $1.00 budget ---------------------------------------------
def _storm_worker(spec: Spec, base_url: str, tag: str, threads: int, calls: int) -> Any:
    tracker = CostTracker(budget_usd=1.0, ledger=spec.build(), pricing=Pricing(PRICES))
    client = _client(base_url, tracker)

    def one(i: int) -> tuple[str, bool]:
        call_id = f"{tag}-{os.getpid()}-{i}"
        try:
            _call(client, call_id)
        except BudgetExceededError:
            return call_id, False
        return call_id, True

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(threads * calls)))
    return [c for c, ok in results if ok], [c for c, ok in results if not ok]


def test_one_dollar_budget_shared_by_4_processes_x_16_threads(
    spec: Spec, mock: MockProvider
) -> None:
    mock.behavior = Behavior(reply_tokens=OUT_TOKENS)
    tag = uuid.uuid4().hex[:8]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        parts = pool.starmap(_storm_worker, [(spec, mock.base_url("openai"), tag, 16, 4)] * 4)
    admitted = [c for a, _ in parts for c in a]
    refused = [c for _, r in parts for c in r]
    assert len(admitted) + len(refused) == 4 * 16 * 4
    ledger = spec.build()
    spent = ledger.spent("default:total:all")
    # never more than the budget plus one call's estimate; here estimate == actual, so
    # the budget fills exactly: 100 calls of $0.01
    assert spent <= 1.0 + CALL_USD
    assert len(admitted) == 100
    assert spent == pytest.approx(len(admitted) * CALL_USD, abs=1e-9)
    assert ledger.reserved("default:total:all") == 0.0
    sent = _sent_ids(mock, tag)
    assert sorted(sent) == sorted(admitted)  # every refused call sent no request
    assert not set(sent) & set(refused)


# -- kill -9 while holding reservations -------------------------------------------------------
def _hold_and_die(spec: Spec, ready: Any) -> None:
    ledger = spec.build()
    key = "default:total:all"
    rid = ledger.try_reserve(key, 0.25, 1.0)
    ledger.settle(key, rid, 0.1)  # committed: must survive the kill
    held = [ledger.try_reserve(key, 0.2, 1.0) for _ in range(3)]
    assert all(held)
    ready.set()
    time.sleep(600)


def test_kill_9_while_holding_reservations_leaks_nothing(spec: Spec) -> None:
    lease = 2.0
    spec = Spec(spec.kind, spec.url, spec.where, lease_s=lease)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_and_die, args=(spec, ready))
    proc.start()
    assert ready.wait(60)
    t_held = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    ledger = spec.build()
    key = "default:total:all"
    assert ledger.spent(key) == pytest.approx(0.1)
    assert ledger.reserved(key) == pytest.approx(0.6)
    assert ledger.try_reserve(key, 0.31, 1.0) is None  # the dead process still holds 0.6
    time.sleep(max(0.0, lease + 0.3 - (time.monotonic() - t_held)))
    assert ledger.reserved(key) == 0.0
    assert ledger.spent(key) == pytest.approx(0.1)  # nothing committed was lost
    rid = ledger.try_reserve(key, 0.9, 1.0)  # the full remaining capacity
    assert rid is not None
    assert ledger.try_reserve(key, 1e-9, 1.0) is None


# -- Redis stopped mid-run --------------------------------------------------------------------
def _timed(fn: Callable[[], None]) -> tuple[float, BaseException | None]:
    t0 = time.monotonic()
    try:
        fn()
    except BudgetExceededError as exc:
        return time.monotonic() - t0, exc
    return time.monotonic() - t0, None


def test_redis_down_fail_closed_refuses_fail_open_allows_and_service_resumes(
    own_redis: OwnRedis, mock: MockProvider
) -> None:
    mock.behavior = Behavior(reply_tokens=OUT_TOKENS)
    timeout = 0.3
    ledger = RedisLedger(own_redis.url, timeout_s=timeout, retry_interval_s=0.2)
    closed = CostTracker(
        budgets=[Budget(10.0, name="closed")], ledger=ledger, pricing=Pricing(PRICES)
    )
    opened = CostTracker(
        budgets=[Budget(10.0, name="open", on_ledger_down="open")],
        ledger=ledger,
        pricing=Pricing(PRICES),
    )
    c_closed, c_open = (
        _client(mock.base_url("openai"), closed),
        _client(mock.base_url("openai"), opened),
    )
    tag = uuid.uuid4().hex[:8]
    n = 0
    refused: list[str] = []

    def both(expect_down: bool) -> tuple[float, float]:
        nonlocal n
        n += 1
        closed_id = f"{tag}-closed-{n}"
        dt_closed, exc = _timed(lambda: _call(c_closed, closed_id))
        if expect_down:
            assert isinstance(exc, BudgetUnavailableError), exc
            assert "unreachable" in str(exc)
            refused.append(closed_id)
        else:
            assert exc is None
        dt_open, exc = _timed(lambda: _call(c_open, f"{tag}-open-{n}"))
        assert exc is None  # fail-open: allowed either way
        return dt_closed, dt_open

    for _ in range(3):
        both(expect_down=False)
    assert ledger.spent("closed:total:all") == pytest.approx(0.03)

    # 1) Redis hangs (SIGSTOP: connections accepted, never answered): bounded by timeout
    own_redis.signal(signal.SIGSTOP)
    times = []
    for _ in range(5):
        times.extend(both(expect_down=True))
        time.sleep(0.25)  # past retry_interval_s: the next call tries Redis again
    own_redis.signal(signal.SIGCONT)
    print(f"Redis frozen: slowest call {max(times) * 1000:.0f} ms (timeout {timeout * 1000:.0f})")
    # HTTP to the mock and the client's own work come on top of the ledger's wait
    assert max(times) < timeout + 0.25, times
    assert opened.allowed_while_ledger_down == 5
    time.sleep(0.25)
    both(expect_down=False)  # service resumes
    # the open budget's spend during the outage was buffered and written: nothing lost
    # (a settle that timed out after Redis had read it may count twice: the safe side)
    spent_open = ledger.spent("open:total:all")
    assert 0.09 - 1e-9 <= spent_open <= 0.09 + 5 * CALL_USD + 1e-9
    assert ledger.pending_usd == 0.0

    # 2) Redis killed: connection refused at once
    own_redis.kill()
    times = []
    for _ in range(5):
        times.extend(both(expect_down=True))
    print(f"Redis killed: slowest call {max(times) * 1000:.0f} ms")
    assert max(times) < timeout + 0.25, times
    assert opened.allowed_while_ledger_down == 10
    assert ledger.pending_usd == pytest.approx(5 * CALL_USD)

    # 3) Redis back on the same port (empty: it kept nothing on disk)
    own_redis.start()
    time.sleep(0.25)
    both(expect_down=False)
    assert ledger.pending_usd == 0.0
    assert ledger.spent("open:total:all") == pytest.approx(6 * CALL_USD)
    assert ledger.spent("closed:total:all") == pytest.approx(CALL_USD)
    sent = _sent_ids(mock, tag)
    assert len(refused) == 10
    assert not set(sent) & set(refused)  # a refused call sent no request
    assert len(sent) == 2 * n - len(refused)
    assert math.isfinite(opened.budget_statuses()[0].spent_usd)


def test_budget_statuses_while_the_ledger_is_down_are_unknown_not_an_error(
    own_redis: OwnRedis,
) -> None:
    ledger = RedisLedger(own_redis.url, timeout_s=0.3)
    tracker = CostTracker(budget_usd=1.0, ledger=ledger, pricing=Pricing(PRICES))
    own_redis.kill()
    st = tracker.budget_statuses()[0]
    assert math.isnan(st.spent_usd) and math.isnan(st.reserved_usd)
    report = tracker.get_report()  # never raises for an unreachable store
    assert report.call_count == 0
    with pytest.raises(BudgetUnavailableError):
        tracker.reserve("openai", "gpt-4o", 10, OUT_TOKENS)


def test_postgres_down_at_start_up_fails_closed_or_open_at_once() -> None:
    # nothing listens on port 1: connections are refused at once
    ledger = PostgresLedger("postgresql://postgres@127.0.0.1:1/test", timeout_s=0.5)
    closed = CostTracker(budgets=[Budget(1.0, name="closed")], ledger=ledger)
    opened = CostTracker(budgets=[Budget(1.0, name="open", on_ledger_down="open")], ledger=ledger)
    for _ in range(3):
        t0 = time.monotonic()
        with pytest.raises(BudgetUnavailableError, match="PostgreSQL unreachable"):
            closed.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
        held = opened.reserve("openai", "gpt-4o", 10, OUT_TOKENS)
        assert held is not None
        opened.release(held)
        assert time.monotonic() - t0 < 0.5
        time.sleep(0.5)  # past retry_interval_s: the next call tries to connect again
    assert opened.allowed_while_ledger_down == 3
    assert ledger.unavailable_count >= 6


def test_postgres_ledger_reconnects_when_its_sessions_are_ended(pg_spec: Spec) -> None:
    import psycopg

    ledger = pg_spec.build()
    assert isinstance(ledger, PostgresLedger)
    key = "default:total:all"
    with ThreadPoolExecutor(4) as pool:  # open a few pooled connections
        assert all(pool.map(lambda _: ledger.try_reserve(key, 0.1, 1.0), range(8)))
    assert ledger._opened >= 2
    # end this ledger's own sessions (only those: found by the schema in their query)
    with psycopg.connect(pg_spec.url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{pg_spec.where}%",),
        ).fetchone()
    assert ended is not None and ended[0] >= 2
    # the next operations reconnect at once: no LedgerUnavailableError, nothing lost
    assert ledger.reserved(key) == pytest.approx(0.8)
    assert ledger.try_reserve(key, 0.2, 1.0) is not None
    assert ledger.try_reserve(key, 0.1, 1.0) is None
    assert ledger.unavailable_count == 0


def test_postgres_schema_is_created_idempotently_by_racing_ledgers(pg_spec: Spec) -> None:
    with ThreadPoolExecutor(4) as pool:
        ledgers = list(pool.map(lambda _: pg_spec.build(), range(4)))
    assert all(ledger.try_reserve("k:total:all", 0.1, 1.0) for ledger in ledgers)
    assert ledgers[0].reserved("k:total:all") == pytest.approx(0.4)


# -- 4 processes x 250 asyncio tasks -------------------------------------------------------
def _async_worker(spec: Spec, base_url: str, tag: str, tasks: int) -> Any:
    import asyncio

    tracker = CostTracker(budget_usd=1.0, ledger=spec.build(), pricing=Pricing(PRICES))
    client = _client(base_url, tracker)

    async def one(i: int) -> tuple[str, bool]:
        call_id = f"{tag}-{os.getpid()}-{i}"
        try:
            await client.chat().user(f"call {call_id}").max_tokens(OUT_TOKENS).execute()
        except BudgetExceededError:
            return call_id, False
        return call_id, True

    async def main() -> list[tuple[str, bool]]:
        return list(await asyncio.gather(*(one(i) for i in range(tasks))))

    results = asyncio.run(main())
    return [c for c, ok in results if ok], [c for c, ok in results if not ok]


def test_one_dollar_budget_shared_by_4_processes_x_250_asyncio_tasks(
    spec: Spec, mock: MockProvider
) -> None:
    mock.behavior = Behavior(reply_tokens=OUT_TOKENS)
    tag = uuid.uuid4().hex[:8]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        parts = pool.starmap(_async_worker, [(spec, mock.base_url("openai"), tag, 250)] * 4)
    admitted = [c for a, _ in parts for c in a]
    refused = [c for _, r in parts for c in r]
    assert len(admitted) + len(refused) == 1000
    ledger = spec.build()
    spent = ledger.spent("default:total:all")
    assert spent <= 1.0 + CALL_USD
    assert len(admitted) == 100
    assert spent == pytest.approx(1.0, abs=1e-9)
    assert ledger.reserved("default:total:all") == 0.0
    sent = _sent_ids(mock, tag)
    assert sorted(sent) == sorted(admitted)


# -- the asyncio variant ----------------------------------------------------------------------
def _async_ledger_worker(spec: Spec, tasks: int) -> int:
    import asyncio
    import random

    async def main() -> int:
        ledger = AsyncRedisLedger(spec.url, prefix=spec.where, timeout_s=5.0)

        async def one() -> bool:
            rid = await ledger.try_reserve("default:total:all", CALL_USD, 1.0)
            if rid is None:
                return False
            await asyncio.sleep(random.uniform(0, 0.01))  # the call in flight
            await ledger.settle("default:total:all", rid, CALL_USD)
            return True

        admitted = sum(await asyncio.gather(*(one() for _ in range(tasks))))
        await ledger.aclose()
        return admitted

    return asyncio.run(main())


def test_async_redis_ledger_shares_one_budget_across_4_processes_x_250_tasks(
    redis_spec: Spec,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        admitted = sum(pool.starmap(_async_ledger_worker, [(redis_spec, 250)] * 4))
    assert admitted == 100
    sync = redis_spec.build()  # the sync ledger sees the same budget
    assert sync.spent("default:total:all") == pytest.approx(1.0, abs=1e-9)
    assert sync.reserved("default:total:all") == 0.0


async def test_async_redis_ledger_outage_is_bounded_and_buffers_spend(
    own_redis: OwnRedis,
) -> None:
    timeout = 0.3
    ledger = AsyncRedisLedger(own_redis.url, timeout_s=timeout, retry_interval_s=0.2)
    key = "default:total:all"
    rid = await ledger.try_reserve(key, 0.5, 1.0)
    assert rid is not None
    own_redis.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(LedgerUnavailableError):
        await ledger.try_reserve(key, 0.1, 1.0)
    assert time.monotonic() - t0 < timeout + 0.05
    assert await ledger.settle(key, rid, 0.25) == pytest.approx(0.25)  # buffered
    own_redis.signal(signal.SIGCONT)
    await asyncio_sleep(0.25)
    spent, _ = await ledger.state(key)  # the buffered spend is written first
    assert spent >= 0.25 - 1e-9 and ledger.pending_usd == 0.0
    await ledger.aclose()
    with pytest.raises(TypeError, match="asyncio ledger"):
        CostTracker(budget_usd=1.0, ledger=ledger)  # type: ignore[arg-type]


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
