"""The sink contract: what a :class:`~aiscope.Scope` tells each of its sinks.

Like OpenTelemetry's span processors, a sink has a few hooks, every one optional
(:class:`SinkBase` gives no-op defaults)::

    attach(scope)                 once, when a Scope is built with the sink
    on_start(call)                a call began (its span, in-flight count, ...)
    on_event(call, event, data)   something happened during the call (or, with
                                  call None, outside any call: a circuit transition)
    on_end(record, call)          the call finished: the same finished record for
                                  every sink (tags, validated, priced, trace ids)
    on_abandon(call)              the call ended without a record
    force_flush(timeout) / shutdown(timeout)

A plain object with only ``on_record(record)`` is a sink too: that is its ``on_end``.
The Scope resolves which hooks a sink has once, when it is built, so a sink without
``on_event`` costs nothing during a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiscope.record import CallRecord

if TYPE_CHECKING:
    from aiscope.scope import PendingCall, Scope

# The events a capture adapter reports during a call (``data`` keys in brackets).
#: a pipeline stage begins [name]; it is current until its STAGE_END
STAGE_START = "stage_start"
#: a pipeline stage ended [name, seconds, error: the exception or None]
STAGE_END = "stage_end"
#: an attempt failed and the call tries again [reason: error type, attempt, delay_s]
RETRY = "retry"
#: the call waited for a client-side rate limiter [seconds; provider, when reported
#: before the call started (``call`` None)]
RATE_LIMIT_WAIT = "rate_limit_wait"
#: the first streamed token arrived [seconds: since the call started]
FIRST_TOKEN = "first_token"
#: the request's parameters [max_tokens, temperature, top_p, stop_sequences, seed,
#: messages: the chat messages, only when the call captures content]
REQUEST = "request"
#: the answer's content, only when the call captures content [text, finish_reason]
RESPONSE = "response"
# Outside a call (``call`` is None):
#: a provider's circuit breaker is in use [provider, breaker]
CIRCUIT_WATCH = "circuit_watch"
#: a circuit breaker changed state [provider, old, new, breaker]
CIRCUIT_TRANSITION = "circuit_transition"


@runtime_checkable
class Sink(Protocol):
    """Anything that takes finished records (the one hook every sink has)."""

    def on_record(self, record: CallRecord) -> None:
        """Take one finished, validated, priced record. Must not keep it mutable."""


class SinkBase:
    """A sink whose every hook does nothing: subclass it and override what you need.

    ::

        class Slow(aiscope.SinkBase):
            def on_end(self, record, call):
                if record.latency_s > 2:
                    print("slow call", record.model, record.trace_id)
    """

    __slots__ = ()

    #: True when the sink records prompt and completion text: the Scope's calls then
    #: report it (REQUEST ``messages``, RESPONSE ``text``), which costs a little
    capture_content: bool = False
    #: True when :meth:`on_start`, :meth:`on_end` and :meth:`on_abandon` only keep
    #: the books of calls in progress: a record emitted after the fact
    #: (``record_call``) then goes straight to :meth:`on_record`. False (the default)
    #: also starts such a record's call (``call.recorded`` True) before it goes to
    #: the sinks, and ends it with :meth:`on_end`
    live_calls_only: bool = False
    #: the events :meth:`on_event` takes (None: all of them); the Scope passes no others
    events: frozenset[str] | None = None

    def attach(self, scope: Scope) -> None:
        """The sink was put into ``scope`` (it may read the scope's other sinks)."""

    def on_start(self, call: PendingCall) -> None:
        """A call began (or, with ``call.recorded``, a finished one is being recorded)."""

    def on_event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        """Something happened during ``call`` (None: outside any call)."""

    def on_end(self, record: CallRecord, call: PendingCall | None) -> None:
        """A call finished; ``call`` is None for a record emitted without one. The
        default hands the record to :meth:`on_record`."""
        self.on_record(record)

    def on_record(self, record: CallRecord) -> None:
        """Take one finished record (what :meth:`on_end` calls by default)."""

    def on_abandon(self, call: PendingCall) -> None:
        """A call ended without a record (refused, or failed before it was sent)."""

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Send what is buffered; True when all of it went out in time."""
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop."""


__all__ = [
    "CIRCUIT_TRANSITION",
    "CIRCUIT_WATCH",
    "FIRST_TOKEN",
    "RATE_LIMIT_WAIT",
    "REQUEST",
    "RESPONSE",
    "RETRY",
    "STAGE_END",
    "STAGE_START",
    "Sink",
    "SinkBase",
]
