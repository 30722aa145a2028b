"""The batch writes' own executemany (svmon.models.bulk) stores what SQLAlchemy's would.

Each test writes the same rows twice, once through ``conn.execute(stmt, rows)`` and
once through :class:`~svmon.models.bulk.BulkWriter`, into two tables of the same shape on
the real database, and compares what comes back, or checks that a value its type
refuses is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from svmon.models.bulk import BulkWriter
from svmon.models.tables import ExactDecimal, UTCDateTime

LONDON = timezone(timedelta(hours=1))


def shaped(name: str, meta: MetaData) -> Table:
    return Table(name, meta,
                 Column("id", String(20), primary_key=True),
                 Column("at", UTCDateTime(), nullable=True),
                 Column("day", Date, nullable=True),
                 Column("amount", ExactDecimal(), nullable=True),
                 Column("n", Integer, nullable=True),
                 Column("flag", Boolean, nullable=False, default=False),
                 Column("note", String(40), nullable=False, default="none"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


@pytest.fixture
def tables(engine: Engine) -> Iterator[tuple[Table, Table]]:
    meta = MetaData()
    pair = shaped("bulk_reference", meta), shaped("bulk_fast", meta)
    meta.drop_all(engine)
    meta.create_all(engine)
    yield pair
    meta.drop_all(engine)


def rows() -> list[dict[str, Any]]:
    return [
        dict(id="a", at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC), day=date(2026, 1, 31),
             amount=Decimal("2.5"), n=1, flag=True),
        dict(id="b", at=datetime(2026, 7, 1, 9, 30, 0, 123456, tzinfo=LONDON),
             day=date(999, 1, 1), amount=Decimal("0.000000000001"), n=None, flag=False),
        dict(id="c", at=None, day=None, amount=None, n=-3, flag=False),
        dict(id="d", at=datetime(1, 1, 1, tzinfo=UTC), day=date(9999, 12, 31),
             amount=Decimal("12345678901234567890.123456789012"), n=0, flag=True),
    ]


def read(engine: Engine, t: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]


def stored_text(engine: Engine, t: Table) -> list[tuple[Any, ...]]:
    """The values as the database holds them (SQLite keeps text: compare it too)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(*(cast(t.c[c], Text) for c in ("at", "day", "amount")), t.c.n, t.c.flag,
                   t.c.note).order_by(t.c.id))]


def insert(dialect_name: str, t: Table) -> Any:
    return (postgresql.insert(t) if dialect_name == "postgresql" else sqlite.insert(t))


def test_inserts_store_what_sqlalchemy_stores(engine: Engine, tables: tuple[Table, Table]
                                              ) -> None:
    ref, fast = tables
    bulk = BulkWriter(engine.dialect)
    with engine.begin() as conn:
        conn.execute(ref.insert(), rows())
        bulk.execute(conn, "insert", fast.insert, rows())
    assert read(engine, fast) == read(engine, ref)
    assert stored_text(engine, fast) == stored_text(engine, ref)
    assert read(engine, fast)[1][-1] == "none"  # a column left to its default


def test_upserts_and_updates_store_what_sqlalchemy_stores(
        engine: Engine, tables: tuple[Table, Table]) -> None:
    ref, fast = tables
    name = engine.dialect.name
    bulk = BulkWriter(engine.dialect)
    changed = [{**r, "amount": Decimal("7"), "note": "again"} for r in rows()[:2]]
    later = [dict(b_id=r["id"], b_at=datetime(2027, 1, 1, tzinfo=LONDON), b_n=5)
             for r in rows()[1:3]]

    def upsert(t: Table) -> Any:
        stmt = insert(name, t)
        return stmt.on_conflict_do_update(index_elements=["id"], set_={
            c: stmt.excluded[c] for c in changed[0] if c != "id"})

    def moved(t: Table) -> Any:
        return update(t).where(t.c.id == bindparam("b_id")).values(
            at=bindparam("b_at"), n=bindparam("b_n"))

    with engine.begin() as conn:
        for t in (ref, fast):
            conn.execute(t.insert(), rows())
        conn.execute(upsert(ref), changed)
        conn.execute(moved(ref), later)
        bulk.execute(conn, "upsert", lambda: upsert(fast), changed)
        bulk.execute(conn, "moved", lambda: moved(fast), later)
    assert read(engine, fast) == read(engine, ref)
    assert stored_text(engine, fast) == stored_text(engine, ref)
    assert [r[-1] for r in read(engine, fast)] == ["again", "again", "none", "none"]


def test_a_timestamp_without_a_zone_is_refused_as_sqlalchemy_refuses_it(
        engine: Engine, tables: tuple[Table, Table]) -> None:
    ref, fast = tables
    bad = [{**rows()[0], "at": datetime(2026, 1, 5, 12)}]
    bulk = BulkWriter(engine.dialect)
    for run in (lambda conn: conn.execute(ref.insert(), bad),
                lambda conn: bulk.execute(conn, "insert", fast.insert, bad)):
        with pytest.raises(StatementError, match="timezone-aware"), engine.begin() as conn:
            run(conn)
    assert read(engine, ref) == read(engine, fast) == []


def test_statements_it_cannot_run_faithfully_are_refused(
        engine: Engine, tables: tuple[Table, Table]) -> None:
    _, fast = tables
    bulk = BulkWriter(engine.dialect)
    fixed = update(fast).where(fast.c.id == bindparam("b_id"), fast.c.note == "none") \
        .values(n=bindparam("b_n"))
    untyped = update(fast).where(fast.c.id == bindparam("b_id")).values(
        note=bindparam("b_note", type_=None) + bindparam("b_more"))
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="rows lack 'note_1'"):
            bulk.execute(conn, "fixed", lambda: fixed, [dict(b_id="a", b_n=1)])
        with pytest.raises(ValueError, match="has no type"):
            bulk.execute(conn, "untyped", lambda: untyped,
                         [dict(b_id="a", b_note="x", b_more="y")])


@pytest.mark.parametrize("value", [
    None, datetime(2026, 11, 1, 9, 30, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=LONDON),
    datetime(999, 12, 31, 23, 0, 0, 1, tzinfo=UTC)])
def test_sqlite_timestamps_are_the_text_sqlalchemy_would_store(value: datetime | None
                                                                ) -> None:
    t = UTCDateTime()
    dialect = sqlite.dialect()
    generic = super(UTCDateTime, t.dialect_impl(dialect)).bind_processor(dialect)
    fast = t.dialect_impl(dialect).bind_processor(dialect)
    assert generic is not None and fast is not None
    assert fast(value) == generic(value)
