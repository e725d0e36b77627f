"""Circuit breaker: stop calling a provider that keeps failing, then probe it carefully.

States:

* ``CLOSED`` - calls pass. Consecutive failures are counted (a success resets the
  count); ``failure_threshold`` of them in a row open the circuit. Optionally, a
  failure *rate* also opens it: with ``failure_rate_threshold`` set, the outcomes of
  the last ``failure_rate_window_s`` seconds are kept in an
  :class:`~aiscope.resilience.signals.ErrorRateWindow`, and once it holds at least
  ``failure_rate_min_calls`` outcomes of which that fraction or more failed, the
  circuit opens even if failures and successes alternate.
* ``OPEN`` - calls are refused at once (:class:`CircuitOpenError`) until
  ``recovery_timeout_s`` has passed since the circuit opened; then the breaker is
  half-open. That change happens lazily, on the next look at the breaker (``state``,
  ``allow()``, ``acquire()``): there is no timer thread.
* ``HALF_OPEN`` - at most ``half_open_max_probes`` calls ("probes") are let through
  at a time. ``success_threshold`` probe successes close the circuit; one probe
  failure opens it again and restarts the recovery timeout.

Permits (the probe-token design). :meth:`CircuitBreaker.acquire` returns a
:class:`CircuitPermit` naming the *generation* of the breaker (it changes on every
transition) and, in the half-open state, the probe slot it holds. A permit resolves
at most once, with ``success()``, ``failure()`` or ``release()`` ("no verdict":
cancelled, or failed in a way that says nothing about the provider); later calls are
no-ops, and it is a context manager that releases itself on exit if unresolved. So::

    with breaker.acquire() as permit:   # raises CircuitOpenError when refused
        try:
            response = send()
        except ProviderDown:
            permit.failure()
            raise
        permit.success()

never leaks a probe slot, whatever is raised (including ``CancelledError``).
Outcomes of a permit from an older generation are ignored: a call admitted before
the circuit opened does not close it by succeeding late, nor re-open it by failing
late.

The token-less calls - ``allow()``, ``record_success()``, ``record_failure()``,
``release_probe()`` without a permit - also work: in the half-open state each
resolves the oldest outstanding probe, and when no probe is outstanding they are
ignored there. They cannot tell a probe from a call admitted while closed, so pass the
permit where you can (all of them accept one).

As a safety net, a probe slot that is never resolved (a permit lost by a bug, a
stream abandoned without being closed) is reclaimed ``probe_timeout_s`` after it was
admitted, so the breaker cannot wedge half-open.

Transition callbacks (``on_transition`` and :meth:`CircuitBreaker.add_listener`) are
called as ``callback(name, old, new)`` outside the lock, one at a time and in the
order of the transitions (a thread that finds another one delivering leaves its
transitions to it); exceptions they raise are logged and swallowed.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType

from aiscope._fork import fork_safe_lock
from aiscope.resilience.errors import CircuitOpenError
from aiscope.resilience.signals import ErrorRateWindow

__all__ = ["CircuitBreaker", "CircuitPermit", "CircuitState", "TransitionCallback"]

log = logging.getLogger("aiscope.resilience")


class CircuitState(StrEnum):
    """The state of a circuit breaker; ``str()`` gives its value (``"closed"``, ...)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


