"""Nano-dollar arithmetic and the machinery shared by every built-in ledger (internal).

:mod:`aiscope.cost.ledger` re-exports what users see of it (:func:`to_nanos`,
:func:`from_nanos`, :data:`NANOS_PER_USD`, the item types).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from aiscope.cost.ledger import Ledger, NanoLedger

#: What a budget does when its ledger's store cannot be reached: ``"closed"``
#: refuses the call (no request is sent), ``"open"`` lets it through, counts and logs it.
OnLedgerDown = Literal["closed", "open"]
ON_LEDGER_DOWN: tuple[str, ...] = ("closed", "open")

#: Ledgers, trackers and reports keep money as integer nano-dollars (1e-9 USD).
NANOS_PER_USD = 1_000_000_000
#: the largest amount kept (an int64 with headroom: $4.6 billion in nano-dollars)
MAX_NANOS = 2**62

#: ``(key, amount, limit)`` in nano-dollars: one budget's share of a reservation
ReserveItem = tuple[str, int, int]
#: ``(key, reservation id or None, actual)`` in nano-dollars
SettleItem = tuple[str, str | None, int]


def to_nanos(usd: float) -> int:
    """USD as integer nano-dollars (rounded to the nearest): the one conversion from
    the public API's dollars to what ledgers and reports keep. Exact for any amount
    that is a whole number of nano-dollars below $2 million (a float's error there is
    far under half a nano-dollar)."""
    return round(usd * 1e9)  # NANOS_PER_USD as a float: the same product, a little faster


def usd_amount(name: str, usd: float) -> int:
    """``usd`` in nano-dollars, or a ValueError naming the bad amount."""
    if type(usd) is float and -1e9 < usd < 1e9:  # the common case, checked at once
        return to_nanos(usd)
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise ValueError(f"ledger {name} must be a finite number of USD, got {usd!r}")
    return max(-MAX_NANOS, min(MAX_NANOS, to_nanos(usd)))


def from_nanos(nanos: int) -> float:
    """Integer nano-dollars back to USD."""
    return nanos / NANOS_PER_USD


def check_on_ledger_down(value: object) -> OnLedgerDown:
    """Validate an ``on_ledger_down`` choice."""
    if value not in ON_LEDGER_DOWN:
        raise ValueError(f"on_ledger_down must be 'closed' or 'open', got {value!r}")
    return value  # type: ignore[return-value]


class NanoLedgerBase:
    """The USD methods of :class:`Ledger`, for a ledger that implements :class:`NanoLedger`."""

    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        raise NotImplementedError

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        raise NotImplementedError

    def state_nanos(self, key: str) -> tuple[int, int]:
        raise NotImplementedError

    def reserve_one(self, key: str, amount: int, limit: int) -> str | None:
        out = self.reserve_nanos(((key, amount, limit),))
        return out[0] if isinstance(out, list) else None

    def settle_one(self, key: str, reservation_id: str | None, actual: int) -> int:
        return self.settle_nanos(((key, reservation_id, actual),))[0]

    def try_reserve(self, key: str, amount: float, limit: float) -> str | None:
        """Reserve ``amount`` under ``key`` if spent + reserved + amount <= ``limit``."""
        nanos = usd_amount("amount", amount)
        if nanos < 0:
            raise ValueError(f"ledger amount must be >= 0, got {amount!r}")
        return self.reserve_one(key, nanos, usd_amount("limit", limit))

    def settle(self, key: str, reservation_id: str | None, actual: float) -> float:
        """Drop the reservation (if any), add ``actual`` to spent; return the new spent."""
        return from_nanos(self.settle_one(key, reservation_id, usd_amount("actual", actual)))

    def state(self, key: str) -> tuple[float, float]:
        """USD spent and reserved under ``key``, read together."""
        spent, reserved = self.state_nanos(key)
        return from_nanos(spent), from_nanos(reserved)

    def spent(self, key: str) -> float:
        """USD spent under ``key``."""
        return from_nanos(self.state_nanos(key)[0])

    def reserved(self, key: str) -> float:
        """USD held by calls in flight under ``key``."""
        return from_nanos(self.state_nanos(key)[1])


class UsdLedgerAdapter:
    """:class:`NanoLedger` over a ledger that has only the four USD methods.

    Several keys are reserved one after another; when one refuses, those already
    held are released at once, so no partial reservation remains (another caller
    may see one for that moment: the built-in ledgers have no such moment).
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def reserve_nanos(self, items: Sequence[ReserveItem]) -> list[str] | int:
        ids: list[str] = []
        for i, (key, amount, limit) in enumerate(items):
            rid = self.ledger.try_reserve(key, from_nanos(amount), from_nanos(limit))
            if rid is None:
                for (k, _, _), r in zip(items, ids, strict=False):
                    self.ledger.settle(k, r, 0.0)
                return i
            ids.append(rid)
        return ids

    def settle_nanos(self, items: Sequence[SettleItem]) -> list[int]:
        return [to_nanos(self.ledger.settle(k, r, from_nanos(a))) for k, r, a in items]

    def reserve_one(self, key: str, amount: int, limit: int) -> str | None:
        return self.ledger.try_reserve(key, from_nanos(amount), from_nanos(limit))

    def settle_one(self, key: str, reservation_id: str | None, actual: int) -> int:
        return to_nanos(self.ledger.settle(key, reservation_id, from_nanos(actual)))

    def state_nanos(self, key: str) -> tuple[int, int]:
        state = getattr(self.ledger, "state", None)
        if state is not None:
            spent, reserved = state(key)
        else:
            spent, reserved = self.ledger.spent(key), self.ledger.reserved(key)
        return to_nanos(spent), to_nanos(reserved)


def as_nano_ledger(ledger: Ledger) -> NanoLedger:
    """``ledger`` itself when it speaks nano-dollars, else an adapter over its USD methods."""
    if callable(getattr(ledger, "reserve_nanos", None)):
        return ledger  # type: ignore[return-value]
    return UsdLedgerAdapter(ledger)
