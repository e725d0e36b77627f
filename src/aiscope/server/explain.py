"""Query plans of what a read really runs: capture the SQL, then ``EXPLAIN`` it.

Used by the plan tests and by ``bench/server_ingest.py --plans`` to check that no
dashboard query scans every call, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, text

#: tables whose full scan would grow with the number of calls
BIG_TABLES = ("calls", "spans", "rollups")


@dataclass(frozen=True, slots=True)
class Plan:
    """One statement and its plan, a line per node."""

    sql: str
    lines: list[str]

    def full_scans(self) -> list[str]:
        """Plan lines that read a whole big table (no index condition bounds the rows)."""
        out = []
        for line in self.lines:
            for table in BIG_TABLES:
                # SQLite: "SCAN calls" (SEARCH means an index bounds it); PostgreSQL
                if re.search(rf"\bSCAN {table}\b", line) or f"Seq Scan on {table} " in line:
                    out.append(line)
        return out

    def bounded_by(self, column: str) -> bool:
        """Whether an index condition bounds ``column`` (the index seeks on it)."""
        sqlite = re.compile(rf"\bSEARCH \w+ USING (COVERING )?INDEX \w+ \(.*\b{column}[=<>]")
        pg = re.compile(rf"Index Cond: .*\b{column}\)?(::\w+)? (=|<|>)")
        return any(sqlite.search(line) or pg.search(line) for line in self.lines)

    def sorts(self) -> list[str]:
        """Plan lines that sort rows (SQLite's temp B-tree for ORDER BY, a Sort node)."""
        return [
            line
            for line in self.lines
            if "TEMP B-TREE FOR ORDER BY" in line or re.search(r"\bSort\b", line)
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) run on ``engine`` inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explain(engine: Engine, statement: str, params: Any, *, prefer_index: bool = False) -> Plan:
    """The plan of one captured statement, as the database would run it now.

    With ``prefer_index`` PostgreSQL's planner avoids sequential scans and sorts
    whenever an index can do without them (on a small test table reading it all is
    the cheap plan): the plan then shows whether an index *can* serve the query.
    """
    pg = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN " if pg else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        if pg and prefer_index:
            for setting in ("enable_seqscan", "enable_sort"):
                conn.execute(text(f"SET LOCAL {setting} = off"))
        rows = conn.exec_driver_sql(prefix + statement, params).all()
        conn.rollback()
    lines = [str(r[0]) for r in rows] if pg else [str(r[-1]) for r in rows]
    return Plan(statement, lines)


def plans_of(
    engine: Engine, read: Callable[[], object], *, prefer_index: bool = False
) -> list[Plan]:
    """The plan of every ``SELECT`` that ``read()`` runs on ``engine``."""
    with captured(engine) as seen:
        read()
    return [explain(engine, sql, params, prefer_index=prefer_index) for sql, params in seen]
