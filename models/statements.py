"""What every store writes with: a table model's Core table, and the dialect's upsert and
insert-or-ignore compiled once (:class:`~svmon.models.bulk.BulkWriter`).

One :class:`Writes` is shared by the stores of a repository, so a statement is compiled
once per engine whichever store runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlmodel import SQLModel

from svmon.models.bulk import BulkWriter

NOT_RESOLVED = ("open", "acknowledged")  # alert statuses that still ask for attention


def T(model: type[SQLModel]) -> Table:
    """A table model's Core ``Table`` (SQLModel declares ``__table__`` on the class only at
    run time)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


class Writes:
    """Many rows a statement, in the engine's dialect."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self._bulk = BulkWriter(engine.dialect)

    def insert(self, table: Table) -> Any:
        return (postgresql.insert(table) if self.dialect == "postgresql"
                else sqlite.insert(table))

    def execute(self, conn: Connection, key: Hashable, build: Callable[[], ClauseElement],
                rows: Sequence[Mapping[str, Any]]) -> None:
        """``build()`` run once per row (see :meth:`BulkWriter.execute`)."""
        self._bulk.execute(conn, key, build, rows)

    def upsert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
               keys: Sequence[str]) -> None:
        """Insert the rows, or update every other column where ``keys`` match one."""
        if not rows:
            return

        def build() -> Any:
            stmt = self.insert(table)
            cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
            return stmt.on_conflict_do_update(index_elements=list(keys), set_=cols)

        self._bulk.execute(conn, ("upsert", table.name, tuple(keys)), build, rows)

    def insert_ignore(self, conn: Connection, table: Table,
                      rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
        """Insert the rows whose ``keys`` are not there yet."""
        self._bulk.execute(
            conn, ("insert-ignore", table.name, tuple(keys)),
            lambda: self.insert(table).on_conflict_do_nothing(index_elements=list(keys)),
            rows)
