"""MetricsCollector: every call as Prometheus metrics, plus in-process percentiles.

Exposition is ``prometheus_client``'s own (so the text is valid Prometheus and
OpenMetrics), on a registry of the collector's own unless told otherwise. Label
children are cached per label set, so recording a call costs the handful of
counter/histogram updates it must do anyway. Percentiles come from DDSketch:
constant memory for any number of calls, 1% relative accuracy by default, with
values counted in milliseconds in the same bins as :mod:`aiscope.sketch` (the
server's rollups and the alert windows), so all three give the same percentile.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import ceil, log
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as prom_multiprocess

from aiscope import metric_definitions as M
from aiscope._fork import fork_safe_lock
from aiscope.labels import OTHER, LabelLimiter
from aiscope.metric_definitions import (
    CIRCUIT_STATES,
    DURATION_BUCKETS,
    QUALITY_BUCKETS,
    TOKEN_TYPES,
    TTFT_BUCKETS,
    MetricDefinition,
)
from aiscope.metrics._store import Bins, Layout, Series, StoreCollector, sketch_of
from aiscope.names import check_label_name, check_namespace
from aiscope.record import CallRecord, Usage
from aiscope.sink import CIRCUIT_TRANSITION, CIRCUIT_WATCH, RATE_LIMIT_WAIT, RETRY
from aiscope.sketch import LN2, key_function

if TYPE_CHECKING:
    from aiscope.scope import PendingCall, Scope

logger = logging.getLogger("aiscope.metrics")

__all__ = [
    "CIRCUIT_STATES",
    "DURATION_BUCKETS",
    "QUALITY_BUCKETS",
    "TTFT_BUCKETS",
    "LatencyPercentiles",
    "MetricsCollector",
]

#: the labels of the per-call metrics that aiscope sets itself (not from tags)
_SET_LABELS = frozenset(n for d in M.METRICS if d.per_call for n in d.label_names(()))
_KINDS: dict[str, Any] = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


def _native(
    definition: MetricDefinition,
    namespace: str,
    registry: CollectorRegistry,
    tag_labels: Sequence[str] = (),
    buckets: Sequence[float] | None = None,
) -> Any:
    """prometheus_client's own metric for ``definition``, registered on ``registry``."""
    kwargs: dict[str, Any] = {"registry": registry}
    if definition.kind == "histogram":
        kwargs["buckets"] = definition.buckets if buckets is None else buckets
    elif definition.kind == "gauge":
        kwargs["multiprocess_mode"] = definition.multiprocess_mode
    return _KINDS[definition.kind](
        definition.name_in(namespace),
        definition.help,
        definition.label_names(tag_labels),
        **kwargs,
    )


def _usage_counts(u: Usage) -> tuple[int, int, int, int, int]:
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    )


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Breaker(Protocol):
    """What the collector reads of a circuit breaker (a CircuitBreaker)."""

    @property
    def state(self) -> str: ...


class _CircuitReader:
    """Reads a breaker's state when the gauges are scraped; the breaker is held weakly
    (a client made per request must not be kept alive by its metrics), and once it is
    gone the last state read stays."""

    __slots__ = ("breaker", "last")

    def __init__(self, breaker: _Breaker) -> None:
        self.breaker = weakref.ref(breaker)
        self.last = str(breaker.state)

    def current(self) -> str:
        b = self.breaker()
        if b is not None:
            try:
                self.last = str(b.state)
            except Exception:  # a scrape never fails because of a breaker
                logger.debug("reading a circuit breaker's state failed", exc_info=True)
        return self.last

    def value(self, state: str) -> Callable[[], float]:
        return lambda: 1.0 if self.current() == state else 0.0


#: cost statuses of a record without a cost that is not an unpriced call: not priced
#: yet (no pricing step), or a failed call that reported no usage (nothing to price)
_PRICED_OR_NOTHING = frozenset({"not_priced", "no_usage"})


@dataclass(frozen=True, slots=True)
class LatencyPercentiles:
    """Latency quantiles of the calls recorded so far, in milliseconds."""

    model: str | None
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "model": self.model,
            "count": self.count,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
        }


class _Budget(Protocol):
    """What the budget gauges read of a budget (a cost.Budget)."""

    @property
    def name(self) -> str: ...
    @property
    def window(self) -> str: ...
    @property
    def limit_usd(self) -> float: ...


