"""ServerExporter end to end: the real exporter sends records from a Scope to the real
server on loopback; they come back from the query API with the exact numbers. And a
server that is down never touches the application: records are dropped and counted."""

from __future__ import annotations

import socket
import time

import httpx2
import pytest

from aiscope import CallRecord, Scope, ServerExporter, Usage, record_call
from aiscope.cost.pricing import Pricing
from aiscope.server import create_project
from tests.server.harness import Running


def test_records_arrive_priced_with_exact_numbers(server: Running) -> None:
    keys = create_project(server.engine, "shop")
    exporter = ServerExporter(server.url, api_key=keys.public_key, schedule_delay_s=0.05)
    scope = Scope(sinks=[exporter])
    t0 = time.time() - 5
    record_call(
        "gpt-4o",
        "openai",
        input_tokens=1000,
        output_tokens=500,
        cache_read_tokens=200,
        latency_s=0.8,
        time_to_first_token_s=0.25,
        start_time=t0,
        tags={"feature": "search", "team": "growth", "user": "u1"},
        scope=scope,
    )
    record_call(
        "claude-sonnet-4-5",
        "anthropic",
        input_tokens=10,
        status="error",
        error_type="RateLimitError",
        cost_usd=0.5,  # a cost the record carries is kept
        start_time=t0 + 1,
        latency_s=0.1,
        scope=scope,
    )
    assert exporter.flush(10)
    exporter.close()
    assert (exporter.exported, exporter.failed, exporter.dropped) == (2, 0, 0)

    read = {"authorization": f"Bearer {keys.secret_key}"}
    got = httpx2.get(f"{server.url}/api/calls", headers=read, timeout=10).json()["items"]
    by_model = {c["model"]: c for c in got}
    assert set(by_model) == {"gpt-4o", "claude-sonnet-4-5"}
    call = by_model["gpt-4o"]
    want, _ = Pricing().cost(
        "openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200), t0
    )
    assert want is not None and call["cost_usd"] == pytest.approx(want, rel=1e-12)
    assert (call["input_tokens"], call["output_tokens"], call["cache_read_tokens"]) == (
        1000,
        500,
        200,
    )
    assert call["latency_ms"] == pytest.approx(800.0)
    assert call["ttft_ms"] == pytest.approx(250.0)
    assert (call["feature"], call["team"], call["tags"]["user"]) == ("search", "growth", "u1")
    assert call["start_ts"] == pytest.approx(t0)
    failed = by_model["claude-sonnet-4-5"]
    assert (failed["status"], failed["error_type"], failed["cost_usd"]) == (
        "error",
        "RateLimitError",
        0.5,
    )
    # the same rollups as OTLP ingest
    cost = httpx2.get(
        f"{server.url}/api/cost", params={"group_by": "model"}, headers=read, timeout=10
    ).json()["rows"]
    assert {r["model"]: r["cost_usd"] for r in cost} == pytest.approx(
        {"gpt-4o": want, "claude-sonnet-4-5": 0.5}
    )
    assert {r["model"]: r["errors"] for r in cost} == {"gpt-4o": 0, "claude-sonnet-4-5": 1}


