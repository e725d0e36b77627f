"""The standard OpenTelemetry environment variables a Tracer reads.

An argument given to :class:`~aiscope.Tracer` always wins; a variable set (and not
empty) comes next; aiscope's default last. A variable that is set but unusable is a
``ValueError`` naming it, raised when the Tracer is made, rather than a silent default.

- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK's resource
  detector; ``service.name`` in either is the default service name)
- ``OTEL_TRACES_SAMPLER`` (``always_on``, ``always_off``, ``traceidratio`` and their
  ``parentbased_`` forms) and ``OTEL_TRACES_SAMPLER_ARG`` (the ratio)
- ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_EXPORT_TIMEOUT`` (milliseconds),
  ``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``
- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (a base URL: ``/v1/traces`` is added for OTLP/HTTP), when the Tracer is given neither
  an ``endpoint`` nor an ``exporter``, and ``OTEL_TRACES_EXPORTER`` allows ``otlp``
- ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`` (``grpc`` or ``http/protobuf``),
  ``..._HEADERS`` (``k=v,k2=v2``, URL-encoded values), ``..._TIMEOUT`` (seconds, as the
  OpenTelemetry Python exporters read it); the signal-specific one wins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Literal

Protocol = Literal["grpc", "http"]

SERVICE_NAME = "OTEL_SERVICE_NAME"
BSP_SCHEDULE_DELAY = "OTEL_BSP_SCHEDULE_DELAY"
BSP_EXPORT_TIMEOUT = "OTEL_BSP_EXPORT_TIMEOUT"
BSP_MAX_QUEUE_SIZE = "OTEL_BSP_MAX_QUEUE_SIZE"
BSP_MAX_EXPORT_BATCH_SIZE = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
TRACES_SAMPLER = "OTEL_TRACES_SAMPLER"
TRACES_SAMPLER_ARG = "OTEL_TRACES_SAMPLER_ARG"

_PROTOCOLS: Mapping[str, Protocol] = {"grpc": "grpc", "http/protobuf": "http", "http": "http"}


def get(name: str) -> str | None:
    """The variable's value, stripped; None when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def _otlp(setting: str) -> tuple[str, str] | None:
    """``(variable, value)`` of ``OTEL_EXPORTER_OTLP_TRACES_<setting>``, else of
    ``OTEL_EXPORTER_OTLP_<setting>``; None when neither is set."""
    for name in (f"OTEL_EXPORTER_OTLP_TRACES_{setting}", f"OTEL_EXPORTER_OTLP_{setting}"):
        value = get(name)
        if value is not None:
            return name, value
    return None


def service_name() -> str | None:
    """``service.name`` from ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES``."""
    from opentelemetry.sdk.resources import OTELResourceDetector

    name = OTELResourceDetector().detect().attributes.get("service.name")
    return name if isinstance(name, str) and name else None


def sampler() -> tuple[float, bool] | None:
    """``(ratio, parent_based)`` from ``OTEL_TRACES_SAMPLER`` (and its argument), or
    None when it is not set."""
    raw = get(TRACES_SAMPLER)
    if raw is None:
        return None
    name = raw.lower()
    parent_based = name.startswith("parentbased_")
    kind = name.removeprefix("parentbased_")
    if kind == "always_on":
        return 1.0, parent_based
    if kind == "always_off":
        return 0.0, parent_based
    if kind != "traceidratio":
        raise ValueError(
            f"{TRACES_SAMPLER}={raw!r} is not supported: use always_on, always_off, "
            "traceidratio or their parentbased_ forms"
        )
    arg = get(TRACES_SAMPLER_ARG)
    if arg is None:
        return 1.0, parent_based
    try:
        ratio = float(arg)
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{TRACES_SAMPLER_ARG} must be a ratio between 0 and 1, got {arg!r}")
    return ratio, parent_based


def positive_int(name: str) -> int | None:
    """An int >= 1 from variable ``name``; None when it is not set."""
    raw = get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {raw!r}")
    return value


def millis_as_seconds(name: str) -> float | None:
    """A duration > 0 in milliseconds from variable ``name``, in seconds; None when
    it is not set."""
    raw = get(name)
    if raw is None:
        return None
    return _positive(name, raw, "milliseconds") / 1000


def _positive(name: str, raw: str, unit: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number of {unit} > 0, got {raw!r}")
    return value


def otlp_endpoint() -> tuple[str, bool] | None:
    """``(url, exact)`` from the OTLP endpoint variables, or None. ``exact``: the
    signal-specific variable, whose URL is used as is (no ``/v1/traces`` added).
    None as well when ``OTEL_TRACES_EXPORTER`` names other exporters only."""
    exporters = get(TRACES_EXPORTER)
    if exporters is not None and "otlp" not in {e.strip() for e in exporters.split(",")}:
        return None
    found = _otlp("ENDPOINT")
    if found is None:
        return None
    name, url = found
    return url, name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def otlp_protocol() -> Protocol | None:
    """The protocol the OTLP protocol variables name, or None when unset."""
    found = _otlp("PROTOCOL")
    if found is None:
        return None
    name, raw = found
    try:
        return _PROTOCOLS[raw.lower()]
    except KeyError:
        raise ValueError(
            f"{name}={raw!r} is not supported: use 'grpc' or 'http/protobuf'"
        ) from None


def otlp_headers() -> dict[str, str]:
    """The headers of the OTLP headers variables (``k=v,k2=v2``); empty when unset."""
    found = _otlp("HEADERS")
    if found is None:
        return {}
    from opentelemetry.util.re import parse_env_headers

    return dict(parse_env_headers(found[1], liberal=True))


def otlp_timeout_s() -> float | None:
    """The OTLP exporter's timeout in seconds from the OTLP timeout variables (seconds),
    else ``OTEL_BSP_EXPORT_TIMEOUT`` (milliseconds); None when none is set."""
    found = _otlp("TIMEOUT")
    if found is not None:
        return _positive(found[0], found[1], "seconds")
    return millis_as_seconds(BSP_EXPORT_TIMEOUT)


__all__ = [
    "BSP_EXPORT_TIMEOUT",
    "BSP_MAX_EXPORT_BATCH_SIZE",
    "BSP_MAX_QUEUE_SIZE",
    "BSP_SCHEDULE_DELAY",
    "SERVICE_NAME",
    "TRACES_EXPORTER",
    "TRACES_SAMPLER",
    "TRACES_SAMPLER_ARG",
    "get",
    "millis_as_seconds",
    "otlp_endpoint",
    "otlp_headers",
    "otlp_protocol",
    "otlp_timeout_s",
    "positive_int",
    "sampler",
    "service_name",
]
