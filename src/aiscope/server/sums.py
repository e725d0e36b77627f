"""Sums that cannot overflow: whatever a project has stored (rows an older server
accepted included), a read answers instead of failing with "integer overflow"
(SQLite's ``SUM``) or "bigint out of range" (PostgreSQL's ``bigint + bigint``).

SQLite's ``TOTAL`` sums in floating point (exact up to 2**53, far above any real
token count); PostgreSQL's ``SUM(bigint)`` is already ``numeric``; doubles are summed,
and columns added, in ``numeric`` too. Money (nano-dollars) is summed exactly
whatever its size by :class:`nano_sum`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Dialect, Float, Numeric, cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


class big_sum(FunctionElement[Any]):
    """``SUM(x)`` that never overflows (see the module docstring)."""

    name = "big_sum"
    inherit_cache = True
    type = Numeric()


@compiles(big_sum)
def _sum(element: big_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"SUM({compiler.process(element.clauses, **kw)})"


@compiles(big_sum, "postgresql")
def _numeric_sum(element: big_sum, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL's SUM(double precision) raises on overflow: sum doubles in numeric
    arg = compiler.process(element.clauses, **kw)
    (column,) = element.clauses
    if isinstance(column.type, Float):
        return f"SUM(CAST({arg} AS NUMERIC))"
    return f"SUM({arg})"


@compiles(big_sum, "sqlite")
def _total(element: big_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"TOTAL({compiler.process(element.clauses, **kw)})"


class _SummedNanos(TypeDecorator[int]):
    """The result of :class:`nano_sum` as an exact ``int`` (0 for no rows)."""

    impl = BigInteger  # no result processing of its own on either driver
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> int:
        if isinstance(value, str):  # SQLite's "high:low" (see _nano_halves)
            high, low = value.split(":")
            return (int(high) << 32) + int(low)
        return int(value or 0)  # PostgreSQL's numeric, exact


class nano_sum(FunctionElement[int]):
    """The exact ``SUM`` of a BIGINT column of nano-dollars, read as an ``int``: never
    rounded, and never an overflow error however large the stored values."""

    name = "nano_sum"
    inherit_cache = True
    type = _SummedNanos()


@compiles(nano_sum)
def _nano_sum(element: nano_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"SUM({compiler.process(element.clauses, **kw)})"  # numeric on PostgreSQL


@compiles(nano_sum, "sqlite")
def _nano_halves(element: nano_sum, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's SUM raises past 2**63 and TOTAL rounds past 2**53: sum the high and
    # low 32 bits apart (neither can overflow below 2**31 rows) and join them in Python
    arg = compiler.process(element.clauses, **kw)
    return f"(SUM({arg} >> 32) || ':' || SUM({arg} & 4294967295))"


def added(*columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """The columns' sum per row, computed in ``numeric`` so two BIGINTs never overflow."""
    out: ColumnElement[Any] = cast(columns[0], Numeric)
    for c in columns[1:]:
        out = out + cast(c, Numeric)
    return out


def as_int(value: object) -> int:
    """A summed count as an exact ``int`` (0 for no rows)."""
    return int(value or 0)  # type: ignore[call-overload,no-any-return]