def test_a_record_sent_twice_is_stored_once(local_server: Running) -> None:
    record = CallRecord(model="gpt-4o", provider="openai", usage=Usage(100, 10), latency_s=0.2)
    exporter = ServerExporter(local_server.url, schedule_delay_s=0.05)
    exporter.on_record(record)
    assert exporter.flush(10)
    exporter.on_record(record)  # an exporter retrying after a lost answer
    assert exporter.flush(10)
    exporter.close()
    got = httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"]
    assert len(got) == 1 and got[0]["input_tokens"] == 100
    cost = httpx2.get(f"{local_server.url}/api/cost", timeout=10).json()["rows"]
    assert [r["calls"] for r in cost] == [1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"provider": "openai"}, "calls[0]: missing field 'model'"),
        ({"model": "m", "provider": "p", "colour": 1}, "calls[0]: unknown field 'colour'"),
        ({"model": "m", "provider": "p", "usage": {"input_tokens": -1}}, "usage.input_tokens"),
        ({"model": "m", "provider": "p", "usage": {"input_tokens": "9"}}, "usage.input_tokens"),
        ({"model": "m", "provider": "p", "latency_s": "fast"}, "latency_s"),
        ({"model": "m", "provider": "p", "status": "meh"}, "status"),
        ({"model": "m", "provider": "p", "tags": {"a": 1}}, "tags"),
        ({"model": "m", "provider": "p", "trace_id": "xyz"}, "trace_id"),
        ({"model": "m", "provider": "p", "cost_usd": -2}, "cost_usd"),
        (
            {"model": "m", "provider": "p", "usage": {"input_tokens": 1, "cache_read_tokens": 5}},
            "cache_read_tokens",
        ),
        ("not an object", "calls[0] must be an object"),
        ({"model": "m", "provider": "p", "start_time": 1e300}, "calls[0]: start_time"),
        ({"model": "m", "provider": "p", "latency_s": 1e12}, "latency_s"),
        ({"model": "m", "provider": "p", "cost_usd": 1e300}, "cost_usd"),
        ({"model": "m", "provider": "p", "usage": {"input_tokens": 2**70}}, "usage.input_tokens"),
    ],
)
def test_bad_records_get_400_naming_the_field(
    local_server: Running, call: object, message: str
) -> None:
    good = {"model": "gpt-4o", "provider": "openai"}
    r = httpx2.post(
        f"{local_server.url}/api/ingest/calls", json={"calls": [call, good]}, timeout=10
    )
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"]
    # nothing of a refused request is stored
    assert httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"] == []


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"calls": 3}', b'{"calls": [], "more": 1}', b"\xff\xfe"]
)
def test_bad_bodies_get_400(local_server: Running, body: bytes) -> None:
    r = httpx2.post(
        f"{local_server.url}/api/ingest/calls",
        content=body,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


def test_ingest_needs_the_public_key(server: Running) -> None:
    keys = create_project(server.engine, "shop")
    url = f"{server.url}/api/ingest/calls"
    assert httpx2.post(url, json={"calls": []}, timeout=10).status_code == 401
    secret = {"authorization": f"Bearer {keys.secret_key}"}
    assert httpx2.post(url, json={"calls": []}, headers=secret, timeout=10).status_code == 403


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_never_affects_the_app_and_drops_are_counted() -> None:
    exporter = ServerExporter(
        f"http://127.0.0.1:{_closed_port()}",
        max_queue_size=20,
        max_export_batch_size=10,
        max_retries=1,
        backoff_s=0.05,
        timeout_s=1,
    )
    scope = Scope(sinks=[exporter])
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        stats = record_call("gpt-4o", "openai", input_tokens=i, output_tokens=1, scope=scope)
        assert stats.prompt_tokens == i
    elapsed = time.perf_counter() - t
    # the exporter never waits on the network in the caller's thread
    assert elapsed < 5.0, elapsed
    assert scope.sink_errors == {}
    assert exporter.flush(10) is False  # the records were lost, and flush says so
    exporter.close(timeout=5)
    assert exporter.dropped > 0
    assert exporter.exported == exporter.failed  # everything sent failed ...
    assert exporter.dropped + exporter.failed == n  # ... and every record is accounted for


def test_flush_is_false_when_the_server_answers_500_and_the_records_are_counted() -> None:
    from aiscope.testing import OtlpReceiver

    with OtlpReceiver(status=500) as down:  # any POST gets a 500
        exporter = ServerExporter(down.url, schedule_delay_s=60, max_retries=1, backoff_s=0.01)
        scope = Scope(sinks=[exporter])
        record_call("gpt-4o", "openai", input_tokens=10, scope=scope)
        record_call("gpt-4o", "openai", input_tokens=20, scope=scope)
        assert exporter.flush(10) is False
        assert down.refused == 2  # the first try and one retry
        assert (exporter.exported, exporter.failed, exporter.rejected) == (2, 2, 0)
        down.status = 200
        record_call("gpt-4o", "openai", input_tokens=30, scope=scope)
        assert exporter.flush(10) is True  # this one arrived; nothing lost since
        assert [e.path for e in down.exports()] == ["/api/ingest/calls"]
        exporter.close(timeout=2)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="url"):
        ServerExporter("ftp://x")
    with pytest.raises(ValueError, match="api_key"):
        ServerExporter("http://127.0.0.1:1", api_key="")
    with pytest.raises(ValueError, match="max_queue_size"):
        ServerExporter("http://127.0.0.1:1", max_queue_size=0)
    e = ServerExporter("http://127.0.0.1:1/base/")
    assert e.endpoint == "http://127.0.0.1:1/base/api/ingest/calls"
    e.close(0.1)


def test_a_call_traced_over_otlp_and_exported_is_stored_once(local_server: Running) -> None:
    from aiscope import Tracer

    tracer = Tracer(service_name="shop", endpoint=f"{local_server.url}/v1/traces")
    exporter = ServerExporter(local_server.url, schedule_delay_s=60)  # sends at flush only
    scope = Scope(tracer=tracer, sinks=[exporter])
    stats = record_call("gpt-4o", "openai", input_tokens=100, output_tokens=10, scope=scope)
    assert tracer.flush(10)  # the span first, then the record with the same ids
    assert exporter.flush(10) and exporter.exported == 1
    tracer.shutdown()
    exporter.close()
    got = httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"]
    assert [(c["request_id"], c["service_name"]) for c in got] == [(stats.request_id, "shop")]
    cost = httpx2.get(f"{local_server.url}/api/cost", timeout=10).json()["rows"]
    assert [r["calls"] for r in cost] == [1]
