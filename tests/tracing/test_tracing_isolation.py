"""Failure isolation: with the OTLP endpoint on a port that accepts connections and
never answers, calls cost the application (almost) nothing more, never raise,
memory stays bounded, dropped spans are counted, and shutdown keeps its timeout.

What tracing adds to a call is work on the caller's thread (the exporter never
blocks it), so the added latency is measured as that thread's CPU time per call:
on a shared 2-core machine, wall-clock medians mostly measure the neighbours
(both are printed; the wall-clock one has a looser bound that still catches any
wait on the exporter, whose timeout is 10 s).
"""

from __future__ import annotations

import gc
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from aiscope import AiClient, Tracer
from aiscope.testing import Blackhole
from aiscope.tracing import BoundedBatchProcessor

TRACED_CALLS = 10_000
QUEUE = 2048


@pytest.fixture
def provider_url() -> Iterator[str]:
    """The mock provider in its own process, so its threads do not compete with the
    measured client for this process's GIL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiscope.cli", "mock-provider", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line
        yield found.group(0) + "/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def _client(base_url: str, tracer: Tracer | None) -> AiClient:
    builder = AiClient.builder().model("openai/gpt-4o").api_key("sk-test").base_url(base_url)
    if tracer is not None:
        builder = builder.tracer(tracer)
    return builder.build()


def _live_spans() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, ReadableSpan))


@pytest.mark.slow
def test_blackholed_collector_does_not_hurt_the_application(provider_url: str) -> None:
    reader = InMemoryMetricReader()
    with Blackhole() as hole:
        tracer = Tracer(
            service_name="isolation",
            endpoint=f"http://127.0.0.1:{hole.port}/v1/traces",
            max_queue_size=QUEUE,
            schedule_delay_s=0.05,
            meter_provider=MeterProvider(metric_readers=[reader]),
        )
        traced, bare = _client(provider_url, tracer), _client(provider_url, None)
        for c in (traced, bare):  # warm up connections, pricing, manifests
            for _ in range(20):
                c.chat().user("hi").execute_sync()
        baseline_spans = _live_spans()
        # Calls alternate, five traced then one bare, so that both see the same moments
        # of this shared machine; the added cost is the median of the per-group
        # differences (the median of five traced calls minus the bare one next to them).
        t_traced: list[float] = []
        cpu_traced: list[float] = []
        wall_diffs: list[float] = []
        cpu_diffs: list[float] = []
        errors = 0

        def timed(client: AiClient) -> tuple[float, float]:
            nonlocal errors
            c0, t0 = time.thread_time(), time.perf_counter()
            try:
                client.chat().user("hello").execute_sync()
            except Exception:
                errors += 1
            return time.perf_counter() - t0, time.thread_time() - c0

        for _ in range(TRACED_CALLS // 5):
            group = [timed(traced) for _ in range(5)]
            wall_b, cpu_b = timed(bare)
            t_traced.extend(w for w, _ in group)
            cpu_traced.extend(c for _, c in group)
            wall_diffs.append(statistics.median(w for w, _ in group) - wall_b)
            cpu_diffs.append(statistics.median(c for _, c in group) - cpu_b)
        assert errors == 0
        assert len(t_traced) == TRACED_CALLS
        added_cpu = statistics.median(cpu_diffs)
        added_wall = statistics.median(wall_diffs)
        print(
            f"\nper call, median: traced {statistics.median(t_traced) * 1e3:.3f} ms wall, "
            f"{statistics.median(cpu_traced) * 1e3:.3f} ms caller CPU; added by tracing "
            f"{added_cpu * 1e3:.3f} ms caller CPU, {added_wall * 1e3:.3f} ms wall"
        )
        assert added_cpu < 1e-3
        assert added_wall < 5e-3
        # The exporter is stuck on the first batch: everything beyond the queue is dropped.
        assert hole.accepted >= 1
        (proc,) = tracer.processors
        assert isinstance(proc, BoundedBatchProcessor)
        assert proc.queued <= QUEUE
        assert tracer.dropped_spans > TRACED_CALLS - QUEUE - proc.max_export_batch_size
        # Bounded memory: live span objects are capped by the queue plus one batch in flight.
        assert _live_spans() - baseline_spans <= QUEUE + proc.max_export_batch_size + 50
        data = reader.get_metrics_data()
        dropped = [
            p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "aiscope.tracing.dropped_spans"
            for p in m.data.data_points
        ]
        assert dropped == [tracer.dropped_spans]
        t0 = time.monotonic()
        assert tracer.flush(timeout=0.5) is False
        tracer.shutdown(timeout=2)
        took = time.monotonic() - t0
        assert took < 3.0, took
        traced.close()
        bare.close()
