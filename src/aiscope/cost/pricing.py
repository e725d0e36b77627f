"""Prices for LLM calls: genai-prices' offline data, user overrides, and a fast path.

``genai_prices.calc_price`` takes about 90 µs a call, far more than an LLM
call's bookkeeping should cost. For each price sheet (a genai-prices
``ModelPrice``) we therefore compile, once, the exact linear function genai-prices
computes — integer coefficients over a common decimal scale — and check it
against ``calc_price`` on probe usages. A call is then priced with a handful of
integer multiplications, exactly (the float is the correctly rounded value of the
exact decimal total). Price sheets the compiler cannot reproduce exactly fall back
to ``calc_price`` itself.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiscope._fork import fork_safe_lock, lazy_import
from aiscope.record import CallRecord, CostStatus, Usage

if TYPE_CHECKING:
    import genai_prices


def _gp(module: str) -> Any:
    """A genai-prices module, imported on first use (its tables and pydantic models
    cost ~150 ms): importing aiscope, or pricing a call from a compiled sheet, does
    not pay for it until a model is first looked up. Fork-safe (see lazy_import)."""
    return lazy_import(module)


log = logging.getLogger("aiscope.cost")

# Our usage fields, by the genai-prices usage key they are reported as.
_USAGE_KEYS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("output_reasoning_tokens", "reasoning_tokens"),
)

#: Override keys a user may give per model (USD per million tokens).
OVERRIDE_KEYS = {
    "input_mtok": "input_mtok",
    "output_mtok": "output_mtok",
    "cache_read_mtok": "cache_read_mtok",
    "cache_write_mtok": "cache_write_mtok",
    "reasoning_mtok": "output_reasoning_mtok",
    "requests_kcount": "requests_kcount",
}


class UnknownModelWarning(UserWarning):
    """A call used a model with no known price; its cost is recorded as ``None``."""


@dataclass(frozen=True, slots=True)
class Price:
    """A price as a user reads it: USD per million tokens, by type."""

    model: str
    provider: str
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    reasoning_mtok: Decimal | None
    per_request: Decimal | None
    source: str
    tiered: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "model": self.model,
            "provider": self.provider,
            "input_mtok": _num(self.input_mtok),
            "output_mtok": _num(self.output_mtok),
            "cache_read_mtok": _num(self.cache_read_mtok),
            "cache_write_mtok": _num(self.cache_write_mtok),
            "reasoning_mtok": _num(self.reasoning_mtok),
            "per_request": _num(self.per_request),
            "source": self.source,
            "tiered": self.tiered,
        }


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class _Linear:
    """``total = sum(coef_k * count_k) + const`` scaled by ``10**exp``, exactly.

    ``tiers`` holds alternative coefficient sets selected by total input tokens
    (genai-prices' threshold pricing): ``[(start, coefs, const), ...]`` ascending.
    """

    __slots__ = ("coefs", "const", "divisor", "exp", "tiers")

    def __init__(
        self,
        coefs: tuple[int, int, int, int, int],
        const: int,
        exp: int,
        tiers: tuple[tuple[int, tuple[int, int, int, int, int], int], ...] = (),
    ) -> None:
        self.coefs = coefs
        self.const = const
        self.exp = exp
        self.divisor = 10**-exp if exp < 0 else 1
        self.tiers = tiers

    def _tier(self, input_tokens: int) -> tuple[tuple[int, int, int, int, int], int]:
        if self.tiers:
            for start, t_coefs, t_const in reversed(self.tiers):
                if input_tokens > start:
                    return t_coefs, t_const
        return self.coefs, self.const

    def scaled(self, u: Usage) -> int:
        """The cost in units of ``10**exp`` USD: an exact integer."""
        coefs, const = self.coefs, self.const
        tiers = self.tiers
        if tiers and u.input_tokens > tiers[0][0]:  # the base tier needs no search
            coefs, const = self._tier(u.input_tokens)
        c0, c1, c2, c3, c4 = coefs
        return (
            c0 * u.input_tokens
            + c1 * u.output_tokens
            + c2 * u.cache_read_tokens
            + c3 * u.cache_write_tokens
            + c4 * u.reasoning_tokens
            + const
        )

    def usd(self, scaled: int) -> float:
        """``scaled`` (from :meth:`scaled`) in USD, correctly rounded: int / int is."""
        return scaled / self.divisor if self.exp < 0 else float(scaled * 10**self.exp)

    def cost(self, u: Usage) -> float:
        """The cost of ``u`` in USD."""
        return self.usd(self.scaled(u))

    def cost_decimal(self, u: Usage) -> Decimal:
        return Decimal(self.scaled(u)).scaleb(self.exp)

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """The dearer of pricing all input as plain and as cache writes (see
        :meth:`Pricing.estimate`), in one exact sum: both share every other term."""
        if self.tiers:
            (c0, c1, _c2, c3, _c4), const = self._tier(input_tokens)
        else:
            (c0, c1, _c2, c3, _c4), const = self.coefs, self.const
        s = c0 * input_tokens + c1 * output_tokens + const + max(0, c3 * input_tokens)
        return s / self.divisor if self.exp < 0 else float(s * 10**self.exp)


def _leaf_vectors(units: list[Any]) -> dict[str, dict[str, int]]:
    """genai-prices' leaf decomposition done symbolically: each priced unit's
    billed count as a linear combination of reported usage keys."""
    ordered = sorted(units, key=lambda u: (-len(u.dimensions), u.usage_key))
    leaves: dict[str, dict[str, int]] = {}
    for unit in ordered:
        vec: dict[str, int] = {unit.usage_key: 1}
        for other in ordered:
            if (
                other is not unit
                and other.usage_key in leaves
                and unit.dimensions.items() <= other.dimensions.items()
            ):
                for k, v in leaves[other.usage_key].items():
                    vec[k] = vec.get(k, 0) - v
        leaves[unit.usage_key] = vec
    return leaves


@functools.cache
def _unit_registry() -> Any:
    """genai-prices' registry of the units prices are quoted in, built from its
    bundled unit table through public names (``UnitRegistry``, ``data_units.unit_data``)
    rather than its private ``units._get_registry()`` cache: the same table, built once."""
    return _gp("genai_prices.units").UnitRegistry(_gp("genai_prices.data_units").unit_data)


def _compile(model_price: Any) -> _Linear | None:
    """Compile a genai-prices ModelPrice; None when it cannot be done exactly."""
    gp_types = _gp("genai_prices.types")
    registry = _unit_registry()
    priced: list[tuple[Any, Any]] = []
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        try:
            unit = registry.unit_for_price_key(key)
        except KeyError:
            return None
        priced.append((unit, value))
    if not priced:
        return None
    units = [u for u, _ in priced if u.usage_key != "requests"]
    leaves = _leaf_vectors(units)
    reported = {k for k, _ in _USAGE_KEYS}

    tier_starts: set[int] = set()
    for _, value in priced:
        if isinstance(value, gp_types.TieredPrices):
            tier_starts.update(t.start for t in value.tiers)

    def coefficient_set(total_input: int) -> tuple[list[Decimal], Decimal] | None:
        gp_types = _gp("genai_prices.types")

        coefs = [Decimal(0)] * len(_USAGE_KEYS)
        const = Decimal(0)
        for unit, value in priced:
            price = value
            if isinstance(value, gp_types.TieredPrices):
                price = value.base
                for tier in reversed(value.tiers):
                    if total_input > tier.start:
                        price = tier.price
                        break
            per_unit = Decimal(price) / Decimal(unit.per)
            if unit.usage_key == "requests":
                const += per_unit
                continue
            for key, weight in leaves[unit.usage_key].items():
                if key not in reported:
                    continue  # never reported by us: always zero
                idx = next(i for i, (k, _) in enumerate(_USAGE_KEYS) if k == key)
                coefs[idx] += per_unit * weight
        return coefs, const

    sets: list[tuple[int, list[Decimal], Decimal]] = []
    for start in [-1, *sorted(tier_starts)]:
        cs = coefficient_set(start + 1)
        if cs is None:
            return None
        sets.append((start, cs[0], cs[1]))
    all_values = [v for _, coefs, const in sets for v in (*coefs, const)]
    try:
        exp = min(int(v.normalize().as_tuple().exponent) for v in all_values if v != 0)
    except ValueError:
        exp = 0
    except (InvalidOperation, TypeError):
        return None
    exp = min(exp, 0)

    def scale(v: Decimal) -> int:
        scaled = v.scaleb(-exp)
        if scaled != scaled.to_integral_value():
            raise ArithmeticError("inexact")
        return int(scaled)

    try:
        compiled = [
            (start, tuple(scale(c) for c in coefs), scale(const)) for start, coefs, const in sets
        ]
    except (ArithmeticError, InvalidOperation):
        return None
    _, base_coefs, base_const = compiled[0]
    tiers = tuple((s, c, k) for s, c, k in compiled[1:])
    return _Linear(base_coefs, base_const, exp, tiers)  # type: ignore[arg-type]


def _gp_usage(u: Usage) -> genai_prices.Usage:
    values = {gk: getattr(u, ok) for gk, ok in _USAGE_KEYS if getattr(u, ok)}
    values.setdefault("input_tokens", 0)
    values.setdefault("output_tokens", 0)
    usage: genai_prices.Usage = _gp("genai_prices").Usage(**values)
    return usage


_PROBES = (
    Usage(input_tokens=1_234_567, output_tokens=345_678),
    Usage(
        input_tokens=987_654,
        output_tokens=123_457,
        cache_read_tokens=400_001,
        cache_write_tokens=100_003,
        reasoning_tokens=50_021,
    ),
    Usage(input_tokens=7, output_tokens=3, cache_read_tokens=2, reasoning_tokens=1),
    Usage(input_tokens=250_001, output_tokens=11, cache_read_tokens=100_000),
)


class _Entry:
    """What we know of one (provider, model): its genai-prices model or override."""

    __slots__ = ("constant", "model_info", "override", "provider_info", "source")

    def __init__(
        self,
        model_info: Any,
        provider_info: Any,
        override: _Linear | None,
        source: str,
    ) -> None:
        self.model_info = model_info
        self.provider_info = provider_info
        self.override = override
        self.source = source
        # A model whose price never changes with time needs no timestamp lookup.
        self.constant: _Linear | bool | None = override if override is not None else False


def _model_price_from_override(where: str, model: str, spec: Any) -> Any:
    gp_types = _gp("genai_prices.types")

    if not isinstance(spec, Mapping):
        raise ValueError(
            f"{where}: price override for {model!r} must be a mapping of "
            f"{sorted(OVERRIDE_KEYS)} to USD amounts, got {type(spec).__name__}"
        )
    kwargs: dict[str, Decimal] = {}
    for key, value in spec.items():
        if key not in OVERRIDE_KEYS:
            hint = difflib.get_close_matches(str(key), OVERRIDE_KEYS, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"{where}: unknown price key {key!r} for model {model!r}{did_you_mean}; "
                f"allowed: {', '.join(sorted(OVERRIDE_KEYS))}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise TypeError(f"{where}: {model}.{key} must be a number, got {value!r}")
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{where}: {model}.{key} must be a number, got {value!r}") from None
        if not dec.is_finite() or dec < 0:
            raise ValueError(f"{where}: {model}.{key} must be a finite number >= 0, got {value!r}")
        kwargs[OVERRIDE_KEYS[key]] = dec
    if "input_mtok" not in kwargs or "output_mtok" not in kwargs:
        raise ValueError(f"{where}: price override for {model!r} needs input_mtok and output_mtok")
    return gp_types.ModelPrice(**kwargs)


def _load_overrides(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Read price overrides from a dict or a YAML/JSON file.

    The shape is ``{"model-or-provider/model": {"input_mtok": 1.0, "output_mtok": 2.0,
    "cache_read_mtok": 0.1, "cache_write_mtok": 1.25, "reasoning_mtok": 2.0,
    "requests_kcount": 0.0}}`` (USD per million tokens; per thousand requests),
    optionally nested under a top-level ``models`` key. Returns compiled sheets by
    lower-cased key. Any mistake raises ``ValueError`` naming the file, model and key.
    """
    where = "price overrides"
    data: Any = source
    if isinstance(source, str | Path):
        path = Path(source)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{where}: cannot read price overrides: {exc}") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except (ValueError, Exception) as exc:  # yaml.YAMLError is not a ValueError
            raise ValueError(
                f"{where}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
            ) from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of model names to prices")
    if "models" in data and isinstance(data["models"], Mapping):
        data = data["models"]
    sheets: dict[str, Any] = {}
    for model, spec in data.items():
        if not isinstance(model, str) or not model:
            raise ValueError(f"{where}: model names must be non-empty strings, got {model!r}")
        sheet = _model_price_from_override(where, model, spec)
        compiled = _compile(sheet)
        if compiled is None:  # pragma: no cover - overrides are always linear
            raise ValueError(f"{where}: cannot compile prices for {model!r}")
        sheets[model.lower()] = compiled
    return sheets


class Pricing:
    """Prices calls: overrides first, then genai-prices' bundled data (offline).

    A model with no known price is never given a default: its cost is ``None``,
    its status ``unknown_model``, one :class:`UnknownModelWarning` is issued per
    model, and :attr:`unknown_counts` counts the calls.
    """

    def __init__(self, overrides: Mapping[str, Any] | str | Path | None = None) -> None:
        self._overrides = _load_overrides(overrides) if overrides is not None else {}
        self._entries: dict[tuple[str, str], _Entry | None] = {}
        self._compiled: dict[int, tuple[Any, _Linear | None]] = {}
        self._lock = fork_safe_lock()
        self.unknown_counts: dict[tuple[str, str], int] = {}

    # -- lookup -----------------------------------------------------------------------
    def _resolve(self, provider: str, model: str) -> _Entry | None:
        key = (provider, model)
        try:
            return self._entries[key]
        except KeyError:
            pass
        entry = self._lookup(provider, model)
        with self._lock:
            if len(self._entries) < 10_000:  # bounded: model names can come from anywhere
                self._entries[key] = entry
        return entry

    def _lookup(self, provider: str, model: str) -> _Entry | None:
        gp_types = _gp("genai_prices.types")
        get_snapshot = _gp("genai_prices.data_snapshot").get_snapshot

        m = model.lower()
        for name in (f"{provider.lower()}/{m}", m):
            if name in self._overrides:
                return _Entry(None, None, self._overrides[name], "override")
        snapshot = get_snapshot()
        ref = m.split("/", 1)[1] if m.startswith(provider.lower() + "/") else m
        # a named provider is the only one asked: another's rate is no price for its call
        for provider_id in (provider or None,):
            try:
                prov, info = snapshot.find_provider_model(ref, None, provider_id, None)
            except LookupError:
                continue
            entry = _Entry(info, prov, None, "genai-prices")
            if isinstance(info.prices, gp_types.ModelPrice):
                entry.constant = self._sheet(info, prov, info.prices)
            return entry
        return None

    def _sheet(self, info: Any, provider: Any, model_price: Any) -> _Linear | None:
        key = id(model_price)
        hit = self._compiled.get(key)
        if hit is not None and hit[0] is model_price:
            return hit[1]
        compiled = _compile(model_price)
        if compiled is not None and not self._agrees(compiled, info, provider, model_price):
            log.debug("price sheet for %s not compiled exactly; using genai-prices", info.id)
            compiled = None
        with self._lock:
            self._compiled[key] = (model_price, compiled)
        return compiled

    @staticmethod
    def _agrees(compiled: _Linear, info: Any, provider: Any, model_price: Any) -> bool:
        for probe in _PROBES:
            try:
                want = model_price.calc_price(_gp_usage(probe))["total_price"]
            except ValueError:
                continue
            if compiled.cost_decimal(probe) != want:
                return False
        return True

    # -- pricing ----------------------------------------------------------------------
    def cost(
        self,
        provider: str,
        model: str,
        usage: Usage,
        at: float | None = None,
    ) -> tuple[float | None, CostStatus]:
        """Price ``usage`` of ``provider/model`` at Unix time ``at`` (now if None)."""
        entry = self._resolve(provider, model)
        if entry is None:
            self._unknown(provider, model)
            return None, "unknown_model"
        linear = entry.constant
        if linear is False:
            when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
            model_price = entry.model_info.get_prices(when)
            linear = self._sheet(entry.model_info, entry.provider_info, model_price)
        if linear is None or linear is True:
            return self._slow(entry, usage, at)
        return linear.cost(usage), ("override" if entry.override is not None else "ok")

    def cost_decimal(
        self, provider: str, model: str, usage: Usage, at: float | None = None
    ) -> Decimal | None:
        """The exact cost as a ``Decimal`` (``None`` for an unknown model)."""
        entry = self._resolve(provider, model)
        if entry is None:
            return None
        if entry.override is not None:
            return entry.override.cost_decimal(usage)
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        calc = entry.model_info.calc_price(
            _gp_usage(usage), entry.provider_info, genai_request_timestamp=when
        )
        return Decimal(calc.total_price)

    def _slow(
        self, entry: _Entry, usage: Usage, at: float | None
    ) -> tuple[float | None, CostStatus]:
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        try:
            calc = entry.model_info.calc_price(
                _gp_usage(usage), entry.provider_info, genai_request_timestamp=when
            )
        except ValueError as exc:
            log.warning("cannot price usage for %s: %s", entry.model_info.id, exc)
            return None, "usage_invalid"
        return float(calc.total_price), "ok"

    def price_record(self, record: CallRecord) -> None:
        """Set ``record.cost_usd``/``cost_status`` unless already priced."""
        if record.cost_usd is not None:
            if record.cost_status == "not_priced":
                record.cost_status = "ok"
            return
        if record.status != "ok" and not record.has_usage:
            # a failed call with no usage: nothing was counted, so nothing is priced
            record.cost_status = "no_usage"
            return
        # the common case first: a known model whose price does not change with time
        entry = self._entries.get((record.provider, record.response_model or record.model))
        if entry is not None:
            linear = entry.constant
            if type(linear) is _Linear:
                scaled = linear.scaled(record.usage)  # linear.cost(), one call fewer
                record.cost_usd = (
                    scaled / linear.divisor if linear.exp < 0 else float(scaled * 10**linear.exp)
                )
                record.cost_status = "ok" if entry.override is None else "override"
                return
        record.cost_usd, record.cost_status = self.cost(
            record.provider, record.response_model or record.model, record.usage, record.start_time
        )
        if (
            record.cost_usd is None
            and record.response_model
            and record.response_model != record.model
        ):
            # A dated response model (gpt-4o-2024-08-06) may be unknown where the alias is not.
            cost, status = self.cost(record.provider, record.model, record.usage, record.start_time)
            if cost is not None:
                record.cost_usd, record.cost_status = cost, status

    def estimate(
        self, provider: str, model: str, input_tokens: int, max_output_tokens: int
    ) -> float | None:
        """An upper bound of what a call may cost, for budget reservations.

        All input is priced at the dearer of the plain and cache-write input
        rates, and all of ``max_output_tokens`` at the output rate.
        """
        entry = self._entries.get((provider, model))
        if entry is not None and isinstance(entry.constant, _Linear):
            return entry.constant.estimate(input_tokens, max_output_tokens)
        plain = Usage(input_tokens=input_tokens, output_tokens=max_output_tokens)
        as_write = Usage(
            input_tokens=input_tokens,
            output_tokens=max_output_tokens,
            cache_write_tokens=input_tokens,
        )
        a, _ = self.cost(provider, model, plain)
        if a is None:
            return None
        b, _ = self.cost(provider, model, as_write)
        return max(a, b or 0.0)

    def describe(self, model: str, provider: str | None = None) -> Price | None:
        """The current price of a model, or None when unknown (for the CLI)."""
        genai_prices = _gp("genai_prices")
        gp_types = _gp("genai_prices.types")

        prov = provider or ""
        if "/" in model and not provider:
            prov, model = model.split("/", 1)
        entry = self._resolve(prov, model)
        if entry is None:
            return None
        if entry.override is not None:
            lin = entry.override
            per_mtok = Decimal(10) ** (lin.exp + 6)

            def coef(i: int) -> Decimal:
                return Decimal(lin.coefs[i]) * per_mtok

            return Price(
                model=model,
                provider=prov,
                input_mtok=coef(0),
                output_mtok=coef(1),
                cache_read_mtok=coef(0) + coef(2),
                cache_write_mtok=coef(0) + coef(3),
                reasoning_mtok=coef(1) + coef(4),
                per_request=Decimal(lin.const).scaleb(lin.exp) if lin.const else None,
                source="override",
            )
        mp = entry.model_info.get_prices(datetime.now(UTC))

        def price(key: str) -> Decimal | None:
            v = getattr(mp, key, None)
            if isinstance(v, gp_types.TieredPrices):
                return Decimal(v.base)
            return None if v is None else Decimal(v)

        req = price("requests_kcount")
        return Price(
            model=entry.model_info.id,
            provider=entry.provider_info.id,
            input_mtok=price("input_mtok"),
            output_mtok=price("output_mtok"),
            cache_read_mtok=price("cache_read_mtok"),
            cache_write_mtok=price("cache_write_mtok"),
            reasoning_mtok=price("output_reasoning_mtok"),
            per_request=None if req is None else req / 1000,
            source=f"genai-prices {genai_prices.__version__}",
            tiered=any(isinstance(v, gp_types.TieredPrices) for v in mp.__dict__.values()),
        )

    def providers_of(self, model: str) -> list[str]:
        """The ids of the providers whose bundled prices include ``model`` (for errors)."""
        get_snapshot = _gp("genai_prices.data_snapshot").get_snapshot

        snapshot = get_snapshot()
        found = []
        for prov in snapshot.providers:
            try:
                snapshot.find_provider_model(model.lower(), None, prov.id, None)
            except LookupError:
                continue
            found.append(prov.id)
        return found

    def suggest(self, model: str, n: int = 3) -> list[str]:
        """Known model ids closest to a model name that has no price (``gpt4o`` -> ``gpt-4o``)."""
        get_snapshot = _gp("genai_prices.data_snapshot").get_snapshot

        global _model_ids
        if _model_ids is None:
            ids = {m.id for p in get_snapshot().providers for m in p.models}
            _model_ids = sorted(ids | {k.split("/", 1)[-1] for k in self._overrides})
        return difflib.get_close_matches(model.lower(), _model_ids, n=n, cutoff=0.75)

    def _unknown(self, provider: str, model: str) -> None:
        key = (provider, model)
        with self._lock:
            n = self.unknown_counts.get(key, 0)
            if n == 0 and len(self.unknown_counts) >= 1000:
                key = ("other", "other")
                n = self.unknown_counts.get(key, 0)
            self.unknown_counts[key] = n + 1
        if n == 0:
            warnings.warn(
                f"aiscope: no price known for model {model!r} (provider {provider!r}); "
                "its cost is recorded as None. Add a price override to price it.",
                UnknownModelWarning,
                stacklevel=3,
            )


_default: Pricing | None = None
_model_ids: list[str] | None = None  # every bundled model id, for suggestions
_default_lock = fork_safe_lock()


def default_pricing() -> Pricing:
    """The process-wide Pricing (bundled data, no overrides), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Pricing()
    return _default
