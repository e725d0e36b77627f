"""CallRecords as JSON (what ServerExporter sends): every field, round trip, bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest

from aiscope import CallRecord, Usage
from aiscope.record_json import record_from_json, record_to_json


def _full() -> CallRecord:
    return CallRecord(
        model="gpt-4o",
        provider="openai",
        operation="chat",
        upstream_request_id="up-1",
        response_id="resp-1",
        trace_id="a" * 32,
        span_id="b" * 16,
        response_model="gpt-4o-2024-08-06",
        start_time=1_700_000_000.5,
        latency_s=0.75,
        time_to_first_token_s=0.1,
        status="error",
        error_type="RateLimitError",
        usage=Usage(1000, 300, cache_read_tokens=200, cache_write_tokens=10, reasoning_tokens=50),
        cost_usd=0.01,
        cost_status="ok",
        tags={"feature": "search"},
        operations=("outer", "inner"),
        retry_count=2,
        streaming=True,
        finish_reasons=("stop",),
        server_address="api.openai.com",
        server_port=443,
    )


def test_every_field_round_trips_through_json() -> None:
    record = _full()
    data = record_to_json(record)
    # a field added to CallRecord or Usage must be added to the JSON form too
    assert set(data) == {f.name for f in dataclasses.fields(CallRecord)}
    assert set(data["usage"]) == {f.name for f in dataclasses.fields(Usage)}
    assert record_from_json(json.loads(json.dumps(data))) == record


def test_json_is_a_snapshot() -> None:
    record = _full()
    data = record_to_json(record)
    record.tags["feature"] = "changed"
    assert data["tags"] == {"feature": "search"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "call must be an object"),
        ({"model": "m"}, "missing field 'provider'"),
        ({"model": "m", "provider": "p", "usage": {"input": 1}}, "usage: unknown field 'input'"),
        ({"model": "m", "provider": "p", "usage": {"output_tokens": True}}, "usage.output_tokens"),
        ({"model": "m", "provider": "p", "operations": "ab"}, "operations"),
        ({"model": "m", "provider": "p", "streaming": "yes"}, "streaming"),
        ({"model": "m", "provider": "p", "server_port": 70000}, "server_port"),
        ({"model": "", "provider": "p"}, "model must not be empty"),
        ({"model": "m", "provider": "p", "start_time": float("nan")}, "start_time"),
    ],
)
def test_bad_json_names_the_field(data: object, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        record_from_json(data)
