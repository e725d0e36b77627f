"""``POST /v1/traces``: OTLP/HTTP traces (protobuf or JSON, gzip), stored once committed."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response

from aiscope.server import ingest, otlp
from aiscope.server.deps import AppSettings, Ingester, Prices, Writer, decode_slot, read_body
from aiscope.server.settings import MAX_SPANS
from aiscope.server.writer import commit

router = APIRouter(tags=["ingest"])


@router.post(
    "/v1/traces",
    openapi_extra={
        "requestBody": {
            "content": {
                otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                otlp.JSON: {"schema": {"type": "object"}},
            },
            "required": True,
        }
    },
)
async def traces(
    request: Request, who: Ingester, settings: AppSettings, pricing: Prices, writer: Writer
) -> Response:
    """OTLP/HTTP traces (protobuf or JSON, gzip): answered after the batch is committed."""
    ctype = request.headers.get("content-type")
    encoding = request.headers.get("content-encoding")
    raw = await read_body(request, settings.max_body_bytes)
    slot = decode_slot(request)  # taken after the read: a slow sender holds none

    def decode() -> ingest.Batch:  # off the event loop: a large body takes a while
        with slot:
            body = otlp.decompress(raw, encoding, settings.max_body_bytes)
            parsed = otlp.parse(body, ctype)
            n = sum(len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)
            if n > MAX_SPANS:
                raise otlp.PayloadError(
                    f"{n} spans in one request: at most {MAX_SPANS}; send smaller batches",
                    413,
                )
            return ingest.to_batch(parsed, who.project_id, pricing)

    batch = await anyio.to_thread.run_sync(decode)
    await commit(writer, batch)  # answered only after the commit that holds it
    content, media = otlp.encode_response(ctype, batch.rejected, "; ".join(batch.errors[:5]))
    return Response(content, media_type=media)
