"""Exporters after ``os.fork()`` (gunicorn ``--preload``, Celery prefork, multiprocessing
pools): real forks while the parent records from several threads; each child records,
exports to real loopback receivers and flushes. A hung child is killed at a deadline
and fails the test with its stack, instead of blocking the run."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry

from aiscope import (
    CostTracker,
    LangfuseExporter,
    MetricsCollector,
    Scope,
    ServerExporter,
    Tracer,
    llm_call,
    record_call,
    use_scope,
)
from aiscope.testing import OtlpReceiver

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


class IngestReceiver:
    """A loopback stand-in for the aiscope server's ingest endpoint: keeps every body."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        lock = threading.Lock()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with lock:
                    calls.extend(body["calls"])
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[OtlpReceiver, IngestReceiver]]:
    with OtlpReceiver() as rx:
        ingest = IngestReceiver()
        try:
            yield rx, ingest
        finally:
            ingest.close()


def _record(scope: Scope, tracer: Tracer, feature: str) -> None:
    with (
        use_scope(scope),
        tracer.span(f"handler {feature}"),
        llm_call("gpt-4o", provider="openai", feature=feature) as call,
    ):
        call.set_usage(input_tokens=10, output_tokens=2)


def _child(
    i: int, scope: Scope, tracer: Tracer, exporter: ServerExporter, sdk: TracerProvider, out: Path
) -> None:
    """The child's whole life: it never returns (``os._exit``)."""
    code = 1
    try:
        with open(out / f"stack-{i}.txt", "w") as stack:
            # a child stuck on a lock writes where it is stuck, then dies
            faulthandler.dump_traceback_later(10, exit=True, file=stack)
            for _ in range(5):
                _record(scope, tracer, f"child-{i}")
            sdk.get_tracer("sdk").start_span(f"sdk child-{i}").end()
            result = {
                "tracer_flush": tracer.flush(timeout=5),
                "exporter_flush": exporter.flush(timeout=5),
                "sdk_flush": sdk.force_flush(5000),
                "dropped_spans": tracer.dropped_spans,
                "exporter_dropped": exporter.dropped,
                "exporter_failed": exporter.failed,
            }
            faulthandler.cancel_dump_traceback_later()
            if not all(v is True for k, v in result.items() if k.endswith("flush")):
                faulthandler.dump_traceback(stack)  # where the worker threads are
        (out / f"child-{i}.json").write_text(json.dumps(result))
        code = 0
    except BaseException:
        (out / f"child-{i}.err").write_text(traceback.format_exc())
    finally:
        os._exit(code)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads, 3.12+
