"""Sums that cannot overflow: whatever a project has stored (rows an older server
accepted included), a read answers instead of failing with "integer overflow"
(SQLite's ``SUM``) or "bigint out of range" (PostgreSQL's ``bigint + bigint``).

SQLite's ``TOTAL`` sums in floating point (exact up to 2**53, far above any real
token count); PostgreSQL's ``SUM(bigint)`` is already ``numeric``; doubles are summed,
and columns added, in ``numeric`` too.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Float, Numeric, cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


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


def added(*columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """The columns' sum per row, computed in ``numeric`` so two BIGINTs never overflow."""
    out: ColumnElement[Any] = cast(columns[0], Numeric)
    for c in columns[1:]:
        out = out + cast(c, Numeric)
    return out


def as_int(value: object) -> int:
    """A summed count as an exact ``int`` (0 for no rows)."""
    return int(value or 0)  # type: ignore[call-overload,no-any-return]


def as_cost(value: object) -> float | None:
    """A summed cost, or ``None`` when the sum is not a finite number any more (JSON
    has no Infinity; a made-up cap would be a wrong number)."""
    f = float(value or 0.0)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None
