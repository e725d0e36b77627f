"""Values a hostile or broken client sends: huge or non-finite numbers, NUL bytes,
bodies nested thousands deep, megabyte attributes. Each becomes a partial success
(the bad span rejected with its reason, the rest of the batch stored) or a 400,
never a 500, and no stored value can break a later read. Both engines."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from sqlalchemy import func, insert, select

from aiscope.cost.ledger import from_nanos
from aiscope.server.auth import LOCAL_PROJECT
from aiscope.server.otlp import MAX_VALUE_CHARS
from aiscope.server.rollup import RESOLUTIONS
from aiscope.server.tables import calls, rollups, spans
from tests.server.harness import Running

PB = {"content-type": "application/x-protobuf"}


def _request(call_spans: list[dict[str, Any]]) -> bytes:
    """A protobuf OTLP request of spans given as {attribute: python value}."""
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i, attrs in enumerate(call_spans):
        span = scope.spans.add()
        span.trace_id = (i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"span {i}"
        span.start_time_unix_nano = now
        span.end_time_unix_nano = now + 1_000_000
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            if isinstance(value, str):
                kv.value.string_value = value
            elif isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.int_value = value
    return req.SerializeToString()


def _call(**extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        **extra,
    }


def _post(server: Running, body: bytes) -> httpx2.Response:
    return httpx2.post(f"{server.url}/v1/traces", content=body, headers=PB, timeout=30)


def _count(server: Running, table: Any) -> int:
    with server.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_nan_or_infinite_attribute_keeps_the_whole_batch(local_server: Running) -> None:
    good = [_call() for _ in range(20)]
    odd = [
        _call(**{"app.score": math.nan}),
        {"app.score": math.inf, "app.low": -math.inf},  # a plain span
    ]
    r = _post(local_server, _request(good + odd))
    assert r.status_code == 200, r.text
    assert _count(local_server, calls) == 21
    with local_server.engine.connect() as conn:
        (attrs,) = conn.execute(select(spans.c.attributes)).scalars()
    assert attrs == {"app.score": "Infinity", "app.low": "-Infinity"}


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"gen_ai.usage.input_tokens": 2**62}, "usage.input_tokens must be at most"),
        ({"gen_ai.usage.output_tokens": 1e20}, "usage.output_tokens must be at most"),
        ({"gen_ai.usage.input_tokens": math.inf}, "input_tokens must be an integer"),
        ({"gen_ai.usage.cache_read.input_tokens": 2**62, "gen_ai.usage.input_tokens": 2**62},
         "at most"),
        ({"aiscope.cost_usd": 1e308}, "cost_usd must be below"),
        ({"aiscope.cost_usd": math.nan}, "aiscope.cost_usd must be a number"),
    ],
)  # fmt: skip
def test_out_of_range_numbers_reject_the_span_with_a_reason_and_reads_stay_200(
    local_server: Running, attrs: dict[str, Any], reason: str
) -> None:
    body = _request([_call(**attrs), _call(**attrs), _call()])
    r = _post(local_server, body)
    assert r.status_code == 200, r.text
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 2
    assert reason in partial.error_message
    assert _count(local_server, calls) == 1
    for path in ("/api/cost", "/api/timeseries?metric=tokens", "/api/budgets", "/api/alerts"):
        got = httpx2.get(local_server.url + path, timeout=10)
        assert got.status_code == 200, (path, got.text)
    (row,) = httpx2.get(f"{local_server.url}/api/cost", timeout=10).json()["rows"]
    assert (row["calls"], row["input_tokens"]) == (1, 100)


def test_reads_survive_huge_sums_already_stored(local_server: Running) -> None:
    # rows an older server accepted: each fits its column, their sums do not (a cost
    # of 1e308 USD is migrated to the ledgers' ceiling, 2**62 nano-dollars)
    minute = int(time.time() // 60)
    row = {
        "project_id": LOCAL_PROJECT, "resolution": 1, "minute": minute, "model": "gpt-4o",
        "provider": "openai", "feature": "", "team": "", "calls": 1, "errors": 0,
        "input_tokens": 2**62, "output_tokens": 2**62, "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0, "cost_nanos": 2**62, "unpriced_calls": 0,
        "latency_bins": {}, "ttft_bins": {},
    }  # fmt: skip
    # one row per resolution, as ingest writes them
    rows = [
        {**row, "team": team, "resolution": res, "minute": minute - minute % res}
        for team in ("a", "b", "c")
        for res in RESOLUTIONS
    ]
    with local_server.engine.begin() as conn:
        conn.execute(insert(rollups), rows)
    for path in (
        "/api/cost",
        "/api/cost?group_by=team",
        "/api/timeseries?metric=tokens",
        "/api/timeseries?metric=tokens&group_by=type",
        "/api/timeseries?metric=cost",
        "/api/budgets",
        "/api/alerts",
    ):
        got = httpx2.get(local_server.url + path, timeout=10)
        assert got.status_code == 200, (path, got.text)
    (cost,) = httpx2.get(f"{local_server.url}/api/cost", timeout=10).json()["rows"]
    assert cost["input_tokens"] == 3 * 2**62  # exact, past a BIGINT
    assert cost["cost_usd"] == from_nanos(3 * 2**62)  # summed exactly, past a BIGINT
    series = httpx2.get(f"{local_server.url}/api/timeseries?metric=cost", timeout=10).json()
    assert sum(series["series"][0]["values"]) == from_nanos(3 * 2**62)


def test_a_body_nested_a_thousand_deep_is_400(local_server: Running) -> None:
    deep = ("[" * 1000 + "]" * 1000).encode()
    obj = ('{"resourceSpans": ' + "[" * 5000 + "]" * 5000 + "}").encode()
    for path, body in (
        ("/v1/traces", obj),
        ("/v1/traces", deep),
        ("/api/ingest/calls", ('{"calls": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()),
        ("/api/alert-rules", ('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()),
    ):
        r = httpx2.post(
            local_server.url + path,
            content=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 400, (path, r.status_code, r.text[:200])


@pytest.mark.parametrize(
    "path", ["/api/budgets/a%00b", "/api/alert-rules/a%00b", "/api/calls?model=a%00b"]
)
def test_a_nul_in_the_url_is_400_not_500(local_server: Running, path: str) -> None:
    method = "GET" if path.startswith("/api/calls") else "DELETE"
    r = httpx2.request(method, local_server.url + path, timeout=10)
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["detail"]


def test_a_stored_attribute_value_is_capped(local_server: Running) -> None:
    huge = "x" * (4 * 1024 * 1024)
    r = _post(local_server, _request([{"app.prompt": huge}]))
    assert r.status_code == 200, r.text
    with local_server.engine.connect() as conn:
        (attrs,) = conn.execute(select(spans.c.attributes)).scalars()
    assert attrs["app.prompt"] == "x" * MAX_VALUE_CHARS
    assert json.dumps(attrs).__len__() < 2 * MAX_VALUE_CHARS
