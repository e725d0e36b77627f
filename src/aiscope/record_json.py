"""CallRecords as JSON objects: what :class:`~aiscope.ServerExporter` sends and the
server's ``POST /api/ingest/calls`` reads.

The object has the record's field names, ``usage`` as a nested object with
:class:`~aiscope.Usage`'s names, tuples as lists. Decoding refuses unknown keys and
wrong types, naming the field (``calls[3].usage.input_tokens must be an int ...``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aiscope.record import CallRecord, Usage

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))
_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))
_LISTS = ("operations", "finish_reasons")
_REQUIRED = ("model", "provider")


def record_to_json(record: CallRecord) -> dict[str, Any]:
    """A JSON-ready copy of ``record`` (a snapshot: later changes to it are not seen)."""
    u = record.usage
    # spelled out, not a loop over the fields: this runs on the application's thread
    return {
        "model": record.model,
        "provider": record.provider,
        "operation": record.operation,
        "request_id": record.request_id,
        "upstream_request_id": record.upstream_request_id,
        "response_id": record.response_id,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "response_model": record.response_model,
        "start_time": record.start_time,
        "latency_s": record.latency_s,
        "time_to_first_token_s": record.time_to_first_token_s,
        "status": record.status,
        "error_type": record.error_type,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "estimated": u.estimated,
        },
        "cost_usd": record.cost_usd,
        "cost_status": record.cost_status,
        "tags": dict(record.tags),
        "operations": list(record.operations),
        "retry_count": record.retry_count,
        "streaming": record.streaming,
        "finish_reasons": list(record.finish_reasons),
        "server_address": record.server_address,
        "server_port": record.server_port,
    }


def record_from_json(data: object, where: str = "call") -> CallRecord:
    """The :class:`CallRecord` of a JSON object; ``TypeError``/``ValueError`` name the
    bad field, prefixed with ``where``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be an object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _RECORD_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{where}: missing field {missing[0]!r}")
    kwargs = dict(data)
    try:
        usage = kwargs.get("usage")
        if usage is not None:
            kwargs["usage"] = _usage(usage)
        for name in _LISTS:
            if name in kwargs:
                kwargs[name] = _strings(name, kwargs[name])
        if "streaming" in kwargs and not isinstance(kwargs["streaming"], bool):
            raise TypeError(f"streaming must be a bool, got {kwargs['streaming']!r}")
        port = kwargs.get("server_port")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise ValueError(f"server_port must be an int from 1 to 65535, got {port!r}")
        if "cost_status" in kwargs and not isinstance(kwargs["cost_status"], str):
            raise TypeError(f"cost_status must be a str, got {kwargs['cost_status']!r}")
        for name in ("start_time", "latency_s", "time_to_first_token_s", "cost_usd"):
            value = kwargs.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                kwargs[name] = float(value)  # JSON writes 2.0 as 2
        if kwargs.get("usage") is None:
            kwargs.pop("usage", None)
        record = CallRecord(**kwargs)
        record.validate()
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return record


def _usage(data: object) -> Usage:
    if not isinstance(data, Mapping):
        raise TypeError(f"usage must be an object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _USAGE_FIELDS)
    if unknown:
        raise ValueError(f"usage: unknown field {unknown[0]!r}")
    for name, value in data.items():
        if name != "estimated" and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"usage.{name} must be an int, got {value!r}")
    return Usage(**data)


def _strings(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list of str, got {value!r}")
    return tuple(value)


__all__ = ["record_from_json", "record_to_json"]
