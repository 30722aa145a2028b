"""Many rows through one Core statement, without SQLAlchemy's per-row parameter work.

``conn.execute(stmt, rows)`` turns every row into the driver's parameters through the
compiled statement's general machinery (a parameter dict per row, then a type
processor call per value). On the worker's batches that was over half the time of
the whole write, more than the driver's own ``executemany`` (profiled with cProfile;
``bench/stages.py`` times the write). :class:`BulkWriter` compiles the same Core
statement once per dialect and set of columns, keeps its parameter order and the bind
processors of its parameters' types (UTC conversion, exact decimals, SQLite's
timestamp text), and hands the driver's ``executemany`` the converted rows. The SQL
is SQLAlchemy's, compiled from the construct; no statement text is written here.

Neither driver used here batches an ``executemany`` without RETURNING any other way
(SQLAlchemy 2.1 calls ``cursor.executemany`` for both SQLite and psycopg), so what
reaches the database is the same statements with the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import NullType


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled statement: its SQL; for each driver parameter in order, its name and
    the row key its value is read from; the values of columns the rows leave to their
    scalar defaults (``fill``); the positions whose values go through a processor."""

    sql: str
    names: tuple[str, ...]
    keys: tuple[str, ...]
    fill: dict[str, Any]
    typed: tuple[tuple[int, Callable[[Any], Any]], ...]
    positional: bool

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        if self.fill:
            rows = [{**self.fill, **row} for row in rows]
        # the values in one C call a row; only the typed ones go through a processor
        get = itemgetter(*self.keys)
        one = len(self.keys) == 1  # itemgetter of one key gives the value, not a tuple
        values = [(get(row),) for row in rows] if one else [get(row) for row in rows]
        if self.typed:
            converted = []
            for v in values:
                v = list(v)
                for i, p in self.typed:
                    v[i] = p(v[i])
                converted.append(tuple(v))
            values = converted
        if self.positional:
            return values
        return [dict(zip(self.names, v, strict=True)) for v in values]


class BulkWriter:
    """Statements compiled once for one engine's dialect (see the module's docstring)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._plans: dict[Hashable, Plan] = {}

    def plan(self, key: Hashable, build: Callable[[], ClauseElement],
             columns: Sequence[str]) -> Plan:
        """The plan of ``build()`` for rows with these ``columns``; ``key`` names the
        statement (the same key must always build the same statement)."""
        full = (key, tuple(columns))
        plan = self._plans.get(full)
        if plan is None:
            plan = self._plans[full] = self._compile(build(), columns)
        return plan

    def execute(self, conn: Connection, key: Hashable, build: Callable[[], ClauseElement],
                rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row (one ``executemany``); every row has the
        first row's keys."""
        if not rows:
            return
        plan = self.plan(key, build, list(rows[0]))
        try:
            parameters = plan.parameters(rows)
        except Exception as err:  # a value its type refuses: as SQLAlchemy reports it
            raise StatementError(f"({type(err).__module__}.{type(err).__name__}) {err}",
                                 plan.sql, None, err) from err
        conn.exec_driver_sql(plan.sql, parameters)

    def _compile(self, stmt: ClauseElement, columns: Sequence[str]) -> Plan:
        compiled: Any = stmt.compile(dialect=self.dialect, column_keys=list(columns),
                                     for_executemany=True)
        sql = compiled.string
        if (compiled.literal_execute_params or compiled.post_compile_params
                or getattr(compiled, "update_prefetch", None)):
            raise ValueError(f"not a statement for executemany here: {sql!r}")
        # columns the rows leave out, filled by SQLAlchemy from a scalar default
        defaults = {c.key: c.default for c in getattr(compiled, "insert_prefetch", ())}
        binds = {name: b for b, name in compiled.bind_names.items()}  # as the SQL names them
        positional = bool(compiled.positional)
        order = list(compiled.positiontup or ()) if positional else list(binds)
        keys: list[str] = []
        fill: dict[str, Any] = {}
        typed: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(order):
            b = binds[name]
            if isinstance(b.type, NullType):  # the driver would get the value unconverted
                raise ValueError(f"parameter {name!r} of {sql!r} has no type")
            if b.key in columns:
                keys.append(b.key)
            elif b.key in defaults and defaults[b.key].is_scalar:
                keys.append(name)
                fill[name] = defaults[b.key].arg
            else:
                raise ValueError(f"rows lack {name!r} for {sql!r}")
            p = b.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            if p is not None:
                typed.append((i, p))
        return Plan(sql, tuple(order), tuple(keys), fill, tuple(typed), positional)