#: ``callback(breaker_name, old_state, new_state)``
TransitionCallback = Callable[[str, CircuitState, CircuitState], None]

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class CircuitPermit:
    """Leave to make one call through a :class:`CircuitBreaker`; resolve it exactly once.

    ``success()``, ``failure()`` and ``release()`` report the outcome (the first one
    wins, later ones are no-ops). As a context manager it releases itself on exit
    unless it was resolved inside the block.
    """

    __slots__ = ("_breaker", "_done", "_generation", "_probe_id")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe_id: int | None) -> None:
        self._breaker = breaker
        self._generation = generation
        self._probe_id = probe_id
        self._done = False

    @property
    def probe(self) -> bool:
        """Whether this permit holds one of the half-open probe slots."""
        return self._probe_id is not None

    @property
    def done(self) -> bool:
        """Whether this permit was resolved already."""
        return self._done

    def success(self) -> None:
        """The call succeeded (same as ``breaker.record_success(permit)``)."""
        self._breaker.record_success(self)

    def failure(self) -> None:
        """The call failed in a way that counts against the provider."""
        self._breaker.record_failure(self)

    def release(self) -> None:
        """No verdict (cancelled, or a failure that says nothing about the provider)."""
        self._breaker.release_probe(self)

    def __enter__(self) -> CircuitPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self._breaker.release_probe(self)

    def __repr__(self) -> str:
        kind = f"probe {self._probe_id}" if self._probe_id is not None else "call"
        done = ", done" if self._done else ""
        return f"<CircuitPermit {self._breaker.name!r} gen {self._generation} {kind}{done}>"


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: object, *, positive: bool = False) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