class _WatchedBudget(_Budget, Protocol):
    """A budget of a watched tracker: one with a limit per tag value has no gauges."""

    @property
    def per_value(self) -> bool: ...


class _BudgetStatus(_Budget, Protocol):
    """What the budget gauges read of a budget's state (a cost.BudgetStatus)."""

    @property
    def spent_usd(self) -> float: ...
    @property
    def remaining_usd(self) -> float: ...


class _Tracker(Protocol):
    """What :meth:`MetricsCollector.watch_budget` reads of a CostTracker (structurally,
    so metrics does not import the cost package)."""

    @property
    def budgets(self) -> Sequence[_WatchedBudget]: ...
    def budget_statuses(self) -> Sequence[_BudgetStatus]: ...
    def add_listener(self, listener: Callable[[Sequence[_BudgetStatus]], None]) -> None: ...


class _BudgetReader:
    """Reads one budget's state from its tracker when the gauges are scraped."""

    __slots__ = ("name", "tracker")

    def __init__(self, tracker: _Tracker, name: str) -> None:
        self.tracker = tracker
        self.name = name

    def _status(self) -> _BudgetStatus | None:
        return next((s for s in self.tracker.budget_statuses() if s.name == self.name), None)

    def spent(self) -> float:
        st = self._status()
        return st.spent_usd if st is not None else 0.0

    def remaining(self) -> float:
        st = self._status()
        return st.remaining_usd if st is not None else 0.0


class _Children:
    """Native metrics (multiprocess mode): one label set's prometheus_client children."""

    __slots__ = (
        "base",
        "cost",
        "duration",
        "errors",
        "latency_bins",
        "requests",
        "tokens",
        "ttft",
        "ttft_bins",
    )

    def __init__(self, mc: MetricsCollector, series: Series) -> None:
        base, status, error = series.base, series.status, series.error
        self.base = base
        self.requests = mc.requests.labels(*base, status)
        self.duration = mc.duration.labels(*base)
        self.ttft = mc.ttft.labels(*base)
        self.tokens = tuple(mc.tokens.labels(*base, t) for t in TOKEN_TYPES)
        self.cost = mc.cost.labels(*base)
        self.errors = mc.errors.labels(*base, error) if error else None
        self.latency_bins = series.latency_bins
        self.ttft_bins = series.ttft_bins