def test_forked_children_export_and_flush_while_the_parent_records_from_threads(
    receivers: tuple[OtlpReceiver, IngestReceiver], tmp_path: Path
) -> None:
    rx, ingest = receivers
    tracer = Tracer(
        service_name="fork-test", endpoint=rx.endpoint, batch=True, schedule_delay_s=0.02
    )
    exporter = ServerExporter(ingest.url, schedule_delay_s=0.02, max_export_batch_size=8)
    # every sink's lock on the record path is taken by the parent's threads all the time
    scope = Scope(
        tracer=tracer,
        sinks=[exporter],
        metrics=MetricsCollector(registry=CollectorRegistry()),
        cost_tracker=CostTracker(budget_usd=1e9),
    )
    # the OpenTelemetry SDK's own batch processor, in the same children: the control
    sdk = TracerProvider(shutdown_on_exit=False)
    sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(rx.endpoint)))
    # its first export imports a module lazily on its thread; a fork during that import
    # would hang its children (aiscope's exporters import everything up front)
    sdk.get_tracer("sdk").start_span("warm-up").end()
    assert sdk.force_flush(5000)

    stop = threading.Event()

    def busy(n: int) -> None:
        while not stop.is_set():
            _record(scope, tracer, f"parent-{n}")

    threads = [threading.Thread(target=busy, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    children: dict[int, int] = {}
    try:
        time.sleep(0.05)
        for i in range(20):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _child(i, scope, tracer, exporter, sdk, tmp_path)
            children[pid] = i
            time.sleep(0.005)  # fork at different moments of the threads' work
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    deadline = time.monotonic() + 30
    codes: dict[int, int | None] = {}
    while children.keys() - codes.keys() and time.monotonic() < deadline:
        for pid in children.keys() - codes.keys():
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in children.keys() - codes.keys():
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        codes[pid] = None

    def report(i: int) -> str:
        parts = [p.read_text() for p in tmp_path.glob(f"*-{i}.*") if p.suffix in (".txt", ".err")]
        lines = "\n".join(parts).splitlines()
        kept = [x for x in lines if "_pytest" not in x and "pluggy" not in x]
        return f"child {i}:\n" + "\n".join(kept)

    bad = [i for pid, i in children.items() if codes[pid] != 0]
    assert not bad, f"{len(bad)}/20 children hung or failed\n" + "\n".join(map(report, bad[:3]))
    assert tracer.flush(timeout=5) and exporter.flush(timeout=5)
    spans = rx.spans()
    for i in range(20):
        assert not (tmp_path / f"stack-{i}.txt").read_text(), report(i)
        result = json.loads((tmp_path / f"child-{i}.json").read_text())
        assert result == {
            "tracer_flush": True,
            "exporter_flush": True,
            "sdk_flush": True,
            "dropped_spans": 0,
            "exporter_dropped": 0,
            "exporter_failed": 0,
        }, (i, result)
        feature = f"child-{i}"
        mine = [s for s in spans if s.attributes.get("aiscope.tag.feature") == feature]
        assert len(mine) == 5, (i, len(mine))  # exported once: by the child, not the parent
        assert sum(1 for s in spans if s.name == f"handler {feature}") == 5
        assert sum(1 for s in spans if s.name == f"sdk {feature}") == 1
        assert sum(1 for c in ingest.calls if c["tags"].get("feature") == feature) == 5
    tracer.shutdown(timeout=2)
    exporter.close(timeout=2)
    sdk.shutdown()


class KeepAliveReceiver:
    """OTLP/HTTP and ingest on one HTTP/1.1 server that keeps connections open, noting
    which client connection (its source port) each request came over."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, bytes]] = []  # path, client port, body
        lock = threading.Lock()
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    seen.append((self.path, self.client_address[1], body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def ports(self, path: str) -> list[int]:
        return [port for p, port, _ in self.requests if p == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_never_sends_over_a_connection_it_inherited_from_the_parent() -> None:
    rx = KeepAliveReceiver()
    try:
        tracer = Tracer(service_name="fork", endpoint=rx.url + "/v1/traces", batch=True)
        exporter = ServerExporter(rx.url, schedule_delay_s=0.02)
        scope = Scope(tracer=tracer, sinks=[exporter])
        langfuse = Tracer(exporter=LangfuseExporter(public_key="pk", secret_key="sk", host=rx.url))

        def work(name: str) -> None:
            _record(scope, tracer, name)
            with langfuse.span(name):
                pass

        def flushed() -> bool:
            return all(x.flush(timeout=5) for x in (tracer, exporter, langfuse))

        work("parent")  # the parent's connections are now kept alive
        assert flushed()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                faulthandler.dump_traceback_later(10, exit=True)
                work("child")
                code = 0 if flushed() else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert done[0] and os.waitstatus_to_exitcode(done[1]) == 0
        work("parent again")
        assert flushed()
        for path in ("/v1/traces", "/api/ingest/calls", "/api/public/otel/v1/traces"):
            parent_first, child, parent_again = rx.ports(path)
            assert parent_again == parent_first  # the parent keeps its connection ...
            assert child != parent_first, path  # ... and the child makes its own
        tracer.shutdown(timeout=2)
        exporter.close(timeout=2)
        langfuse.shutdown(timeout=2)
    finally:
        rx.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_locks_held_and_slots_taken_by_other_threads_at_the_fork_are_free_in_the_child() -> None:
    from aiscope import FeedbackCollector
    from aiscope.cost.ledger import MemoryLedger
    from aiscope.resilience import CircuitBreaker, InflightLimiter, RateLimiter

    limiter = InflightLimiter(1)
    ledger = MemoryLedger()
    breaker = CircuitBreaker("provider")
    rate = RateLimiter(requests_per_minute=6000)
    feedback = FeedbackCollector()
    scope = Scope(
        metrics=MetricsCollector(registry=CollectorRegistry()),
        cost_tracker=CostTracker(budget_usd=1e9),
    )
    held = [
        ledger._lock,
        limiter._lock,
        breaker._lock,
        rate._lock,
        feedback._lock,
        scope._lock,
        scope.cost_tracker._lock,  # type: ignore[union-attr]
        scope.metrics._lock,  # type: ignore[union-attr]
    ]
    ready, release = threading.Event(), threading.Event()

    def parent_call_in_flight() -> None:
        limiter.acquire()  # the only slot
        assert ledger.try_reserve("day", 6.0, 10.0) is not None  # most of the budget
        for lock in held:
            lock.acquire()
        ready.set()
        release.wait(30)
        for lock in reversed(held):
            lock.release()

    thread = threading.Thread(target=parent_call_in_flight, daemon=True)
    thread.start()
    assert ready.wait(5)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            faulthandler.dump_traceback_later(10, exit=True)
            ok = limiter.try_acquire()  # the parent's call does not hold the child's slot
            limiter.release()
            ok = ok and ledger.try_reserve("day", 6.0, 10.0) is not None
            ok = ok and breaker.allow()
            rate.acquire()
            feedback.thumbs_up("req-1")
            record_call("gpt-4o", "openai", input_tokens=10, output_tokens=1, scope=scope)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert done[0], "the child hung on a lock held by another thread at the fork"
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        release.set()
        thread.join(5)
    # the parent's own state is untouched
    assert limiter.current == 1 and ledger.reserved("day") == 6.0
    limiter.release()


_MP: dict[str, Any] = {}


def _pool_task(n: int) -> int:
    _record(_MP["scope"], _MP["tracer"], f"pool-{n}")
    return n


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_multiprocessing_child_sends_what_it_recorded_last_without_a_flush(
    receivers: tuple[OtlpReceiver, IngestReceiver],
) -> None:
    import multiprocessing

    rx, ingest = receivers
    # no timed export before the children end: only their exit can send it
    tracer = Tracer(service_name="mp", endpoint=rx.endpoint, schedule_delay_s=60)
    exporter = ServerExporter(ingest.url, schedule_delay_s=60)
    scope = Scope(tracer=tracer, sinks=[exporter])
    ctx = multiprocessing.get_context("fork")
    # multiprocessing ends its children with os._exit(): atexit hooks never run there
    process = ctx.Process(target=_record, args=(scope, tracer, "process"))
    process.start()
    process.join(20)
    if process.is_alive():
        process.kill()
    assert process.exitcode == 0
    _MP.update(scope=scope, tracer=tracer)
    pool = ctx.Pool(2)
    try:
        assert sorted(pool.map(_pool_task, range(4))) == [0, 1, 2, 3]
    finally:
        pool.close()
        pool.join()
    spans = rx.spans()
    for feature in ("process", "pool-0", "pool-1", "pool-2", "pool-3"):
        assert sum(1 for s in spans if s.attributes.get("aiscope.tag.feature") == feature) == 1
        assert sum(1 for s in spans if s.name == f"handler {feature}") == 1
        assert sum(1 for c in ingest.calls if c["tags"].get("feature") == feature) == 1
    tracer.shutdown(timeout=2)
    exporter.close(timeout=2)


def test_a_fork_during_a_lazy_import_waits_for_it_so_the_child_can_use_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiscope._fork import lazy_import

    (tmp_path / "slow_dependency.py").write_text("import time\ntime.sleep(0.5)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = threading.Thread(target=lazy_import, args=("slow_dependency",))
    importer.start()
    time.sleep(0.1)  # the other thread is inside the module's import now
    pid = os.fork()
    if pid == 0:  # the child: a module lock held for ever would hang here
        code = 0 if lazy_import("slow_dependency").VALUE == 42 else 3
        os._exit(code)
    importer.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the child hung on the import its parent had in progress at the fork")