class CircuitBreaker:
    """A thread- and asyncio-safe circuit breaker for one provider (see the module doc).

    Args:
        name: names the breaker in errors, logs and callbacks (e.g. the provider).
        failure_threshold: consecutive failures that open a closed circuit.
        recovery_timeout_s: how long an open circuit refuses calls before probing.
        half_open_max_probes: probes admitted at the same time when half-open.
        success_threshold: probe successes that close a half-open circuit.
        clock: monotonic clock in seconds (inject a fake one in tests).
        on_transition: called as ``on_transition(name, old, new)`` on every
            transition; more with :meth:`add_listener`.
        probe_timeout_s: a probe slot not resolved this long after it was admitted is
            reclaimed (None: never). Keep it above your longest call.
        failure_rate_threshold: also open when this fraction (0-1] of the recent
            outcomes failed (None: consecutive failures only).
        failure_rate_window_s: how far back "recent" goes.
        failure_rate_min_calls: outcomes the window must hold before the rate counts.

    The lock is held only for a few attribute updates; no clock is read on the closed
    fast path of ``acquire()`` / ``record_success()``.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        recovery_timeout_s: float = 30.0,
        half_open_max_probes: int = 1,
        success_threshold: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionCallback | None = None,
        *,
        probe_timeout_s: float | None = 300.0,
        failure_rate_threshold: float | None = None,
        failure_rate_window_s: float = 60.0,
        failure_rate_min_calls: int = 20,
    ) -> None:
        if not isinstance(name, str):
            raise ValueError(f"name must be a str, got {name!r}")
        _check_int("failure_threshold", failure_threshold, 1)
        _check_seconds("recovery_timeout_s", recovery_timeout_s)
        _check_int("half_open_max_probes", half_open_max_probes, 1)
        _check_int("success_threshold", success_threshold, 1)
        if not callable(clock):
            raise ValueError(f"clock must be callable, got {clock!r}")
        if on_transition is not None and not callable(on_transition):
            raise ValueError(f"on_transition must be callable or None, got {on_transition!r}")
        if probe_timeout_s is not None:
            _check_seconds("probe_timeout_s", probe_timeout_s, positive=True)
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout_s = float(recovery_timeout_s)
        self.half_open_max_probes = half_open_max_probes
        self.success_threshold = success_threshold
        self.probe_timeout_s = None if probe_timeout_s is None else float(probe_timeout_s)
        self._clock = clock
        self._window: ErrorRateWindow | None = None
        self.failure_rate_threshold = failure_rate_threshold
        self.failure_rate_min_calls = failure_rate_min_calls
        if failure_rate_threshold is not None:
            rate = failure_rate_threshold
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
                raise ValueError(f"failure_rate_threshold must be in (0, 1], got {rate!r}")
            _check_seconds("failure_rate_window_s", failure_rate_window_s, positive=True)
            _check_int("failure_rate_min_calls", failure_rate_min_calls, 1)
            self._window = ErrorRateWindow(failure_rate_window_s, clock=clock)

        self._lock = fork_safe_lock()
        self._state = _CLOSED
        self._generation = 0
        self._failures = 0  # consecutive, while closed
        self._successes = 0  # probe successes, while half-open
        self._opened_at = 0.0
        self._probes: OrderedDict[int, float] = OrderedDict()  # probe id -> admitted at
        self._next_probe = 0
        self._listeners: list[TransitionCallback] = []
        if on_transition is not None:
            self._listeners.append(on_transition)
        self._pending: deque[tuple[CircuitState, CircuitState]] = deque()
        self._dispatching = False

    # -- observation ----------------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose timeout passed turns half-open here."""
        state = self._state
        if state is _CLOSED:
            return state
        with self._lock:
            if self._state is _OPEN:
                self._refresh(self._clock())
            state = self._state
        if self._pending:
            self._dispatch()
        return state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    @property
    def probes_in_flight(self) -> int:
        """Probe slots taken (half-open only)."""
        return len(self._probes)

    def retry_in_s(self) -> float:
        """Seconds until an open circuit admits a probe (0.0 unless open)."""
        with self._lock:
            if self._state is not _OPEN:
                return 0.0
            now = self._clock()
            self._refresh(now)
            remaining = self._remaining(now) if self._state is _OPEN else 0.0
        if self._pending:
            self._dispatch()
        return remaining

    # -- admission ------------------------------------------------------------------------
    def acquire(self) -> CircuitPermit:
        """Leave to make a call, as a :class:`CircuitPermit` to resolve once.

        Raises :class:`CircuitOpenError` when the circuit is open, or half-open with
        every probe slot taken.
        """
        with self._lock:
            if self._state is _CLOSED:
                return CircuitPermit(self, self._generation, None)
            probe_id, refusal = self._admit_probe()
            generation = self._generation
        if self._pending:
            self._dispatch()
        if refusal is not None:
            raise CircuitOpenError(self.name, refusal[1], state=refusal[0])
        return CircuitPermit(self, generation, probe_id)

    def allow(self) -> bool:
        """Whether a call may go now (the token-less form of :meth:`acquire`).

        A call admitted while half-open holds a probe slot until ``record_success()``,
        ``record_failure()`` or ``release_probe()`` resolves it.
        """
        with self._lock:
            if self._state is _CLOSED:
                return True
            _, refusal = self._admit_probe()
        if self._pending:
            self._dispatch()
        return refusal is None

    def _admit_probe(self) -> tuple[int | None, tuple[CircuitState, float] | None]:
        """Under the lock, not closed: take a probe slot, or say why not (state, retry in)."""
        now = self._clock()
        self._refresh(now)
        state = self._state
        if state is _CLOSED:  # pragma: no cover - _refresh never closes
            return None, None
        if state is _OPEN:
            return None, (state, self._remaining(now))
        if len(self._probes) >= self.half_open_max_probes:
            return None, (state, 0.0)
        probe_id = self._next_probe
        self._next_probe = probe_id + 1
        self._probes[probe_id] = now
        return probe_id, None

    def _remaining(self, now: float) -> float:
        return max(self._opened_at + self.recovery_timeout_s - now, 0.0)

    def _refresh(self, now: float) -> None:
        """Under the lock: open -> half-open after the timeout; reclaim stale probes."""
        if self._state is _OPEN:
            if now - self._opened_at >= self.recovery_timeout_s:
                self._transition(_HALF_OPEN)
        elif self._state is _HALF_OPEN and self.probe_timeout_s is not None and self._probes:
            deadline = now - self.probe_timeout_s
            probes = self._probes
            while probes:
                probe_id, admitted = next(iter(probes.items()))
                if admitted > deadline:
                    break
                del probes[probe_id]
                log.warning(
                    "circuit %r: probe %d never reported; slot reclaimed", self.name, probe_id
                )

    # -- outcomes -------------------------------------------------------------------------
    def _claim(self, permit: CircuitPermit | None) -> CircuitState | None:
        """Under the lock: the state an outcome applies to, or None to ignore it.

        Resolves the permit (or, without one, the oldest probe when half-open).
        """
        state = self._state
        if permit is None:
            if state is _HALF_OPEN:
                if not self._probes:
                    return None
                self._probes.popitem(last=False)
            return state
        if permit._done:
            return None
        permit._done = True
        if permit._generation != self._generation:
            return None  # from before the last transition: stale
        if permit._probe_id is not None:
            self._probes.pop(permit._probe_id, None)
        return state

    def record_success(self, permit: CircuitPermit | None = None) -> None:
        """A call succeeded: resets the failure count, or counts toward closing if half-open."""
        with self._lock:
            state = self._claim(permit)
            if state is _CLOSED:
                self._failures = 0
                if self._window is not None:
                    self._window.record(True)
                return
            if state is not _HALF_OPEN:
                return
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._transition(_CLOSED)
        if self._pending:
            self._dispatch()

    def record_failure(self, permit: CircuitPermit | None = None) -> None:
        """A call failed in a way that counts against the provider (5xx, 429, timeout, ...)."""
        with self._lock:
            state = self._claim(permit)
            if state is _CLOSED:
                self._failures += 1
                if self._window is not None:
                    self._window.record(False)
                if self._failures >= self.failure_threshold or self._rate_tripped():
                    self._open()
            elif state is _HALF_OPEN:
                self._open()
        if self._pending:
            self._dispatch()

    def release_probe(self, permit: CircuitPermit | None = None) -> None:
        """Resolve a call without a verdict (cancelled, or a client-side error).

        Frees its probe slot if it held one. Safe to call for any permit, resolved or
        not, and in any state.
        """
        with self._lock:
            if permit is None:
                if self._state is _HALF_OPEN and self._probes:
                    self._probes.popitem(last=False)
                return
            if permit._done:
                return
            permit._done = True
            if permit._probe_id is not None and permit._generation == self._generation:
                self._probes.pop(permit._probe_id, None)

    def _rate_tripped(self) -> bool:
        window = self._window
        if window is None or self.failure_rate_threshold is None:
            return False
        ok, failed = window.counts()
        total = ok + failed
        return (
            total >= self.failure_rate_min_calls and failed >= total * self.failure_rate_threshold
        )

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._transition(_OPEN)

    def reset(self) -> None:
        """Force the circuit closed (e.g. from an admin command)."""
        with self._lock:
            if self._state is not _CLOSED:
                self._transition(_CLOSED)
            self._failures = 0
        if self._pending:
            self._dispatch()

    def _transition(self, new: CircuitState) -> None:
        """Under the lock: move to ``new`` and queue the callbacks."""
        old = self._state
        self._state = new
        self._generation += 1
        self._failures = 0
        self._successes = 0
        self._probes.clear()
        if new is _CLOSED and self._window is not None:
            self._window.clear()
        if self._listeners:
            self._pending.append((old, new))
        log.debug("circuit %r: %s -> %s", self.name, old, new)

    # -- callbacks ------------------------------------------------------------------------
    def add_listener(self, callback: TransitionCallback) -> None:
        """Also call ``callback(name, old, new)`` on every transition."""
        if not callable(callback):
            raise ValueError(f"callback must be callable, got {callback!r}")
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: TransitionCallback) -> None:
        """Stop calling ``callback`` (no error if it was not registered)."""
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _dispatch(self) -> None:
        """Deliver queued transitions, outside the lock, in order, one thread at a time."""
        with self._lock:
            if self._dispatching or not self._pending:
                return
            self._dispatching = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._dispatching = False
                        return
                    old, new = self._pending.popleft()
                    listeners = tuple(self._listeners)
                for callback in listeners:
                    try:
                        callback(self.name, old, new)
                    except Exception:
                        log.exception(
                            "circuit %r: transition callback %r failed (%s -> %s)",
                            self.name,
                            callback,
                            old,
                            new,
                        )
        except BaseException:
            with self._lock:
                self._dispatching = False
            raise

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self.name!r} {self._state} failures={self._failures} "
            f"probes={len(self._probes)}>"
        )