class MetricsCollector:
    """Prometheus metrics for LLM calls.

    Names follow the ai-lib seed: ``ai_lib_requests_total``,
    ``ai_lib_request_duration_seconds``, ``ai_lib_tokens_total``,
    ``ai_lib_errors_total``; plus ``ai_lib_cost_usd_total``,
    ``ai_lib_time_to_first_token_seconds``, ``ai_lib_inflight_requests`` and
    budget gauges. Every series carries ``model``, ``provider`` and one label per
    entry of ``tag_labels`` (tags ``feature`` and ``team`` by default). Label
    values are bounded: at most ``max_label_values`` distinct values per label
    (or only those in ``label_allowlist``); the rest become ``other``; and at most
    ``max_series`` label combinations, beyond which calls are counted under
    ``other`` for every label (``ai_lib_label_overflow_total{label="series"}``).

    Under prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set
    before import), :meth:`export_prometheus` aggregates every process's values.

    The per-call values are kept in flat per-series lists and exposed by a custom
    collector at scrape time (one lock per call instead of a dozen; same samples).
    In multiprocess mode, or with ``native_metrics=True``, they are
    prometheus_client's own Counter/Histogram/Gauge objects instead.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        use_global_registry: bool = False,
        namespace: str = M.DEFAULT_NAMESPACE,
        tag_labels: Sequence[str] = M.DEFAULT_TAG_LABELS,
        max_label_values: int = 100,
        label_allowlist: Mapping[str, Iterable[str]] | None = None,
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
        ttft_buckets: Sequence[float] = TTFT_BUCKETS,
        percentile_accuracy: float = 0.01,
        max_series: int = 10_000,
        native_metrics: bool = False,
    ) -> None:
        from prometheus_client import REGISTRY

        if registry is not None and use_global_registry:
            raise ValueError("give either registry or use_global_registry=True, not both")
        check_namespace(namespace)
        if isinstance(tag_labels, str):
            raise ValueError(f"tag_labels must be a sequence of label names, got {tag_labels!r}")
        for name in tag_labels:
            check_label_name(name, "a tag_labels entry")
            if name in _SET_LABELS:
                raise ValueError(f"tag_labels must not repeat a label aiscope sets: {name!r}")
        if not 0.0 < percentile_accuracy < 1.0:
            raise ValueError(f"percentile_accuracy must be in (0, 1), got {percentile_accuracy!r}")
        if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
            raise ValueError(f"max_series must be an int >= 1, got {max_series!r}")
        self.max_series = max_series
        self.registry = REGISTRY if use_global_registry else (registry or CollectorRegistry())
        self.namespace = namespace
        self.tag_labels = tuple(tag_labels)
        self._n_tags = len(self.tag_labels)
        self.labels = LabelLimiter(max_label_values, label_allowlist)
        self._accuracy = percentile_accuracy
        ns, reg = namespace, self.registry
        self._lock = fork_safe_lock(threading.Lock())
        self._layout = Layout(duration_buckets, ttft_buckets)
        multiplier, bin_min = key_function(percentile_accuracy)
        # a latency of s seconds goes to bin ceil(log(s * 1000) / LN2 * multiplier), DDSketch's
        # key of the value in ms (the bins of aiscope.sketch); as log(s) * scale + shift it
        # costs no more than keying seconds did
        self._bin_scale = multiplier / LN2
        self._bin_shift = log(1000.0) * self._bin_scale
        self._bin_min = bin_min / 1000.0  # in seconds
        #: bounded label key -> series (fast store) or children (multiprocess mode)
        self._children: dict[tuple[str, ...], Any] = {}
        #: raw (model, provider, status, error_type, *tag values) -> the same objects, for
        #: keys whose every value was admitted as is (so it stays bounded by the series)
        self._raw: dict[tuple[Any, ...], Any] = {}
        self._inflight_slots: dict[tuple[str, str], list[int]] = {}
        self._latency: dict[str, Bins] = {}
        self._ttft_bins: dict[str, Bins] = {}
        self.native_metrics = native_metrics or bool(_multiprocess_dir())
        if self.native_metrics:
            self._register_native_metrics()
            self.on_record = self._on_record_native  # type: ignore[method-assign]
        else:
            reg.register(
                StoreCollector(
                    ns,
                    self.tag_labels,
                    self._layout,
                    self._children.values(),
                    self._inflight_slots,
                    self._lock,
                )
            )
        self.unpriced = _native(M.UNPRICED, ns, reg)
        self.label_overflow = _native(M.LABEL_OVERFLOW, ns, reg)
        self.budget_spent = _native(M.BUDGET_SPENT, ns, reg)
        self.budget_limit = _native(M.BUDGET_LIMIT, ns, reg)
        self.budget_remaining = _native(M.BUDGET_REMAINING, ns, reg)
        self.retries = _native(M.RETRIES, ns, reg)
        self.circuit_transitions = _native(M.CIRCUIT_TRANSITIONS, ns, reg)
        self.circuit_state = _native(M.CIRCUIT_STATE, ns, reg)
        #: bounded provider -> the watched breaker's reader (its gauges read it)
        self._circuits: dict[str, _CircuitReader] = {}
        self.rate_limit_waits = _native(M.RATE_LIMIT_WAITS, ns, reg)
        self.rate_limit_wait_seconds = _native(M.RATE_LIMIT_WAIT_SECONDS, ns, reg)
        self._budget_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._watched: list[_Tracker] = []
        self._overflow_seen: dict[str, int] = {}
        self._model_tbl = self.labels.table("model")
        self._provider_tbl = self.labels.table("provider")
        self._tag_tbls = tuple(self.labels.table(t) for t in self.tag_labels)

    # -- recording ----------------------------------------------------------------------
    def _bounded(self, label: str, table: dict[str, str], value: str) -> str:
        hit = table.get(value)
        if hit is not None:
            return hit
        out = self.labels.get(label, value)
        n = self.labels.overflow.get(label, 0)
        if n != self._overflow_seen.get(label, 0):
            self.label_overflow.labels(label).inc(n - self._overflow_seen.get(label, 0))
            self._overflow_seen[label] = n
        return out

    def _register_native_metrics(self) -> None:
        # prometheus_client's multiprocess mode keeps values in its mmap files, so the
        # per-call metrics must be its own objects here (see metrics/_store.py).
        ns, reg, tags = self.namespace, self.registry, self.tag_labels
        lay = self._layout
        self.requests = _native(M.REQUESTS, ns, reg, tags)
        self.duration = _native(M.REQUEST_DURATION, ns, reg, tags, lay.duration_bounds)
        self.ttft = _native(M.TIME_TO_FIRST_TOKEN, ns, reg, tags, lay.ttft_bounds)
        self.tokens = _native(M.TOKENS, ns, reg, tags)
        self.errors = _native(M.ERRORS, ns, reg, tags)
        self.cost = _native(M.COST, ns, reg, tags)
        self.inflight = _native(M.INFLIGHT, ns, reg)

    # -- the sink hooks (aiscope.sink): a Scope drives them --------------------------------
    #: in flight are calls in progress only, not records emitted after the fact
    live_calls_only = True
    #: the events counted here (the Scope passes no others)
    events = frozenset((RETRY, RATE_LIMIT_WAIT, CIRCUIT_WATCH, CIRCUIT_TRANSITION))

    def attach(self, scope: Scope) -> None:
        """Expose the budgets of the cost tracker configured next to this collector."""
        if scope.cost_tracker is not None:
            self.watch_budget(scope.cost_tracker)

    def on_start(self, call: PendingCall) -> None:
        """Count the call in flight (:meth:`call_started`, without its extra call)."""
        slot = self._inflight_slot(call.model, call.provider)
        if self.native_metrics:
            slot.inc()
        else:
            with self._lock:
                slot[0] += 1
        call.in_flight = slot

    def on_event(self, call: PendingCall | None, event: str, data: Mapping[str, Any]) -> None:
        """Retries, rate-limiter waits and circuit breakers (see :attr:`events`)."""
        if event == RETRY and call is not None:
            self.count_retry(call.model, call.provider, data["reason"])
        elif event == RATE_LIMIT_WAIT:
            provider = data.get("provider") or (call.provider if call is not None else None)
            if provider:
                self.rate_limit_wait(provider, data["seconds"])
        elif event == CIRCUIT_WATCH:
            self.watch_circuit(data["breaker"], data["provider"])
        elif event == CIRCUIT_TRANSITION:
            # the scope may have changed since the breaker was first watched: watch here too
            self.watch_circuit(data["breaker"], data["provider"])
            self.circuit_transition(data["provider"], str(data["old"]), str(data["new"]))

    def on_end(self, record: CallRecord, call: PendingCall | None) -> None:
        """Count the finished call, and end its in-flight count."""
        try:
            self.on_record(record)
        finally:
            if call is not None and call.in_flight is not None:
                self.call_finished(call.model, call.provider, call.in_flight)

    def on_abandon(self, call: PendingCall) -> None:
        """End the in-flight count of a call that produced no record."""
        if call.in_flight is not None:
            self.call_finished(call.model, call.provider, call.in_flight)

    def on_record(self, record: CallRecord) -> None:
        """Count one call in every metric and in the model's percentile sketches."""
        tags = record.tags
        n_tags = self._n_tags
        if n_tags == 2:  # the default (feature, team); a starred map() costs 5x this
            t0, t1 = self.tag_labels
            key: tuple[Any, ...] = (
                record.model,
                record.provider,
                record.status,
                record.error_type,
                tags.get(t0),
                tags.get(t1),
            )
        else:
            key = self._raw_key(record)
        s = self._raw.get(key)
        if s is None:
            s = self._series_for(record, key)
        lay = self._layout
        latency = record.latency_s
        ttft = record.time_to_first_token_s
        u = record.usage
        cost = record.cost_usd
        with self._lock:
            v = s.values
            v[0] += latency  # duration sum; its buckets' total is the request count
            v[1 + bisect_left(lay.duration_bounds, latency)] += 1.0
            if ttft is not None:
                v[lay.ttft_sum] += ttft
                v[lay.ttft_bucket0 + bisect_left(lay.ttft_bounds, ttft)] += 1.0
                # the bin update is written out here and for latency below, not
                # called: a call per value would cost more than the rest of it
                b = s.ttft_bins
                if ttft > self._bin_min:  # bins in ms, as the server's and the alerts'
                    k = ceil(log(ttft) * self._bin_scale + self._bin_shift)
                    i = k - b.offset
                    if 0 <= i < len(b.counts):
                        b.counts[i] += 1.0
                    else:
                        b.add_key(k)
                else:
                    b.zeros += 1
            t = lay.tokens
            v[t] += u.input_tokens
            v[t + 1] += u.output_tokens
            if u.cache_read_tokens:
                v[t + 2] += u.cache_read_tokens
            if u.cache_write_tokens:
                v[t + 3] += u.cache_write_tokens
            if u.reasoning_tokens:
                v[t + 4] += u.reasoning_tokens
            if cost:
                v[lay.cost] += cost
            b = s.latency_bins
            if latency > self._bin_min:
                k = ceil(log(latency) * self._bin_scale + self._bin_shift)
                i = k - b.offset
                if 0 <= i < len(b.counts):
                    b.counts[i] += 1.0
                else:
                    b.add_key(k)
            else:
                b.zeros += 1
        if cost is None and record.cost_status not in _PRICED_OR_NOTHING:
            self._count_unpriced(s.base, record.cost_status)

    def _raw_key(self, record: CallRecord) -> tuple[Any, ...]:
        """The cache key of a record's labels before bounding (see :attr:`_raw`)."""
        tags = record.tags
        return (
            record.model,
            record.provider,
            record.status,
            record.error_type,
            *map(tags.get, self.tag_labels),
        )

    def _add_bin(self, bins: Bins, seconds: float) -> None:
        if seconds > self._bin_min:  # bins in ms (see __init__)
            bins.add_key(ceil(log(seconds) * self._bin_scale + self._bin_shift))
        else:
            bins.zeros += 1

    def _count_unpriced(self, base: tuple[str, ...], reason: str) -> None:
        self.unpriced.labels(base[0], base[1], reason).inc()

    def _on_record_native(self, record: CallRecord) -> None:
        key = self._raw_key(record)
        ch = self._raw.get(key)
        if ch is None:
            ch = self._series_for(record, key)
        ch.requests.inc()
        latency = record.latency_s
        ch.duration.observe(latency)
        ttft = record.time_to_first_token_s
        if ttft is not None:
            ch.ttft.observe(ttft)
        u = record.usage
        for child, n in zip(ch.tokens, _usage_counts(u), strict=True):
            if n:
                child.inc(n)
        cost = record.cost_usd
        if cost:
            ch.cost.inc(cost)
        if ch.errors is not None:
            ch.errors.inc()
        with self._lock:
            self._add_bin(ch.latency_bins, latency)
            if ttft is not None:
                self._add_bin(ch.ttft_bins, ttft)
        if cost is None and record.cost_status not in _PRICED_OR_NOTHING:
            self._count_unpriced(ch.base, record.cost_status)

    def _series_for(self, record: CallRecord, raw: tuple[Any, ...]) -> Any:
        """The series of a record whose raw labels are not cached yet: bound every label
        value, then find or make the series (folded into ``other`` past ``max_series``)."""
        m = self._bounded("model", self._model_tbl, record.model)
        p = self._bounded("provider", self._provider_tbl, record.provider)
        tags = record.tags
        tag_values = tuple(
            self._bounded(name, tbl, v) if (v := tags.get(name)) else ""
            for name, tbl in zip(self.tag_labels, self._tag_tbls, strict=True)
        )
        status = record.status
        error = ""
        if status != "ok":
            error = self._bounded(
                "error_type", self.labels.table("error_type"), record.error_type or "unknown"
            )
        base = (m, p, *tag_values)
        exact = (
            m == record.model
            and p == record.provider
            and all(b == (v or "") for b, v in zip(tag_values, raw[4:], strict=True))
            and error in ("", record.error_type or "unknown")
            and OTHER not in base
            and error != OTHER
        )
        key = (*base, status, error)
        folded = False
        with self._lock:
            s = self._children.get(key)
            if s is None:
                if len(self._children) >= self.max_series:
                    # label values are capped one by one; their combinations here, so a
                    # workload whose combinations never repeat still cannot grow the series
                    folded, exact = True, False
                    base = (OTHER,) * len(base)
                    key = (*base, status, error)
                    s = self._children.get(key)
                if s is None:
                    s = self._make_series(base, status, error)
                    self._children[key] = s
            if exact and len(self._raw) < 4 * self.max_series:
                self._raw[raw] = s
        if folded:
            self.label_overflow.labels("series").inc()
        return s

    def _make_series(self, base: tuple[str, ...], status: str, error: str) -> Any:
        # called with self._lock held
        model = base[0]
        lat = self._latency.get(model)
        if lat is None:
            lat = self._latency[model] = Bins()
        ttft = self._ttft_bins.get(model)
        if ttft is None:
            ttft = self._ttft_bins[model] = Bins()
        series = Series(self._layout, base, status, error, lat, ttft)
        return _Children(self, series) if self.native_metrics else series

    def _inflight_slot(self, model: str, provider: str) -> Any:
        slot = self._inflight_slots.get((model, provider))
        if slot is None:
            m = self._bounded("model", self._model_tbl, model)
            p = self._bounded("provider", self._provider_tbl, provider)
            if self.native_metrics:
                return self.inflight.labels(m, p)
            with self._lock:
                bounded = self._inflight_slots.setdefault((m, p), [0])
                if m == model and p == provider:
                    slot = bounded
            if slot is None:
                return bounded
        return slot

    def call_started(self, model: str, provider: str) -> Any:
        """A call to ``model`` went out (in-flight gauge). Returns a handle to pass
        to :meth:`call_finished`, which then skips looking the gauge up again."""
        slot = self._inflight_slot(model, provider)
        if self.native_metrics:
            slot.inc()
        else:
            with self._lock:
                slot[0] += 1
        return slot

    def call_finished(self, model: str, provider: str, handle: Any = None) -> None:
        """A call started with :meth:`call_started` ended."""
        slot = self._inflight_slot(model, provider) if handle is None else handle
        if self.native_metrics:
            slot.dec()
            return
        with self._lock:
            slot[0] -= 1

    def count_retry(self, model: str, provider: str, reason: str) -> None:
        """A request is retried because of ``reason`` (an error type)."""
        m = self._bounded("model", self._model_tbl, model)
        p = self._bounded("provider", self._provider_tbl, provider)
        r = self._bounded("error_type", self.labels.table("error_type"), reason)
        self.retries.labels(m, p, r).inc()

    def watch_circuit(self, breaker: _Breaker, provider: str) -> None:
        """Export ``breaker``'s state as ``ai_lib_circuit_state{provider, state}`` from now
        on (one series per state, 1 for the current one), not only after its first
        transition. AiClient calls it for its breaker; calling it again is a no-op.

        In a single process the gauges read the breaker when scraped (so an open
        circuit whose timeout passed shows half-open); in multiprocess mode a scrape
        reads only what each process wrote, so they are set now and on every
        :meth:`circuit_transition`."""
        p = self._bounded("provider", self._provider_tbl, provider)
        with self._lock:
            reader = self._circuits.get(p)
            if reader is not None and reader.breaker() is breaker:
                return
            reader = self._circuits[p] = _CircuitReader(breaker)
        if _multiprocess_dir():
            self._set_circuit_state(p, reader.last)
            return
        for state in CIRCUIT_STATES:
            self.circuit_state.labels(p, state).set_function(reader.value(state))

    def _set_circuit_state(self, provider: str, current: str) -> None:
        for state in CIRCUIT_STATES:
            self.circuit_state.labels(provider, state).set(1.0 if state == current else 0.0)

    def circuit_transition(self, provider: str, old: str, new: str) -> None:
        """A provider's circuit breaker moved from ``old`` to ``new``."""
        if new not in CIRCUIT_STATES:
            raise ValueError(f"circuit state must be one of {', '.join(CIRCUIT_STATES)}: {new!r}")
        p = self._bounded("provider", self._provider_tbl, provider)
        self.circuit_transitions.labels(p, old, new).inc()
        if p not in self._circuits or _multiprocess_dir():
            # a watched breaker's gauges read it at scrape time; the others are set here
            self._set_circuit_state(p, new)

    def rate_limit_wait(self, provider: str, seconds: float) -> None:
        """A request waited ``seconds`` for the client-side rate limiter."""
        p = self._bounded("provider", self._provider_tbl, provider)
        self.rate_limit_waits.labels(p).inc()
        self.rate_limit_wait_seconds.labels(p).inc(seconds)

    def watch_budget(self, tracker: _Tracker) -> None:
        """Expose ``tracker``'s budgets as the ``ai_lib_budget_*`` gauges.

        In a single process the gauges read the tracker when scraped, so charging a
        call costs nothing here. In multiprocess mode a scrape reads only what each
        process wrote, so the tracker updates the gauges after every charge instead.
        """
        with self._lock:
            if any(t is tracker for t in self._watched):
                return
            self._watched.append(tracker)
        if _multiprocess_dir():
            tracker.add_listener(self.update_budget)
            self.update_budget(tracker.budget_statuses())
            return
        for budget in tracker.budgets:
            if budget.per_value:  # a limit per team/user/...: read with budget_status()
                continue
            self.budget_limit.labels(budget.name, budget.window).set(budget.limit_usd)
            reader = _BudgetReader(tracker, budget.name)
            self.budget_spent.labels(budget.name, budget.window).set_function(reader.spent)
            self.budget_remaining.labels(budget.name, budget.window).set_function(reader.remaining)

    def update_budget(self, statuses: Iterable[_BudgetStatus]) -> None:
        """Set the budget gauges from ``statuses`` (the multiprocess-mode listener)."""
        for st in statuses:
            children = self._budget_children.get((st.name, st.window))
            if children is None:
                children = (
                    self.budget_spent.labels(st.name, st.window),
                    self.budget_remaining.labels(st.name, st.window),
                )
                self.budget_limit.labels(st.name, st.window).set(st.limit_usd)
                self._budget_children[(st.name, st.window)] = children
            children[0].set(st.spent_usd)
            children[1].set(st.remaining_usd)

    # -- quality (fed by FeedbackCollector) ------------------------------------------------
    def observe_quality(
        self, score: float, model: str, feature: str = "", source: str = ""
    ) -> None:
        """Count one quality score in [0, 1] in ``ai_lib_quality_score`` (by model,
        feature and feedback source). The histogram is registered on first use."""
        hist = getattr(self, "_quality", None)
        if hist is None:
            with self._lock:
                hist = getattr(self, "_quality", None)
                if hist is None:
                    hist = _native(M.QUALITY_SCORE, self.namespace, self.registry)
                    self._quality = hist
        m = self._bounded("model", self._model_tbl, model)
        f = self._bounded("feature", self.labels.table("feature"), feature) if feature else ""
        hist.labels(m, f, self._bounded("source", self.labels.table("source"), source)).observe(
            score
        )

    # -- reading ------------------------------------------------------------------------
    def export_prometheus(self) -> str:
        """The metrics in Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self._exposition_registry()).decode("utf-8")

    def _exposition_registry(self) -> CollectorRegistry:
        mp_dir = _multiprocess_dir()
        if not mp_dir:
            return self.registry
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry, path=mp_dir)  # type: ignore[no-untyped-call]
        return registry

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve ``/metrics`` over HTTP in a background thread; returns (server, port)."""
        server, _thread = start_http_server(port, addr=addr, registry=self._exposition_registry())
        return server, int(server.server_port)

    def _quantiles(self, bins: dict[str, Bins], model: str | None) -> LatencyPercentiles:
        with self._lock:
            if model is not None:
                found = bins.get(self._model_tbl.get(model, model))
                sk = sketch_of([] if found is None else [found], self._accuracy)
            else:
                sk = sketch_of(bins.values(), self._accuracy)
        if sk.count == 0:
            return LatencyPercentiles(model, 0, None, None, None)

        def q(x: float) -> float:
            v = sk.get_quantile_value(x)
            return 0.0 if v is None else float(v)  # the bins are in ms already

        return LatencyPercentiles(model, int(sk.count), q(0.5), q(0.95), q(0.99))

    def latency_percentiles(self, model: str | None = None) -> LatencyPercentiles:
        """p50/p95/p99 latency (ms) of one model's calls, or of all calls."""
        return self._quantiles(self._latency, model)

    def ttft_percentiles(self, model: str | None = None) -> LatencyPercentiles:
        """p50/p95/p99 time to first token (ms) of one model's streamed calls, or all."""
        return self._quantiles(self._ttft_bins, model)

    def models(self) -> list[str]:
        """The (bounded) model names seen so far."""
        with self._lock:
            return sorted(m for m, b in self._latency.items() if len(b.counts) or b.zeros)
