"""CostTracker: what calls cost, by model/feature/team/operation, and budgets that block."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from aiscope._fork import fork_safe_lock
from aiscope.context import OperationContext, current_tags
from aiscope.cost._nanos import as_nano_ledger
from aiscope.cost._periods import OVERFLOW_VALUE, Period, check_window
from aiscope.cost.budget import (
    CALL_FIELDS,
    Budget,
    BudgetExceededError,
    BudgetStatus,
    BudgetUnavailableError,
    Window,
)
from aiscope.cost.ledger import (
    Ledger,
    LedgerUnavailableError,
    MemoryLedger,
    SettleItem,
    from_nanos,
    to_nanos,
)
from aiscope.cost.pricing import Pricing, default_pricing
from aiscope.counters import zeros
from aiscope.labels import LabelLimiter
from aiscope.record import CallRecord, Usage

log = logging.getLogger("aiscope.cost")

Mode = Literal["block", "warn"]
BudgetCallback = Callable[["CostTracker", BudgetStatus], None]


@dataclass(slots=True)
class Reservation:
    """Budget held for one call in flight; settled by the record, released on failure."""

    #: (budget period, ledger key, reservation id or None) for every budget holding it
    ids: list[tuple[Period, str, str | None]]
    estimate_usd: float
    settled: bool = False


@dataclass(slots=True)
class ModelUsage:
    """Totals for one model."""

    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unpriced_calls: int = 0


@dataclass(slots=True)
class CostReport:
    """A snapshot of a CostTracker (``tracker.get_report()``).

    ``total_cost`` is everything this tracker recorded; ``spent`` and
    ``remaining`` refer to the primary budget's current window (as kept in the
    ledger, which may be shared with other processes). Costs by operation are
    inclusive: a call inside nested operations counts for each of them. Every sum
    is kept in integer nano-dollars and shown in dollars: the total is the exact
    sum of the calls' costs, and the breakdowns add up to it.
    """

    total_cost: float
    remaining: float | None
    budget_usd: float | None
    spent: float
    window: str
    period: str
    call_count: int
    error_count: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    refused_calls: int
    by_model: dict[str, float] = field(default_factory=dict)
    by_provider: dict[str, float] = field(default_factory=dict)
    by_feature: dict[str, float] = field(default_factory=dict)
    by_team: dict[str, float] = field(default_factory=dict)
    by_user: dict[str, float] = field(default_factory=dict)
    by_operation: dict[str, float] = field(default_factory=dict)
    models: dict[str, ModelUsage] = field(default_factory=dict)
    budgets: list[BudgetStatus] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        out = {k: getattr(self, k) for k in self.__slots__ if k not in ("models", "budgets")}
        out["models"] = {m: _vars_of(u) for m, u in self.models.items()}
        out["budgets"] = [{**_vars_of(b), "remaining_usd": b.remaining_usd} for b in self.budgets]
        return out


def _vars_of(obj: Any) -> dict[str, Any]:
    """Fields of a slotted dataclass as a dict."""
    return {k: getattr(obj, k) for k in obj.__slots__}


def _add(d: dict[str, int], key: str, amount: int) -> None:
    d[key] = d.get(key, 0) + amount


def _usd(d: dict[str, int]) -> dict[str, float]:
    return {k: from_nanos(v) for k, v in d.items()}


class CostTracker:
    """Prices every call, attributes it, and enforces budgets.

    ``CostTracker(budget_usd=10.0, alert_threshold=0.8)`` gives a $10 budget over
    the tracker's whole life that, in the default ``block`` mode, refuses (with
    :class:`BudgetExceededError`, before any request is sent) a call whose
    estimated cost would cross it. ``window="daily"``/``"monthly"`` resets at the
    UTC boundary; ``budgets=[Budget(50, "daily"), Budget(1000, "monthly")]`` adds
    more limits, also per key, team, user, feature or model
    (``Budget(5, "daily", name="team", per="team")``): a call must fit every budget
    that holds it, and is reserved on all of them or on none. ``mode="warn"`` only
    records and calls back.
    """

    def __init__(
        self,
        budget_usd: float | None = None,
        alert_threshold: float = 0.8,
        *,
        window: Window = "total",
        mode: Mode = "block",
        budgets: Sequence[Budget] = (),
        ledger: Ledger | str | Path | None = None,
        pricing: Pricing | Mapping[str, Any] | str | Path | None = None,
        on_threshold: BudgetCallback | None = None,
        on_exceed: BudgetCallback | None = None,
        default_max_output_tokens: int = 4096,
        max_label_values: int = 200,
        max_accumulators: int = 10_000,
    ) -> None:
        if isinstance(alert_threshold, bool) or not isinstance(alert_threshold, int | float):
            raise TypeError(f"alert_threshold must be a number, got {alert_threshold!r}")
        if not 0.0 < alert_threshold <= 1.0:
            raise ValueError(f"alert_threshold must be in (0, 1], got {alert_threshold!r}")
        if mode not in ("block", "warn"):
            raise ValueError(f"mode must be 'block' or 'warn', got {mode!r}")
        check_window(window)
        all_budgets = list(budgets)
        if budget_usd is not None:
            all_budgets.insert(0, Budget(budget_usd, window, name="default"))
        names = [b.name for b in all_budgets]
        for b in all_budgets:
            if not isinstance(b, Budget):
                raise TypeError(f"budgets must hold aiscope.Budget objects, got {b!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"budget names must be unique, got {names}")
        if ledger is not None and inspect.iscoroutinefunction(getattr(ledger, "try_reserve", None)):
            raise TypeError(
                f"{type(ledger).__name__} is an asyncio ledger; CostTracker needs a "
                "synchronous one (RedisLedger instead of AsyncRedisLedger)"
            )
        if isinstance(ledger, str | Path):
            from aiscope.cost.ledger import SQLiteLedger

            ledger = SQLiteLedger(ledger)
        if isinstance(pricing, Pricing):
            self.pricing = pricing
        elif pricing is None:
            self.pricing = default_pricing()
        else:
            self.pricing = Pricing(pricing)
        self.budget_usd = budget_usd
        self.alert_threshold = float(alert_threshold)
        self.window: Window = window
        self.mode: Mode = mode
        self.budgets = all_budgets
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self._nano = as_nano_ledger(self.ledger)
        self.default_max_output_tokens = default_max_output_tokens
        self.on_threshold = on_threshold
        self.on_exceed = on_exceed
        #: calls let through by fail-open budgets while the ledger was unreachable
        self.allowed_while_ledger_down = 0
        self._down_logged_until = 0.0
        self._periods = [Period(b) for b in all_budgets]
        #: every budget holds every call (no per-tag budget): keys need no tags
        self._simple = all(b.per is None for b in all_budgets)
        #: the one budget, when there is exactly one and it holds every call
        self._one = self._periods[0] if self._simple and len(self._periods) == 1 else None
        #: per-tag budgets read the call's tags (the call's model and provider need none)
        self._needs_tags = any(b.per is not None and b.per not in CALL_FIELDS for b in all_budgets)
        self._notified: dict[tuple[str, str], float] = {}
        self._listeners: list[Callable[[list[BudgetStatus]], None]] = []
        self._labels = LabelLimiter(max_label_values)
        if (
            isinstance(max_accumulators, bool)
            or not isinstance(max_accumulators, int)
            or max_accumulators < 1
        ):
            raise ValueError(f"max_accumulators must be an int >= 1, got {max_accumulators!r}")
        self.max_accumulators = max_accumulators
        self._lock = fork_safe_lock()
        self._reset_totals()

    def _reset_totals(self) -> None:
        self._total = 0  # nano-dollars
        self._refused = 0
        #: (model, provider, feature, team, user, operations), label values bounded ->
        #: [calls, errors, cost, input, output, cache_read, cache_write, reasoning,
        #: unpriced] (ModelUsage's field order), floats (see aiscope.counters) but the
        #: cost, integer nano-dollars; reports sum these up
        self._acc: dict[tuple[Any, ...], list[Any]] = {}
        #: the same lists by the record's raw values, for keys admitted as they are
        self._raw: dict[tuple[Any, ...], list[Any]] = {}

    # -- before the call ------------------------------------------------------------------
    def reserve(
        self,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Reservation | None:
        """Hold the estimated cost of a call against every budget that holds it, or
        refuse it.

        ``tags`` are the call's own (the tags in force, ``aiscope.tags(...)``, are
        added); per-tag budgets pick their value from them. Returns None when there
        is nothing to enforce (no budget, ``warn`` mode, or a model with no price).
        Raises :class:`BudgetExceededError` when a budget cannot take the estimate;
        nothing is held then, in any budget.
        """
        if self.mode != "block" or not self._periods:
            return None
        out_tokens = (
            self.default_max_output_tokens if max_output_tokens is None else max_output_tokens
        )
        estimate = self.pricing.estimate(provider, model, max(0, input_tokens), max(0, out_tokens))
        if estimate is None:
            return None
        now = time.time()
        nanos = to_nanos(estimate)
        one = self._one
        if one is not None:  # the common case: one budget holds every call
            key = one.current(now)
            try:
                rid = self._nano.reserve_one(key, nanos, one.limit_nanos)
            except LedgerUnavailableError as exc:
                return self._ledger_down([(one, key)], estimate, model, exc)
            if rid is None:
                self._refuse(one, key, estimate, model)
            return Reservation([(one, key, rid)], estimate)
        if self._simple:
            keys = [(p, p.current(now)) for p in self._periods]
        else:
            if self._needs_tags:
                ctx = current_tags()
                tags = {**ctx, **tags} if tags else ctx
            keys = self._keys(now, model, provider, tags or {})
            if not keys:
                return None
        try:
            out = self._nano.reserve_nanos([(key, nanos, p.limit_nanos) for p, key in keys])
        except LedgerUnavailableError as exc:
            return self._ledger_down(keys, estimate, model, exc)
        if isinstance(out, int):
            self._refuse(*keys[out], estimate, model)
        return Reservation(
            [(p, key, rid) for (p, key), rid in zip(keys, out, strict=True)], estimate
        )

    def _ledger_down(
        self,
        keys: list[tuple[Period, str]],
        estimate: float,
        model: str,
        exc: LedgerUnavailableError,
    ) -> Reservation:
        """The ledger could not be reached: refuse (a budget fails closed) or allow."""
        closed = next((p.budget for p, _ in keys if not self._fails_open(p.budget)), None)
        if closed is not None:
            with self._lock:
                self._refused += 1
            raise BudgetUnavailableError(
                closed.name, closed.window, closed.limit_usd, estimate, model, str(exc)
            ) from exc
        # allowed without a reservation; the spend is settled (or buffered by the
        # ledger until its store is back) when the call ends
        self._allowed_while_down(keys[0][0].budget, exc)
        return Reservation([(p, key, None) for p, key in keys], estimate)

    def _refuse(self, p: Period, key: str, estimate: float, model: str) -> NoReturn:
        with self._lock:
            self._refused += 1
        b = p.budget
        spent, reserved = self._state(key)
        raise BudgetExceededError(
            self._label(p, key), b.window, b.limit_usd, spent, reserved, estimate, model
        )

    def _keys(
        self, now: float, model: str, provider: str, tags: Mapping[str, str]
    ) -> list[tuple[Period, str]]:
        """The budgets holding a call, each with its ledger key at time ``now``."""
        out = []
        for p in self._periods:
            b = p.budget
            per = b.per
            if per is None:
                out.append((p, p.current(now)))
                continue
            value = model if per == "model" else provider if per == "provider" else tags.get(per)
            if value is None:
                continue  # a call without the tag is not this budget's
            if b.value is None:
                out.append((p, p.key_for(p.track(value), now)))
            elif value == b.value:
                out.append((p, p.current(now)))
        return out

    @staticmethod
    def _value(p: Period, key: str) -> str | None:
        """The tag value a key of a per-tag budget is for (``name@per=value:window:label``)."""
        b = p.budget
        if b.per is None:
            return None
        if b.value is not None:
            return b.value
        head = key.rpartition(":")[0].rpartition(":")[0]
        return head[len(b.name) + len(b.per) + 2 :]

    def _label(self, p: Period, key: str) -> str:
        """A budget's name as errors show it: with the value for a per-tag budget
        (``"per-team[team=search]"``)."""
        b = p.budget
        return b.name if b.per is None else f"{b.name}[{b.per}={self._value(p, key)}]"

    def _state(self, key: str) -> tuple[float, float]:
        """Spent and reserved under ``key`` (one read); NaN while the ledger's store
        is unreachable."""
        try:
            spent, reserved = self._nano.state_nanos(key)
        except LedgerUnavailableError:
            return float("nan"), float("nan")
        return from_nanos(spent), from_nanos(reserved)

    def _fails_open(self, budget: Budget) -> bool:
        choice = budget.on_ledger_down
        if choice is None:
            choice = getattr(self.ledger, "on_down", "closed")
        return choice == "open"

    def _allowed_while_down(self, budget: Budget, exc: Exception) -> None:
        with self._lock:
            self.allowed_while_ledger_down += 1
            n = self.allowed_while_ledger_down
            quiet = time.monotonic() < self._down_logged_until
            if not quiet:
                self._down_logged_until = time.monotonic() + 10.0
        if not quiet:  # one line per 10 s, not one per call
            log.warning(
                "budget %r: ledger unreachable (%s); failing open, call allowed "
                "(%d allowed so far)",
                budget.name,
                exc,
                n,
            )

    def release(self, reservation: Reservation | None) -> None:
        """Give back a reservation whose call never produced a record."""
        if reservation is None or reservation.settled:
            return
        reservation.settled = True
        ids = reservation.ids
        if len(ids) == 1:
            _, key, rid = ids[0]
            if rid is not None:
                self._nano.settle_one(key, rid, 0)
            return
        items = [(key, rid, 0) for _, key, rid in ids if rid is not None]
        if items:
            self._nano.settle_nanos(items)

    # -- after the call -------------------------------------------------------------------
    def on_record(self, record: CallRecord, reservation: Reservation | None = None) -> None:
        """Charge a priced record: settle its reservation and add it to the totals."""
        tags = record.tags
        raw = (
            # the model asked for, as the metrics' label and latency_percentiles() key:
            # joins by model hold when OpenAI answers with a dated snapshot name
            record.model,
            record.provider,
            tags.get("feature"),
            tags.get("team"),
            tags.get("user"),
            record.operations,
        )
        acc = self._raw.get(raw)
        if acc is None:
            acc = self._accumulator(raw)
        cost = record.cost_usd
        nanos = 0 if cost is None else round(cost * 1e9)  # to_nanos(), inlined: per record
        u = record.usage
        with self._lock:
            acc[0] += 1.0
            if record.status != "ok":
                acc[1] += 1.0
            if cost is None:
                if record.cost_status != "no_usage":  # a failed call without usage is not unpriced
                    acc[8] += 1.0
            else:
                acc[2] += nanos
                self._total += nanos
            acc[3] += u.input_tokens
            acc[4] += u.output_tokens
            if u.cache_read_tokens:
                acc[5] += u.cache_read_tokens
            if u.cache_write_tokens:
                acc[6] += u.cache_write_tokens
            if u.reasoning_tokens:
                acc[7] += u.reasoning_tokens
        if self._periods and (nanos or reservation is not None):
            one = self._one
            if (
                reservation is None
                and one is not None
                and not (self._listeners or self.on_threshold or self.on_exceed)
            ):  # the common case, without _charge's call: one budget, nobody to tell
                self._nano.settle_one(one.current(record.start_time), None, nanos)
                return
            self._charge(nanos, reservation, record)

    def _accumulator(self, raw: tuple[Any, ...]) -> list[Any]:
        """The totals a record with these raw labels adds to (label values bounded;
        past ``max_accumulators`` combinations, every label becomes ``other``)."""
        get = self._labels.get
        model, provider, feature, team, user, ops = raw
        key = (
            get("model", model),
            get("provider", provider),
            None if feature is None else get("feature", feature),
            None if team is None else get("team", team),
            None if user is None else get("user", user),
            tuple(dict.fromkeys(get("operation", op) for op in ops)),
        )
        exact = key[:5] == raw[:5] and key[5] == ops
        with self._lock:
            acc = self._acc.get(key)
            if acc is None:
                if len(self._acc) >= self.max_accumulators:
                    exact = False
                    key = ("other", "other", None, None, None, ())
                    acc = self._acc.get(key)
                if acc is None:
                    acc = self._acc[key] = zeros(9)
                    acc[2] = 0  # the cost: integer nano-dollars
            if exact and len(self._raw) < 4 * self.max_accumulators:
                self._raw[raw] = acc
        return acc

    def _charge(self, amount: int, reservation: Reservation | None, record: CallRecord) -> None:
        """Settle ``amount`` (nano-dollars) in every budget holding the call: on the
        keys the reservation holds, else on those of the record at its start time;
        then tell listeners and callbacks, if any."""
        held: Sequence[tuple[Period, str, str | None]]
        if reservation is not None and not reservation.settled:
            reservation.settled = True
            held = reservation.ids
        else:
            at = record.start_time
            one = self._one
            if one is not None and not (self._listeners or self.on_threshold or self.on_exceed):
                self._nano.settle_one(one.current(at), None, amount)  # the common case
                return
            if self._simple:
                held = [(p, p.current(at), None) for p in self._periods]
            else:
                held = [
                    (p, k, None)
                    for p, k in self._keys(at, record.model, record.provider, record.tags)
                ]
        if len(held) == 1:
            _, key, rid = held[0]
            spent = [self._nano.settle_one(key, rid, amount)]
        elif held:
            items: list[SettleItem] = [(key, rid, amount) for _p, key, rid in held]
            spent = self._nano.settle_nanos(items)
        else:
            return
        if not (self._listeners or self.on_threshold or self.on_exceed):
            return  # the common case: nothing to build, nobody to tell
        statuses = [
            # The period charged is the key's ("name:window:label"), not p.label: a call
            # admitted before a window boundary settles on the old period after it.
            self._status(p, key, from_nanos(s), 0.0)
            for (p, key, _), s in zip(held, spent, strict=True)
        ]
        self._after_charge(statuses)

    def _status(self, p: Period, key: str, spent: float, reserved: float) -> BudgetStatus:
        b = p.budget
        return BudgetStatus(
            b.name,
            b.window,
            key.rpartition(":")[2],
            b.limit_usd,
            spent,
            reserved,
            b.per,
            self._value(p, key),
        )

    def _after_charge(self, statuses: list[BudgetStatus]) -> None:
        if self._listeners:
            # listeners (the budget gauges) get one status per budget: not the values of
            # a per-tag budget, which would share its labels
            shown = [s for s in statuses if s.per is None or s.value is None or self._fixed(s)]
            for listener in self._listeners:
                try:
                    listener(shown)
                except Exception:  # a listener must never break the call
                    log.exception("budget listener failed")
        for st in statuses:
            for kind, limit, cb in (
                ("threshold", st.limit_usd * self.alert_threshold, self.on_threshold),
                ("exceed", st.limit_usd, self.on_exceed),
            ):
                if cb is None or st.spent_usd < limit:
                    continue
                key = (f"{kind}:{st.name}:{st.value}", st.period)
                with self._lock:
                    if key in self._notified:
                        continue
                    if len(self._notified) > 1000:
                        self._notified.clear()
                    self._notified[key] = time.time()
                try:
                    cb(self, st)
                except Exception:
                    log.exception("budget %s callback failed", kind)

    def add_listener(self, listener: Callable[[list[BudgetStatus]], None]) -> None:
        """Call ``listener(statuses)`` after every charge (MetricsCollector uses this);
        per-tag budgets with a value per tag are left out (read them with
        :meth:`budget_status`)."""
        self._listeners.append(listener)

    def record(
        self,
        provider: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float | None = None,
        **tags: str,
    ) -> CallRecord:
        """Record a call made elsewhere (rlm-toolkit's signature); priced if no cost given."""
        rec = CallRecord(
            model=model,
            provider=provider,
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out),
            tags=dict(tags),
            cost_usd=cost_usd,
        )
        from aiscope.context import current_operations

        rec.operations = current_operations()
        rec.validate()
        self.pricing.price_record(rec)
        self.on_record(rec)
        return rec

    # -- questions ------------------------------------------------------------------------
    def _fixed(self, st: BudgetStatus) -> bool:
        return any(p.budget.name == st.name and not p.budget.per_value for p in self._periods)

    def budget_statuses(self) -> list[BudgetStatus]:
        """Every budget's state in its current period (read from the ledger). A
        per-tag budget with a limit per value is not listed: ask :meth:`budget_status`
        for the value you want."""
        out = []
        for p in self._periods:
            if p.budget.per_value:
                continue
            key = p.current()
            out.append(self._status(p, key, *self._state(key)))
        return out

    def budget_status(self, name: str, value: str | None = None) -> BudgetStatus:
        """One budget's state in its current period; for a per-tag budget, the state of
        ``value`` (``tracker.budget_status("per-team", "search")``)."""
        p = next((p for p in self._periods if p.budget.name == name), None)
        if p is None:
            names = ", ".join(repr(q.budget.name) for q in self._periods) or "none"
            raise KeyError(f"no budget named {name!r} (budgets: {names})")
        b = p.budget
        if b.per_value:
            if not isinstance(value, str):
                raise ValueError(
                    f"budget {name!r} has a limit per {b.per}: give the {b.per} as value=, "
                    f"got {value!r}"
                )
            if value not in p.values and len(p.values) >= b.max_values:
                value = OVERFLOW_VALUE  # charged there once max_values are tracked
            key = p.key_for(value)
        else:
            if value is not None and value != b.value:
                raise ValueError(
                    f"budget {name!r} is not kept per value"
                    + (f" (it holds {b.per}={b.value!r} only)" if b.per else "")
                    + f"; got value={value!r}"
                )
            key = p.current()
        return self._status(p, key, *self._state(key))

    @property
    def spent(self) -> float:
        """USD spent in the primary budget's current window (total cost if no budget)."""
        if not self._periods:
            return from_nanos(self._total)
        return self._state(self._periods[0].current())[0]

    @property
    def remaining(self) -> float | None:
        """USD left in the primary budget's current window (None without a budget)."""
        if not self._periods:
            return None
        return max(0.0, self._periods[0].budget.limit_usd - self.spent)

    @property
    def total_cost(self) -> float:
        """Everything this tracker has recorded, in USD."""
        return from_nanos(self._total)

    def is_near_limit(self) -> bool:
        """True once any budget's spend reaches ``alert_threshold`` of its limit."""
        return any(
            s.spent_usd >= s.limit_usd * self.alert_threshold for s in self.budget_statuses()
        )

    @property
    def is_over_budget(self) -> bool:
        """True once any budget's spend reaches its limit."""
        return any(s.spent_usd >= s.limit_usd for s in self.budget_statuses())

    def get_operation_cost(self, name: str) -> float:
        """USD spent by calls made inside ``track(name)`` (nested ones included)."""
        return from_nanos(sum(v[2] for k, v in self._snapshot() if name in k[5]))

    def track(self, operation: str) -> OperationContext:
        """Attribute the calls made inside a block (``with``/``async with``) or a
        decorated function to ``operation``. Blocks nest."""
        return OperationContext(operation)

    def _snapshot(self) -> list[tuple[tuple[Any, ...], list[Any]]]:
        with self._lock:
            return [(k, list(v)) for k, v in self._acc.items()]

    def get_report(self) -> CostReport:
        """A consistent snapshot of totals, breakdowns and budget state."""
        statuses = self.budget_statuses()
        with self._lock:
            snapshot = [(k, list(v)) for k, v in self._acc.items()]
            total, refused = self._total, self._refused
        models: dict[str, ModelUsage] = {}
        by_model: dict[str, int] = {}
        by_provider: dict[str, int] = {}
        by_feature: dict[str, int] = {}
        by_team: dict[str, int] = {}
        by_user: dict[str, int] = {}
        by_operation: dict[str, int] = {}
        sums: list[Any] = [0] * 9
        for (model, provider, feature, team, user, ops), floats in snapshot:
            v = [int(x) for x in floats]
            m = models.get(model)
            if m is None:
                m = models[model] = ModelUsage()
            m.calls += v[0]
            m.errors += v[1]
            _add(by_model, model, v[2])
            m.input_tokens += v[3]
            m.output_tokens += v[4]
            m.cache_read_tokens += v[5]
            m.cache_write_tokens += v[6]
            m.reasoning_tokens += v[7]
            m.unpriced_calls += v[8]
            for i, x in enumerate(v):
                sums[i] += x
            cost = v[2]
            _add(by_provider, provider, cost)
            if feature is not None:
                _add(by_feature, feature, cost)
            if team is not None:
                _add(by_team, team, cost)
            if user is not None:
                _add(by_user, user, cost)
            for op in ops:
                _add(by_operation, op, cost)
        for name, m in models.items():
            m.cost_usd = from_nanos(by_model[name])
        report = CostReport(
            total_cost=from_nanos(total),
            remaining=None,
            budget_usd=self.budget_usd,
            spent=from_nanos(total),
            window=self.window,
            period=statuses[0].period if statuses else "all",
            call_count=sums[0],
            error_count=sums[1],
            unpriced_calls=sums[8],
            input_tokens=sums[3],
            output_tokens=sums[4],
            cache_read_tokens=sums[5],
            cache_write_tokens=sums[6],
            reasoning_tokens=sums[7],
            refused_calls=refused,
            by_model=_usd(by_model),
            by_provider=_usd(by_provider),
            by_feature=_usd(by_feature),
            by_team=_usd(by_team),
            by_user=_usd(by_user),
            by_operation=_usd(by_operation),
            models=models,
            budgets=statuses,
        )
        if statuses:
            report.budget_usd = statuses[0].limit_usd
            report.spent = statuses[0].spent_usd
            report.remaining = statuses[0].remaining_usd
        return report

    def reset(self) -> None:
        """Forget this tracker's totals (the ledger's budget spend is kept)."""
        with self._lock:
            self._reset_totals()
