"""Block-mode budgets under concurrency, against a real HTTP "provider" on loopback.

Acceptance: a block-mode budget of $1.00 hammered by 1,000 concurrent async calls
and by 64 threads (and by several processes sharing a SQLite ledger) never
overspends more than one call's estimate; the refused calls sent no request.

Every call goes through ``aiscope.llm_call`` and then does a genuine HTTP request
to a ``ThreadingHTTPServer`` that records the id of every request it receives
and answers with a usage no larger than the call's estimate. So:

* "sent no request" is observed on the server: the ids it received are exactly
  the ids of the admitted calls, and none of the refused ones;
* "never overspends" is checked on the ledger, on the sum of the records' costs,
  and at every request's arrival (spent + reserved, as the ledger holds them);
* "not too eager" is checked rigorously: a call may be refused only when
  ``spent + reserved + estimate > limit`` at its check. Whatever was spent then
  stays spent, and each call in flight then settles at its actual cost, so the
  final spend must exceed ``limit - estimate - (slack of the calls that may have
  been in flight)`` for every refusal (slack = estimate - actual; "may have been
  in flight" is an over-approximation from monotonic timestamps, valid across
  threads and processes). A final serial top-up then shows the budget fills to
  within one estimate of the limit.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import random
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import aiscope
from aiscope import BudgetExceededError, BudgetStatus, CostTracker, Pricing, Scope, SQLiteLedger
from aiscope.cost._periods import Period
from aiscope.cost.budget import Budget, period_bounds

LIMIT = 1.0
MODEL, PROVIDER = "gpt-4o", "openai"
#: $10 / $30 per million input / output tokens: a call of 300-700 input tokens and
#: 100-300 max output tokens is estimated at $0.006-$0.016 (~100 fit in $1).
PRICES = {f"{PROVIDER}/{MODEL}": {"input_mtok": 10, "output_mtok": 30}}
EPS = 1e-9


def _ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


# -- the fake provider ------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of connections arrive at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (a cancelled call): the client side checks answers


class FakeProvider:
    """An HTTP server on loopback that counts requests and answers with usage.

    A request is ``POST /v1/chat`` with JSON ``{"id", "input_tokens", "max_tokens"}``
    (and optionally ``"output_tokens"`` to force the answer). The answer's usage
    has exactly the input tokens and at most ``max_tokens`` output tokens.
    ``POST /fail`` answers 500 after counting the request. ``committed`` is called
    as each request arrives (before answering) to sample the budget's state.
    """

    def __init__(
        self,
        committed: Callable[[], float] | None = None,
        delay: tuple[float, float] = (0.002, 0.02),
    ) -> None:
        self.ids: list[str] = []
        self.max_in_flight = 0
        self.max_committed = 0.0
        self._in_flight = 0
        self._committed = committed
        self._delay = delay
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                req = json.loads(self.rfile.read(length))
                provider._arrived(req["id"])
                try:
                    time.sleep(random.uniform(*provider._delay))
                    if self.path == "/fail":
                        self._answer(500, {"error": "upstream failure"})
                        return
                    m = int(req["max_tokens"])
                    out = req.get("output_tokens")
                    if out is None:
                        out = m if random.random() < 0.25 else random.randint(0, m)
                    usage = {"prompt_tokens": req["input_tokens"], "completion_tokens": out}
                    self._answer(200, {"id": req["id"], "usage": usage})
                finally:
                    with provider._lock:
                        provider._in_flight -= 1

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1/chat"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _arrived(self, request_id: str) -> None:
        committed = self._committed() if self._committed is not None else 0.0
        with self._lock:
            self.ids.append(request_id)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self.max_committed = max(self.max_committed, committed)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with _OPENER.open(req, timeout=60) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


async def _apost(port: int, payload: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = json.dumps(payload).encode()
        head = (
            f"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        raw = await reader.read()  # the server closes the connection after answering
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line.split()[1] == b"200", status_line
    data: dict[str, Any] = json.loads(rest.partition(b"\r\n\r\n")[2])
    return data


# -- one call ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Attempt:
    """One attempted call, as the client saw it (times are time.monotonic())."""

    id: str
    estimate: float
    t0: float
    t1: float = 0.0
    admitted: bool = False
    cost: float = 0.0


def _shape(seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    return rng.randint(300, 700), rng.randint(100, 300)


def _payload(a: Attempt, n: int, m: int, out: int | None) -> dict[str, Any]:
    p: dict[str, Any] = {"id": a.id, "input_tokens": n, "max_tokens": m}
    if out is not None:
        p["output_tokens"] = out
    return p


def _sync_attempt(scope: Scope, url: str, n: int, m: int, out: int | None = None) -> Attempt:
    assert scope.cost_tracker is not None
    est = scope.cost_tracker.pricing.estimate(PROVIDER, MODEL, n, m)
    assert est is not None
    a = Attempt(uuid.uuid4().hex, est, time.monotonic())
    try:
        with aiscope.llm_call(
            MODEL, PROVIDER, input_tokens=n, max_output_tokens=m, scope=scope
        ) as call:
            a.admitted = True
            usage = _post(url, _payload(a, n, m, out))["usage"]
            call.set_usage(usage["prompt_tokens"], usage["completion_tokens"])
    except BudgetExceededError as exc:
        assert not a.admitted and exc.estimate_usd == est and exc.limit_usd == LIMIT
    a.t1 = time.monotonic()
    if a.admitted:
        assert call.record is not None and call.record.cost_usd is not None
        assert call.record.cost_usd <= est + EPS
        a.cost = call.record.cost_usd
    return a


async def _async_attempt(scope: Scope, port: int, n: int, m: int) -> Attempt:
    assert scope.cost_tracker is not None
    est = scope.cost_tracker.pricing.estimate(PROVIDER, MODEL, n, m)
    assert est is not None
    a = Attempt(uuid.uuid4().hex, est, time.monotonic())
    try:
        async with aiscope.llm_call(
            MODEL, PROVIDER, input_tokens=n, max_output_tokens=m, scope=scope
        ) as call:
            a.admitted = True
            usage = (await _apost(port, _payload(a, n, m, None)))["usage"]
            call.set_usage(usage["prompt_tokens"], usage["completion_tokens"])
    except BudgetExceededError as exc:
        assert not a.admitted and exc.estimate_usd == est
    a.t1 = time.monotonic()
    if a.admitted:
        assert call.record is not None and call.record.cost_usd is not None
        assert call.record.cost_usd <= est + EPS
        a.cost = call.record.cost_usd
    return a


# -- checks -----------------------------------------------------------------------------------
def _tracker(ledger: SQLiteLedger | None = None) -> CostTracker:
    return CostTracker(budget_usd=LIMIT, mode="block", ledger=ledger, pricing=Pricing(PRICES))


def _committed(tracker: CostTracker) -> Callable[[], float]:
    """Spent + reserved in the budget now (spent is read first: it only grows, so a
    sum read while calls settle can only under-, never over-state the commitment)."""

    def read() -> float:
        st = tracker.budget_statuses()[0]
        return st.spent_usd + st.reserved_usd

    return read


def _check_run(
    attempts: list[Attempt],
    server: FakeProvider,
    status: BudgetStatus,
    refused_reported: int,
) -> dict[str, Any]:
    """Assert the acceptance properties of one storm; returns the measured numbers."""
    admitted = [a for a in attempts if a.admitted]
    refused = [a for a in attempts if not a.admitted]
    # the refused calls sent no request; every admitted call sent exactly one
    assert len(server.ids) == len(set(server.ids))
    assert sorted(server.ids) == sorted(a.id for a in admitted)
    assert not set(server.ids) & {a.id for a in refused}
    assert refused_reported == len(refused)
    assert len(refused) > 0, "the storm never hit the limit"
    max_estimate = max(a.estimate for a in attempts)
    assert len(admitted) >= LIMIT / max_estimate - 1
    # never overspent: not in the ledger, not in the records, not while in flight
    spent = status.spent_usd
    costs = math.fsum(a.cost for a in admitted)
    assert spent == pytest.approx(costs, abs=EPS)
    assert spent <= LIMIT + EPS
    assert costs <= LIMIT + EPS
    assert server.max_committed <= LIMIT + EPS
    assert status.reserved_usd <= EPS  # every reservation was settled
    # not too eager: each refusal was forced by spent + reserved + estimate > limit
    bound = -math.inf
    for r in refused:
        slack = math.fsum(c.estimate - c.cost for c in admitted if c.t0 < r.t1 and c.t1 > r.t0)
        bound = max(bound, LIMIT - r.estimate - slack)
    assert spent > bound - EPS, (spent, bound)
    return {
        "attempts": len(attempts),
        "admitted": len(admitted),
        "refused": len(refused),
        "requests": len(server.ids),
        "spent": spent,
        "eagerness_bound": bound,
        "max_estimate": max_estimate,
        "max_committed_at_request": server.max_committed,
        "max_requests_in_flight": server.max_in_flight,
    }


def _top_up(scope: Scope, url: str) -> float:
    """Serial calls of the smallest shape (costing exactly their estimate) until one is
    refused: the budget then holds less than one estimate. Returns the final spend."""
    tracker = scope.cost_tracker
    assert tracker is not None
    for _ in range(1000):
        a = _sync_attempt(scope, url, 300, 100, out=100)
        st = tracker.budget_statuses()[0]
        assert st.spent_usd <= LIMIT + EPS and st.reserved_usd <= EPS
        if not a.admitted:
            assert st.spent_usd + a.estimate > LIMIT
            assert st.spent_usd >= LIMIT - a.estimate - EPS
            return st.spent_usd
        assert a.cost == pytest.approx(a.estimate, abs=EPS)
    raise AssertionError("the budget never filled")


def _report(name: str, numbers: dict[str, Any], **more: Any) -> None:
    shown = {k: round(v, 6) if isinstance(v, float) else v for k, v in {**numbers, **more}.items()}
    print(f"\n{name}: {shown}")


# -- the storms -------------------------------------------------------------------------------
async def test_1000_concurrent_async_calls_never_overspend() -> None:
    tracker = _tracker()
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    with FakeProvider(committed=_committed(tracker)) as server:
        go = asyncio.Event()
        live = 0
        max_live = 0

        async def one(i: int) -> Attempt:
            nonlocal live, max_live
            live += 1
            max_live = max(max_live, live)
            await go.wait()
            if i >= 400:  # the rest arrive while the first wave settles
                await asyncio.sleep(random.Random(-i).uniform(0.0, 0.4))
            n, m = _shape(i)
            try:
                return await _async_attempt(scope, server.port, n, m)
            finally:
                live -= 1

        tasks = [asyncio.create_task(one(i)) for i in range(1000)]
        while max_live < 1000:
            await asyncio.sleep(0)
        go.set()
        attempts = await asyncio.gather(*tasks)
        numbers = _check_run(
            attempts, server, tracker.budget_statuses()[0], tracker.get_report().refused_calls
        )
        final = _top_up(scope, server.url)
    assert max_live == 1000
    assert numbers["max_requests_in_flight"] >= 8  # overlap (84 when idle, 11 under load)
    _report("async x1000", numbers, tasks_alive_at_once=max_live, spent_after_top_up=final)


def test_64_threads_never_overspend() -> None:
    tracker = _tracker()
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    with FakeProvider(committed=_committed(tracker)) as server:
        start = threading.Barrier(64)

        def one(i: int) -> Attempt:
            if i < 64:
                start.wait(timeout=60)  # the first 64 calls start together
            n, m = _shape(10_000 + i)
            return _sync_attempt(scope, server.url, n, m)

        with ThreadPoolExecutor(max_workers=64) as pool:
            attempts = list(pool.map(one, range(640)))
        numbers = _check_run(
            attempts, server, tracker.budget_statuses()[0], tracker.get_report().refused_calls
        )
        final = _top_up(scope, server.url)
    assert numbers["max_requests_in_flight"] >= 4
    _report("threads x64", numbers, spent_after_top_up=final)


def _process_worker(
    path: str, url: str, proc: int, attempts: int, threads: int, barrier: Any, out: Any
) -> None:
    """One process of the shared-ledger storm (run under multiprocessing spawn)."""
    try:
        barrier.wait(timeout=120)
        tracker = _tracker(SQLiteLedger(path))
        scope = Scope(cost_tracker=tracker)

        def one(i: int) -> Attempt:
            n, m = _shape(1_000_000 * (proc + 1) + i)
            return _sync_attempt(scope, url, n, m)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(one, range(attempts)))
        out.put((proc, results, tracker.get_report().refused_calls, None))
    except BaseException:
        out.put((proc, [], 0, traceback.format_exc()))


def test_processes_sharing_a_sqlite_ledger_never_overspend(tmp_path: Path) -> None:
    path = tmp_path / "budget.db"
    parent = _tracker(SQLiteLedger(path))
    n_procs, threads, per_proc = 3, 8, 200
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_procs)
    out = ctx.Queue()
    with FakeProvider(committed=_committed(_tracker(SQLiteLedger(path)))) as server:
        procs = [
            ctx.Process(
                target=_process_worker,
                args=(str(path), server.url, p, per_proc, threads, barrier, out),
            )
            for p in range(n_procs)
        ]
        for p in procs:
            p.start()
        try:
            results = [out.get(timeout=300) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=60)
            for p in procs:
                if p.is_alive():
                    p.terminate()
        errors = [err for _, _, _, err in results if err]
        assert not errors, errors[0]
        assert all(p.exitcode == 0 for p in procs)
        attempts = [a for _, res, _, _ in results for a in res]
        refused = sum(r for _, _, r, _ in results)
        assert all(any(a.admitted for a in res) for _, res, _, _ in results)
        numbers = _check_run(attempts, server, parent.budget_statuses()[0], refused)
        final = _top_up(Scope(cost_tracker=parent), server.url)
    _report(f"{n_procs} processes x {threads} threads", numbers, spent_after_top_up=final)


# -- failures release their reservation -------------------------------------------------------
def test_a_failing_call_releases_its_reservation() -> None:
    tracker = _tracker()
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    with FakeProvider(delay=(0.0, 0.001)) as server:
        ok = _sync_attempt(scope, server.url, 500, 200, out=200)
        before = tracker.budget_statuses()[0]
        assert before.spent_usd == pytest.approx(ok.cost) and before.reserved_usd == 0.0

        # the provider fails: the request went out, the estimate is given back
        with (
            pytest.raises(urllib.error.HTTPError),
            aiscope.llm_call(
                MODEL, PROVIDER, input_tokens=500, max_output_tokens=200, scope=scope
            ) as call,
        ):
            assert tracker.budget_statuses()[0].reserved_usd == pytest.approx(ok.estimate)
            _post(server.url.replace("/v1/chat", "/fail"), {"id": "boom", "input_tokens": 1})
        assert server.ids[-1] == "boom"
        # the block fails before sending anything
        with (
            pytest.raises(ValueError, match="bad prompt"),
            aiscope.llm_call(MODEL, PROVIDER, input_tokens=500, scope=scope),
        ):
            raise ValueError("bad prompt")
        assert len(server.ids) == 2
    after = tracker.budget_statuses()[0]
    assert after.spent_usd == before.spent_usd and after.reserved_usd == 0.0
    assert call.record is not None and call.record.status == "error"
    assert tracker.get_report().error_count == 2

    # begin/abandon (an adapter whose request never produced a record)
    pending = scope.begin(MODEL, PROVIDER, 500, 200)
    assert tracker.budget_statuses()[0].reserved_usd == pytest.approx(ok.estimate)
    scope.abandon(pending)
    scope.abandon(pending)  # idempotent
    st = tracker.budget_statuses()[0]
    assert st.spent_usd == before.spent_usd and st.reserved_usd == 0.0

    # usage reported before the failure is charged, the rest of the estimate released
    with (
        pytest.raises(ConnectionError),
        aiscope.llm_call(
            MODEL, PROVIDER, input_tokens=500, max_output_tokens=200, scope=scope
        ) as c,
    ):
        c.set_usage(500, 20)
        raise ConnectionError("stream cut")
    st = tracker.budget_statuses()[0]
    assert st.spent_usd == pytest.approx(before.spent_usd + 500e-5 + 20 * 3e-5)
    assert st.reserved_usd == 0.0


async def test_cancelled_async_calls_release_their_reservations() -> None:
    tracker = _tracker()
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    with FakeProvider(delay=(5.0, 5.0)) as server:
        started = 0

        async def slow(i: int) -> None:
            nonlocal started
            n, m = _shape(i)
            async with aiscope.llm_call(
                MODEL, PROVIDER, input_tokens=n, max_output_tokens=m, scope=scope
            ):
                started += 1
                await _apost(server.port, {"id": str(i), "input_tokens": n, "max_tokens": m})

        tasks = [asyncio.create_task(slow(i)) for i in range(50)]
        deadline = time.monotonic() + 30
        while len(server.ids) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        st = tracker.budget_statuses()[0]
        assert started == 50 and st.reserved_usd > 0.3 and st.spent_usd == 0.0
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    st = tracker.budget_statuses()[0]
    assert st.reserved_usd <= EPS and st.spent_usd == 0.0
    assert tracker.get_report().error_count == 50


# -- windows ----------------------------------------------------------------------------------
def test_period_bounds_at_utc_boundaries() -> None:
    # daily: the UTC midnight, including a leap day and the year's end
    label, start, end = period_bounds("daily", _ts(2024, 2, 28, 23, 59, 59) + 0.999)
    assert (label, start, end) == ("2024-02-28", _ts(2024, 2, 28), _ts(2024, 2, 29))
    assert period_bounds("daily", _ts(2024, 2, 29)) == (
        "2024-02-29",
        _ts(2024, 2, 29),
        _ts(2024, 3, 1),
    )
    assert period_bounds("daily", _ts(2024, 12, 31, 23, 59, 59))[2] == _ts(2025, 1, 1)
    # monthly: December runs into January of the next year
    assert period_bounds("monthly", _ts(2023, 12, 31, 23, 59, 59) + 0.999) == (
        "2023-12",
        _ts(2023, 12, 1),
        _ts(2024, 1, 1),
    )
    assert period_bounds("monthly", _ts(2024, 1, 1))[0] == "2024-01"
    # February has 29 days in a leap year, 28 otherwise
    assert period_bounds("monthly", _ts(2024, 2, 29, 12)) == (
        "2024-02",
        _ts(2024, 2, 1),
        _ts(2024, 3, 1),
    )
    assert period_bounds("monthly", _ts(2023, 2, 15))[1:] == (_ts(2023, 2, 1), _ts(2023, 3, 1))
    assert period_bounds("monthly", _ts(2024, 3, 1))[0] == "2024-03"
    assert period_bounds("monthly", _ts(2100, 2, 10))[2] - _ts(2100, 2, 1) == 28 * 86400
    assert period_bounds("total", _ts(2024, 2, 29)) == ("all", 0.0, math.inf)


def test_period_key_changes_exactly_at_the_boundary() -> None:
    p = Period(Budget(1.0, "daily", name="day"))
    midnight = _ts(2024, 3, 1)
    assert p.current(midnight - 1e-3) == "day:daily:2024-02-29"
    assert p.current(midnight) == "day:daily:2024-03-01"
    assert p.current(midnight - 1e-3) == "day:daily:2024-02-29"  # a clock stepping back
    m = Period(Budget(1.0, "monthly", name="month"))
    new_year = _ts(2024, 1, 1)
    assert m.current(new_year - 1e-3) == "month:monthly:2023-12"
    assert m.current(new_year) == "month:monthly:2024-01"
    assert m.label == "2024-01"


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    """A fake wall clock for budget windows (the tracker's and the budgets' time.time)."""
    c = _Clock(_ts(2024, 2, 29, 23, 59, 0))
    monkeypatch.setattr("aiscope.cost.tracker.time", c)
    monkeypatch.setattr("aiscope.cost._periods.time", c)
    yield c


def _fill(scope: Scope) -> int:
    """Calls costing their estimate until one is refused; returns how many got through."""
    for admitted in range(1000):
        try:
            with aiscope.llm_call(
                MODEL, PROVIDER, input_tokens=500, max_output_tokens=200, scope=scope
            ) as call:
                call.set_usage(500, 200)  # $0.011
        except BudgetExceededError:
            return admitted
    raise AssertionError("never refused")


def test_daily_budget_resets_at_utc_midnight(
    clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")  # local midnight must not matter
    time.tzset()
    try:
        tracker = CostTracker(budget_usd=0.1, window="daily", pricing=Pricing(PRICES))
        scope = Scope(cost_tracker=tracker)
        assert _fill(scope) == 9  # 9 x $0.011 = $0.099
        assert tracker.budget_statuses()[0].period == "2024-02-29"
        clock.now = _ts(2024, 3, 1) - 1e-3
        assert _fill(scope) == 0  # still Feb 29 (UTC)
        clock.now = _ts(2024, 3, 1)
        st = tracker.budget_statuses()[0]
        assert (st.period, st.spent_usd, st.remaining_usd) == ("2024-03-01", 0.0, 0.1)
        assert _fill(scope) == 9
        assert tracker.ledger.spent("default:daily:2024-02-29") == pytest.approx(0.099)
        assert tracker.spent == pytest.approx(0.099)
        assert tracker.get_report().total_cost == pytest.approx(0.198)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_monthly_budget_resets_at_new_year(clock: _Clock) -> None:
    clock.now = _ts(2023, 12, 31, 23, 59, 59)
    tracker = CostTracker(
        budgets=[Budget(0.05, "monthly", name="month"), Budget(1.0, "total", name="all")],
        pricing=Pricing(PRICES),
    )
    scope = Scope(cost_tracker=tracker)
    assert _fill(scope) == 4
    clock.now = _ts(2024, 1, 1)
    assert _fill(scope) == 4
    spent = {s.name: (s.period, round(s.spent_usd, 9)) for s in tracker.budget_statuses()}
    assert spent == {"month": ("2024-01", 0.044), "all": ("all", 0.088)}


def test_a_call_in_flight_at_midnight_is_charged_to_the_day_it_was_admitted(
    clock: _Clock,
) -> None:
    seen: list[tuple[str, str, float]] = []
    tracker = CostTracker(
        budget_usd=0.1,
        window="daily",
        pricing=Pricing(PRICES),
        on_threshold=lambda t, st: seen.append(("threshold", st.period, st.spent_usd)),
    )
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    assert _fill(scope) == 9
    assert seen == [("threshold", "2024-02-29", pytest.approx(0.088))]
    clock.now = _ts(2024, 3, 1) - 60
    with aiscope.llm_call(
        MODEL, PROVIDER, input_tokens=1, max_output_tokens=1, scope=scope
    ) as late:
        clock.now = _ts(2024, 3, 1) + 1
        with aiscope.llm_call(
            MODEL, PROVIDER, input_tokens=500, max_output_tokens=200, scope=scope
        ) as early:
            early.set_usage(500, 200)  # the new day's first call
        late.set_usage(1, 1)
    day1 = tracker.ledger.spent("default:daily:2024-02-29")
    assert day1 == pytest.approx(0.099 + 4e-5)  # the late call settles on the old day
    assert tracker.ledger.reserved("default:daily:2024-02-29") == 0.0
    st = tracker.budget_statuses()[0]
    assert (st.period, st.spent_usd) == ("2024-03-01", pytest.approx(0.011))
    # the old day's spend is not announced as the new day's
    assert seen == [("threshold", "2024-02-29", pytest.approx(0.088))]
    assert _fill(scope) == 8  # the new day has its whole budget
    assert seen == [
        ("threshold", "2024-02-29", pytest.approx(0.088)),
        ("threshold", "2024-03-01", pytest.approx(0.088)),
    ]


# -- callbacks --------------------------------------------------------------------------------
def test_threshold_and_exceed_fire_once_each() -> None:
    # $1/64 a call (exact in binary): the 52nd call crosses 80%, the 64th reaches $1
    fired: list[tuple[str, int, float]] = []
    calls = 0
    tracker = CostTracker(
        budget_usd=1.0,
        alert_threshold=0.8,
        pricing=Pricing({f"{PROVIDER}/{MODEL}": {"input_mtok": "15.625", "output_mtok": 1}}),
        on_threshold=lambda t, st: fired.append(("threshold", calls, st.spent_usd)),
        on_exceed=lambda t, st: fired.append(("exceed", calls, st.spent_usd)),
    )
    scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
    for _ in range(70):
        try:
            with aiscope.llm_call(
                MODEL, PROVIDER, input_tokens=1000, max_output_tokens=0, scope=scope
            ) as call:
                calls += 1
                call.set_usage(1000, 0)
        except BudgetExceededError:
            pass
    assert calls == 64 and tracker.spent == 1.0
    assert fired == [("threshold", 52, 0.8125), ("exceed", 64, 1.0)]
    assert tracker.is_over_budget and tracker.get_report().refused_calls == 6
    assert scope.metrics is not None
    assert 'ai_lib_budget_remaining_usd{budget="default",window="total"} 0.0' in (
        scope.metrics.export_prometheus()
    )


def test_threshold_and_exceed_fire_once_under_64_threads() -> None:
    fired: list[str] = []
    lock = threading.Lock()

    def note(kind: str) -> Callable[[CostTracker, BudgetStatus], None]:
        def cb(t: CostTracker, st: BudgetStatus) -> None:
            with lock:
                fired.append(kind)

        return cb

    start = threading.Barrier(64)

    def one(scope: Scope) -> bool:
        start.wait(timeout=60)
        try:
            with aiscope.llm_call(
                MODEL, PROVIDER, input_tokens=1000, max_output_tokens=0, scope=scope
            ) as call:
                time.sleep(0.001)
                call.set_usage(1000, 0)
            return True
        except BudgetExceededError:
            return False

    for _ in range(3):
        fired.clear()
        # $0.125 a call: exactly 8 of the 64 fit
        tracker = CostTracker(
            budget_usd=1.0,
            pricing=Pricing({f"{PROVIDER}/{MODEL}": {"input_mtok": 125, "output_mtok": 1}}),
            on_threshold=note("threshold"),
            on_exceed=note("exceed"),
        )
        scope = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=tracker)
        with ThreadPoolExecutor(max_workers=64) as pool:
            admitted = sum(pool.map(one, [scope] * 64))
        assert admitted == 8 and tracker.spent == 1.0
        assert sorted(fired) == ["exceed", "threshold"]
