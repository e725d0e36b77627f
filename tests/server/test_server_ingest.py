"""OTLP ingest end to end: the official OpenTelemetry exporter sends real spans to the
server on loopback, and they come back from the query API with the right numbers."""

from __future__ import annotations

import gzip
import json
import time

import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import func, select

from aiscope.cost.pricing import Pricing
from aiscope.record import Usage
from aiscope.server import create_project
from aiscope.server.tables import calls, spans
from tests.server.harness import Running


def _provider(base: str, key: str, compression: Compression) -> TracerProvider:
    exporter = OTLPSpanExporter(
        endpoint=f"{base}/v1/traces",
        headers={"authorization": f"Bearer {key}"},
        compression=compression,
        timeout=10,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.response.time_to_first_chunk": 0.125,
    "aiscope.tag.feature": "search",
    "aiscope.tag.team": "growth",
}


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_otlp_exporter_spans_become_priced_calls(server: Running, compression: Compression) -> None:
    keys = create_project(server.engine, "shop")
    provider = _provider(server.url, keys.public_key, compression)
    tracer = provider.get_tracer("test")
    t0 = time.time_ns()
    with tracer.start_as_current_span("handle request") as root:
        span = tracer.start_span("chat gpt-4o", attributes=GENAI, start_time=t0)
        span.end(end_time=t0 + 750_000_000)
        failing = tracer.start_span(
            "chat claude",
            attributes={
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 0,
                "error.type": "RateLimitError",
                "aiscope.cost_usd": 0.5,  # a cost the span carries is kept as is
            },
        )
        failing.set_status(Status(StatusCode.ERROR, "429"))
        failing.end()
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")

    read = {"authorization": f"Bearer {keys.secret_key}"}
    got = httpx2.get(f"{server.url}/api/calls", headers=read, timeout=10).json()["items"]
    assert len(got) == 2
    by_model = {c["model"]: c for c in got}
    call = by_model["gpt-4o"]
    assert call["trace_id"] == trace_id
    assert call["parent_span_id"] == format(root.get_span_context().span_id, "016x")
    assert (call["provider"], call["response_model"]) == ("openai", "gpt-4o-2024-08-06")
    assert (call["input_tokens"], call["output_tokens"], call["cache_read_tokens"]) == (
        1200,
        300,
        200,
    )
    assert call["latency_ms"] == pytest.approx(750.0)
    assert call["ttft_ms"] == pytest.approx(125.0)
    assert call["feature"] == "search" and call["team"] == "growth"
    assert call["status"] == "ok" and call["error_type"] is None
    want, _ = Pricing().cost(
        "openai",
        "gpt-4o-2024-08-06",
        Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200),
        t0 / 1e9,
    )
    assert want is not None and want > 0
    assert call["cost_usd"] == pytest.approx(want)
    assert call["cost_status"] == "ok"
    failed = by_model["claude-sonnet-4-5"]
    assert (failed["status"], failed["error_type"], failed["cost_usd"]) == (
        "error",
        "RateLimitError",
        0.5,
    )

    tree = httpx2.get(f"{server.url}/api/traces/{trace_id}", headers=read, timeout=10).json()
    (root_node,) = tree["roots"]
    assert root_node["name"] == "handle request" and root_node["call"] is None
    assert root_node["service_name"] == "shop"
    children = {c["name"]: c for c in root_node["children"]}
    assert set(children) == {"chat gpt-4o", "chat claude"}
    assert children["chat gpt-4o"]["call"]["cost_usd"] == pytest.approx(want)


def _kv(key: str, value: dict[str, object]) -> dict[str, object]:
    return {"key": key, "value": value}


def _json_payload(trace_id: str, model: str, n_in: int, n_out: int) -> dict:
    now = time.time_ns()
    span = {
        "traceId": trace_id,
        "spanId": "00f067aa0ba902b7",
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 2_000_000),
        "attributes": [
            _kv("gen_ai.system", {"stringValue": "openai"}),  # the pre-1.37 name
            _kv("gen_ai.request.model", {"stringValue": model}),
            _kv("gen_ai.usage.input_tokens", {"intValue": str(n_in)}),  # int64 as string
            _kv("gen_ai.usage.output_tokens", {"intValue": n_out}),
        ],
    }
    resource = {"attributes": [_kv("service.name", {"stringValue": "j"})]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}


