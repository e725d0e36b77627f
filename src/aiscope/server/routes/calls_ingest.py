"""``POST /api/ingest/calls``: aiscope's own records (:class:`~aiscope.ServerExporter`).

The body is ``{"calls": [record, ...]}`` with records in the JSON form of
:mod:`aiscope.record_json`. The whole request is refused (400, naming the field)
if one record is bad; otherwise its calls are written like an OTLP request's
(:mod:`aiscope.server.records`) and committed before the answer.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request

from aiscope.record_json import record_from_json
from aiscope.server import ingest, records
from aiscope.server.deps import AppSettings, Ingester, Prices, Writer, decode_slot, read_body
from aiscope.server.writer import commit

MAX_CALLS = 10_000
router = APIRouter(tags=["ingest"])


def parse_calls(body: bytes) -> list[Any]:
    """The records of a request body; ``ValueError`` says what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("body is not JSON: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
        raise ValueError('body must be an object {"calls": [call, ...]}')
    unknown = sorted(k for k in data if k != "calls")
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (only 'calls')")
    calls = data["calls"]
    if len(calls) > MAX_CALLS:
        raise ValueError(f"calls: at most {MAX_CALLS} per request, got {len(calls)}")
    try:
        return [record_from_json(c, f"calls[{i}]") for i, c in enumerate(calls)]
    except TypeError as exc:  # a wrong type is a bad request too (400, not 500)
        raise ValueError(str(exc)) from None


@router.post(
    "/api/ingest/calls",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["calls"],
                        "properties": {"calls": {"type": "array", "items": {"type": "object"}}},
                    }
                }
            },
            "required": True,
        }
    },
)
async def ingest_calls(
    request: Request, who: Ingester, settings: AppSettings, pricing: Prices, writer: Writer
) -> dict[str, int]:
    """aiscope CallRecords (JSON), stored like OTLP GenAI spans; answered after commit."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":  # a form or text/plain post is no record (nor CSRF)
        raise HTTPException(415, f"Content-Type must be application/json, got {ctype!r}")
    body = await read_body(request, settings.max_body_bytes)
    slot = decode_slot(request)  # taken after the read: a slow sender holds none

    def decode() -> tuple[int, ingest.Batch]:
        with slot:
            found = parse_calls(body)
            return len(found), records.to_batch(found, who.project_id, pricing)

    accepted, batch = await anyio.to_thread.run_sync(decode)
    # the same group commit as OTLP ingest: answered only after the commit holding it
    await commit(writer, batch)
    return {"accepted": accepted}
