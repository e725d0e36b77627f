"""Decoding OTLP/HTTP trace requests: protobuf or JSON, optionally gzip-compressed.

Only the parsing lives here; what a span means (a GenAI call or trace structure)
is decided in :mod:`aiscope.server.genai`. Every failure is a
:class:`PayloadError` with a message for the 4xx answer.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class PayloadError(ValueError):
    """A request body that cannot be decoded; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Span:
    """One decoded span, attributes as plain Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    error: bool
    status_message: str
    attributes: dict[str, Any]
    service_name: str | None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` inflated per ``Content-Encoding``, refusing more than ``limit`` bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise PayloadError(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)", 415)
    wbits = 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError(f"body is not valid {enc}: {exc}") from None
    if len(out) > limit:
        raise PayloadError(f"decompressed body exceeds the {limit}-byte limit", 413)
    return out


def parse(body: bytes, content_type: str | None) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from a protobuf or OTLP/JSON body."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    request = ExportTraceServiceRequest()
    if ctype == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise PayloadError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from None
        return request
    if ctype == JSON:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise PayloadError("body is not valid JSON: nested too deeply") from None
        if not isinstance(data, dict):
            raise PayloadError("OTLP/JSON body must be an object with resourceSpans")
        try:
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
            raise PayloadError(f"body is not OTLP/JSON: {exc}") from None
        except RecursionError:
            raise PayloadError("body is not OTLP/JSON: nested too deeply") from None
        return request
    raise PayloadError(
        f"Content-Type {content_type!r} is not supported: use {PROTOBUF} or {JSON}", 415
    )


def encode_response(
    content_type: str | None, rejected: int = 0, message: str = ""
) -> tuple[bytes, str]:
    """The OTLP answer in the request's encoding (partial success when spans were rejected)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if (content_type or "").split(";")[0].strip().lower() == JSON:
        return json_format.MessageToJson(response).encode(), JSON
    return response.SerializeToString(), PROTOBUF


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    for rs in data.get("resourceSpans") or []:
        for ss in (rs or {}).get("scopeSpans") or []:
            for span in (ss or {}).get("spans") or []:
                _convert_ids(span)
                for link in span.get("links") or []:
                    _convert_ids(link)


def _convert_ids(obj: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise ValueError(f"span {key} must be hex, got {value[:40]!r}") from None


#: the longest attribute text stored (characters; bytes values count two hex digits a
#: byte): a span is telemetry, not a blob store, and one value must not cost megabytes
MAX_VALUE_CHARS = 16_384
#: the most elements of one array or key-value list attribute kept
MAX_VALUE_ITEMS = 1_000
#: non-finite doubles, valid OTLP but not JSON (PostgreSQL's json refuses them): stored
#: as the names OTLP/JSON gives them
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def any_value(value: Any) -> Any:
    """A protobuf ``AnyValue`` as a plain value that any JSON column stores: texts cut
    at :data:`MAX_VALUE_CHARS`, lists at :data:`MAX_VALUE_ITEMS`, NaN and infinities
    as their OTLP/JSON names."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return value.string_value[:MAX_VALUE_CHARS]
    if which == "double_value":
        d = value.double_value
        return d if math.isfinite(d) else _NON_FINITE.get(d, "NaN")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values[:MAX_VALUE_ITEMS]]
    if which == "kvlist_value":
        kvs = value.kvlist_value.values[:MAX_VALUE_ITEMS]
        return {kv.key[:MAX_VALUE_CHARS]: any_value(kv.value) for kv in kvs}
    if which == "bytes_value":
        return value.bytes_value[: MAX_VALUE_CHARS // 2].hex()
    return getattr(value, which)


def spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    """Every span of ``request``, with its resource's ``service.name``."""
    for rs in request.resource_spans:
        service = None
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = str(any_value(kv.value))
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield Span(
                    trace_id=s.trace_id.hex(),
                    span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex() or None,
                    name=s.name,
                    kind=int(s.kind),
                    start_ns=int(s.start_time_unix_nano),
                    end_ns=int(s.end_time_unix_nano),
                    error=s.status.code == 2,  # STATUS_CODE_ERROR
                    status_message=s.status.message,
                    attributes={
                        kv.key[:MAX_VALUE_CHARS]: any_value(kv.value) for kv in s.attributes
                    },
                    service_name=service,
                )