def test_otlp_json_with_hex_ids_and_gzip(local_server: Running) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = gzip.compress(json.dumps(_json_payload(trace_id, "gpt-4o-mini", 100, 20)).encode())
    r = httpx2.post(
        f"{local_server.url}/v1/traces",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    got = httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"]
    assert [(c["trace_id"], c["span_id"], c["model"], c["provider"]) for c in got] == [
        (trace_id, "00f067aa0ba902b7", "gpt-4o-mini", "openai")
    ]
    assert (got[0]["input_tokens"], got[0]["output_tokens"]) == (100, 20)
    assert got[0]["latency_ms"] == pytest.approx(2.0)


def test_inconsistent_usage_is_a_partial_success_and_kept_as_span(local_server: Running) -> None:
    payload = _json_payload("4bf92f3577b34da6a3ce929d0e0e4737", "gpt-4o", 10, 20)
    attrs = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attrs.append({"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": 50}})
    r = httpx2.post(f"{local_server.url}/v1/traces", json=payload, timeout=10)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "cache_read_tokens" in partial["errorMessage"]
    with local_server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(calls)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(spans)).scalar() == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"\xff\x00garbage", {"content-type": "application/x-protobuf"}, 400, "not an OTLP"),
        (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"[]", {"content-type": "application/json"}, 400, "must be an object"),
        (b"abc", {"content-type": "text/plain"}, 415, "Content-Type"),
        (
            b"not gzip",
            {"content-type": "application/json", "content-encoding": "gzip"},
            400,
            "not valid gzip",
        ),
        (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415, "br"),
        (
            json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "name": "x"}]}]}]}
            ).encode(),
            {"content-type": "application/json"},
            400,
            "traceId must be hex",
        ),
    ],
)
def test_bad_payloads_get_4xx_with_a_message(
    local_server: Running, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    r = httpx2.post(f"{local_server.url}/v1/traces", content=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_gzip_bomb_is_refused(local_server: Running) -> None:
    bomb = gzip.compress(b"\0" * (17 * 1024 * 1024))
    r = httpx2.post(
        f"{local_server.url}/v1/traces",
        content=bomb,
        headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        timeout=30,
    )
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_a_resent_request_is_stored_and_counted_once(local_server: Running) -> None:
    payload = _json_payload("4bf92f3577b34da6a3ce929d0e0e4738", "gpt-4o", 1000, 100)
    spans_ = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans_.append({**spans_[0], "spanId": "00f067aa0ba902b8"})  # a second call
    spans_.append({**spans_[0], "spanId": "00f067aa0ba902b9", "attributes": []})  # a plain span
    for _ in range(3):  # an exporter retrying after lost answers
        r = httpx2.post(f"{local_server.url}/v1/traces", json=payload, timeout=10)
        assert r.status_code == 200
    got = httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"]
    assert len(got) == 2
    cost = httpx2.get(f"{local_server.url}/api/cost", timeout=10).json()["rows"]
    assert [(row["model"], row["calls"], row["input_tokens"]) for row in cost] == [
        ("gpt-4o", 2, 2000)
    ]
    with local_server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar() == 1


def test_nul_bytes_and_long_names_are_stored_not_500(local_server: Running) -> None:
    payload = _json_payload("4bf92f3577b34da6a3ce929d0e0e4739", "m\x00" + "x" * 600, 1, 1)
    span = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["name"] = "n\x00" * 400
    span["attributes"].append(_kv("aiscope.tag.team", {"stringValue": "t\x00"}))
    plain = {
        **span,
        "spanId": "00f067aa0ba902ba",
        "attributes": [_kv("k", {"stringValue": "\x00"})],
    }
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"].append(plain)
    r = httpx2.post(f"{local_server.url}/v1/traces", json=payload, timeout=10)
    assert r.status_code == 200, r.text
    (call,) = httpx2.get(f"{local_server.url}/api/calls", timeout=10).json()["items"]
    assert call["model"] == ("m\ufffd" + "x" * 600)[:256]
    assert call["team"] == "t\ufffd" and len(call["name"]) == 512
    fb = httpx2.post(
        f"{local_server.url}/api/feedback",
        json={"name": "a\x00", "comment": "\x00", "request_id": "r\x00"},
        timeout=10,
    )
    assert fb.status_code == 201


def _minimal_spans(n: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = scope.spans.add()
        span.trace_id = i.to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = "x"
    return req.SerializeToString()


def test_a_request_of_too_many_spans_is_413_and_stores_nothing(local_server: Running) -> None:
    from aiscope.server.app import MAX_SPANS

    r = httpx2.post(
        f"{local_server.url}/v1/traces",
        content=_minimal_spans(MAX_SPANS + 1),
        headers={"content-type": "application/x-protobuf"},
        timeout=60,
    )
    assert r.status_code == 413 and f"at most {MAX_SPANS}" in r.json()["detail"]
    with local_server.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spans)).scalar() == 0


def test_decoding_past_the_concurrent_limit_is_503_with_retry_after(
    local_server: Running,
) -> None:
    body = _minimal_spans(3)
    headers = {"content-type": "application/x-protobuf"}
    local_server.app.state.settings.decode_wait_s = 0.3  # then give up, 503
    slots = local_server.app.state.decode_slots
    held = [slots.slot() for _ in range(local_server.app.state.settings.max_concurrent_decodes)]
    for s in held:
        s.__enter__()
    try:
        for path, content, ctype in (
            ("/v1/traces", body, headers),
            ("/api/ingest/calls", b'{"calls": []}', {"content-type": "application/json"}),
        ):
            r = httpx2.post(f"{local_server.url}{path}", content=content, headers=ctype)
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    finally:
        for s in held:
            s.__exit__(None, None, None)
    ok = httpx2.post(f"{local_server.url}/v1/traces", content=body, headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text


def test_a_failed_call_without_usage_is_stored_unpriced_as_no_usage() -> None:
    from aiscope.record import CallRecord
    from aiscope.server.records import to_batch

    failed = CallRecord("gpt-4o", "openai", status="error", error_type="BadRequestError")
    worked = CallRecord("gpt-4o", "openai", usage=Usage(input_tokens=10, output_tokens=5))
    rows = to_batch([failed, worked], "p", Pricing()).calls
    # the span carries no token counts for the failed call; the server must not price
    # its absent usage at $0 "ok"
    assert (rows[0]["status"], rows[0]["cost_usd"], rows[0]["cost_status"]) == (
        "error",
        None,
        "no_usage",
    )
    assert rows[1]["cost_status"] == "ok" and rows[1]["cost_usd"] > 0
    # and the rollups (budgets, cost charts) do not count it as an unpriced call
    from aiscope.server.rollup import rollup_rows

    (minute,) = [r for r in rollup_rows(rows) if r["resolution"] == 1]
    assert (minute["calls"], minute["errors"], minute["unpriced_calls"]) == (2, 1, 0)
