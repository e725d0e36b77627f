"""Helpers for the SDK instrumentation tests: a recording sink, and the mock provider
served through the SDKs' own mock-transport hook (``httpx2.MockTransport``) instead of
a socket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

import aiscope
from aiscope.record import CallRecord
from aiscope.scope import Scope, use_scope
from aiscope.testing import MockProvider
from aiscope.testing._dispatch import Dispatcher
from aiscope.testing._frames import Incoming


class Records:
    """A sink keeping every record it is given."""

    def __init__(self) -> None:
        self.items: list[CallRecord] = []

    def on_record(self, record: CallRecord) -> None:
        self.items.append(record)

    @property
    def one(self) -> CallRecord:
        assert len(self.items) == 1, f"expected exactly one record, got {len(self.items)}"
        return self.items[0]


@contextmanager
def instrumented(**options: bool) -> Iterator[Records]:
    """The SDKs instrumented, into a fresh scope (metrics, cost tracker, recording sink)."""
    sink = Records()
    scope = Scope(
        metrics=aiscope.MetricsCollector(), cost_tracker=aiscope.CostTracker(), sinks=[sink]
    )
    aiscope.instrument(**options)
    try:
        with use_scope(scope):
            yield sink
    finally:
        aiscope.uninstrument()


def mock_transport(mock: MockProvider) -> httpx2.MockTransport:
    """An ``httpx2`` transport answering from ``mock``'s dispatcher, in process (no faults
    that need a socket, such as cut streams)."""
    dispatcher = Dispatcher(mock._state)

    def handle(request: httpx2.Request) -> httpx2.Response:
        incoming = Incoming(
            request.method,
            request.url.path,
            dict(request.url.params),
            {k.lower(): v for k, v in request.headers.items()},
            request.read(),
        )
        out = dispatcher(incoming)
        headers = [*out.headers, ("content-type", out.content_type)]
        if out.frames is None:
            body = out.body
        else:
            body = b"".join(f.encode() for f in out.frames)
            if out.record is not None:
                usage = [f for f in out.frames if f.usage is not None]
                if usage:
                    out.record.usage = usage[-1].usage
        if out.frames is None and out.record is not None and out.usage is not None:
            out.record.usage = out.usage
        return httpx2.Response(out.status, headers=headers, content=body)

    return httpx2.MockTransport(handle)


@pytest.fixture
def records(mock: MockProvider) -> Iterator[Records]:
    """A recording sink around the instrumented SDKs; the module's mock provider reset.
    (``mock`` is conftest's module-scoped fixture.)"""
    mock.reset()
    with instrumented() as sink:
        yield sink
