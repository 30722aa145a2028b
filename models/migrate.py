"""Schema migrations: bring any svmon database to the schema of this code, from any
number of processes at once.

The revisions are Alembic scripts in ``models/migrations/versions`` (``0001`` is the
first release's schema, frozen; each later one is a change). Alembic is configured from
code here, so no ``alembic.ini`` is needed at run time. :func:`ensure_schema` is what
``svmon.bootstrap.init_database`` runs in every process at start:

* at the newest revision already: one read of ``alembic_version``, no lock;
* an empty database: ``create_all`` from the current models, then stamped at the newest
  revision (faster than running every revision; the tests prove both give the same
  schema);
* an ``alembic_version`` older than this code: ``upgrade head``;
* tables but no ``alembic_version`` (made by ``create_all`` before svmon had
  migrations): the release is recognised from which tables exist, stamped, and
  upgraded to the newest revision.

**Several processes at once** (worker, API, dispatcher and CLI often start together)
check and migrate one at a time, each under a lock held for the whole
check-then-change, and each re-reads the revision once it holds the lock:

* PostgreSQL: ``pg_advisory_xact_lock`` in the transaction that does the work. DDL is
  transactional there, so the change commits whole or not at all, and the lock goes
  with the transaction (a killed process cannot leave it behind). Advisory locks are
  per database, so databases on one server do not wait for each other.
* SQLite: ``BEGIN IMMEDIATE``, the database's own write lock, taken before the first
  read. A file lock beside the database was the other choice; the write transaction
  was chosen because it also makes the migration atomic (SQLite's DDL is
  transactional: a process killed halfway, e.g. inside a batch table rebuild, leaves
  the old schema, not half a new one), it holds for every process that opens the
  same file whatever its data directory, and there is no lock file to go stale.
  Waiting processes wait through the busy timeout set by ``make_engine`` (30 s).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    column,
    delete,
    insert,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
LOCK_KEY = int.from_bytes(b"svmon-db", "big")  # the advisory lock's key on PostgreSQL
# The table in which Alembic records the revision, as Alembic makes it (a test compares)
VERSION = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))

# The tables each revision added, for the revisions that shipped before svmon had
# migrations: a database made then by create_all is recognised by them. Databases made
# since always have an alembic_version, so later revisions need no entry.
PRE_ALEMBIC_RELEASES: tuple[tuple[str, frozenset[str]], ...] = (
    ("0001", frozenset({"alert", "chain_head", "contract", "dead_letter", "delivery",
                        "evidence", "journal", "measure", "measure_total", "milestone",
                        "notice", "position", "recipient"})),
    ("0002", frozenset({"api_token", "inbox"})),
)


class DatabaseSchemaError(RuntimeError):
    """The database's schema cannot be brought to this code's revision automatically."""


# ------------------------------------------------------------------ Alembic set-up


def config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration, made in code; ``connection`` is used as it is (inside
    its transaction), else an engine is made from ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def script() -> ScriptDirectory:
    """The revisions (read once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision of this code."""
    heads = script().get_heads()
    if len(heads) != 1:
        raise DatabaseSchemaError(f"the migrations have {len(heads)} heads {heads}: merge them")
    return heads[0]


@functools.cache
def newest_by_file_name() -> str | None:
    """The newest revision by its file's name (``NNNN_slug.py``), found without
    importing Alembic (about 70 ms a process): the fast path of :func:`ensure_schema`
    compares with this. A test checks that it is Alembic's head."""
    ids = sorted(p.name.split("_", 1)[0]
                 for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return ids[-1] if ids else None


def known_revisions() -> set[str]:
    return {r.revision for r in script().walk_revisions()}


# ------------------------------------------------------------------------- reading


def current_revision(bind: Engine | Connection) -> str | None:
    """The database's revision, or None without an ``alembic_version`` (empty or made
    before migrations). Takes no lock."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _version(conn)
    return _version(bind)


def _version(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    version = table(VERSION_TABLE, column("version_num"))
    rows = sorted(r[0] for r in conn.execute(select(version.c.version_num)))
    if len(rows) > 1:
        raise DatabaseSchemaError(f"the database has several revisions {rows}: not from svmon")
    return rows[0] if rows else None


def pre_alembic_release(tables: set[str]) -> str | None:
    """The revision whose schema these tables are, for a database made by create_all
    before svmon had migrations; None when it holds none of svmon's tables."""
    ours = tables & set().union(*(added for _, added in PRE_ALEMBIC_RELEASES))
    if not ours:
        return None
    release: str | None = None
    expected: set[str] = set()
    for revision, added in PRE_ALEMBIC_RELEASES:  # the longest run of complete releases
        if not added <= ours:
            break
        release, expected = revision, expected | added
    if release is None or ours != expected:
        raise DatabaseSchemaError(
            f"the database has some of svmon's tables ({', '.join(sorted(ours))}) but not "
            "those of any one release: restore it from a backup, or migrate it by hand and "
            "record its revision (python -m svmon.models.migrate stamp REVISION)")
    return release


# ------------------------------------------------------------------------ changing


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the schema lock (see the module's
    docstring); the transaction commits when the block ends without an error."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # The driver's own transaction handling would not begin one before DDL:
            # take it over, and BEGIN IMMEDIATE takes the write lock before the first read.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield conn


def _stamp(conn: Connection, revision: str) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(script(), revision)


def _stamp_created(conn: Connection) -> None:
    """``stamp head`` of a database just made by create_all, written here: the same
    table and row as Alembic's, without importing Alembic (about 70 ms a process, on
    every fresh database a test or a command starts)."""
    newest = newest_by_file_name()
    if newest is None:
        raise DatabaseSchemaError(f"no revisions in {MIGRATIONS / 'versions'}")
    VERSION.create(conn, checkfirst=True)
    conn.execute(delete(VERSION))
    conn.execute(insert(VERSION).values(version_num=newest))


def _adopt(conn: Connection) -> str | None:
    """The revision to start from: the stored one, or the recognised release of a
    database made before migrations (stamped now); None for an empty database."""
    revision = _version(conn)
    if revision is None:
        revision = pre_alembic_release(set(inspect(conn).get_table_names()))
        if revision is not None:
            _stamp(conn, revision)
    elif revision not in known_revisions():
        raise DatabaseSchemaError(f"the database is at revision {revision}, which this svmon does "
                          f"not know (its newest is {head()}): run a newer svmon")
    return revision


def _run(command_name: str, conn: Connection, revision: str) -> None:
    from alembic import command

    getattr(command, command_name)(config(conn), revision)


def ensure_schema(engine: Engine, metadata: MetaData | None = None) -> str:
    """Bring the database to the newest revision (what ``init_database`` runs); returns
    it. Safe to run from many processes at once, and cheap once the database is there."""
    newest = newest_by_file_name()
    if newest is not None and current_revision(engine) == newest:
        return newest
    with locked(engine) as conn:
        if newest is not None and _version(conn) == newest:  # done while this one waited
            return newest
        start = _adopt(conn)
        if start is None:  # empty: create the current schema at once
            if metadata is None:
                from sqlmodel import SQLModel

                import svmon.models.tables  # noqa: F401 - registers the tables

                metadata = SQLModel.metadata
            metadata.create_all(conn)
            _stamp_created(conn)
        elif start != head():
            _run("upgrade", conn, "head")
        return _version(conn) or ""


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Run the revisions up to ``revision`` (an empty database runs all of them, from
    0001); returns the revision reached."""
    with locked(engine) as conn:
        _adopt(conn)
        _run("upgrade", conn, revision)
        return _version(conn)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo revisions down to ``revision`` ("base" drops every table)."""
    with locked(engine) as conn:
        _adopt(conn)
        _run("downgrade", conn, revision)
        return _version(conn)


def stamp(engine: Engine, revision: str) -> str | None:
    """Record ``revision`` without changing anything else (after a change made by hand)."""
    with locked(engine) as conn:
        _stamp(conn, revision)
        return _version(conn)


# ----------------------------------------------------------------- for developers


def new_revision(message: str, autogenerate: bool = False, url: str | None = None) -> Any:
    """Write a new revision file ``NNNN_message.py`` after the newest one.

    With ``autogenerate``, Alembic fills it in by comparing the models with a database
    at the newest revision: ``url``, or else a scratch SQLite file made here. Read what
    it wrote: autogenerate misses some changes (renames, for one) and
    type changes on SQLite need ``op.batch_alter_table``.
    """
    import tempfile

    from alembic import command

    from svmon.models.engine import make_engine

    rev_id = f"{int(head()) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        url = url or f"sqlite:///{Path(scratch) / 'head.db'}"
        engine = make_engine(url)
        try:
            if autogenerate:
                upgrade(engine)
            with engine.begin() as conn:
                return command.revision(config(conn), message=message,
                                        autogenerate=autogenerate, rev_id=rev_id)
        finally:
            engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m svmon.models.migrate`` (run ``--help``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m svmon.models.migrate", description=main.__doc__)
    p.add_argument("--url", help="database URL (default: svmon's, from DATABASE_URL or "
                                 "SVMON_DATA_DIR)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("current", help="print the database's revision")
    sub.add_parser("heads", help="print the newest revision of this code")
    sub.add_parser("history", help="list the revisions")
    for name in ("upgrade", "downgrade", "stamp"):
        sp = sub.add_parser(name, help=f"{name} the database")
        sp.add_argument("revision", nargs="?" if name == "upgrade" else None, default="head")
    sp = sub.add_parser("sql", help="print the SQL of an upgrade, without a database")
    sp.add_argument("range", nargs="?", default="head", help="e.g. head, or 0001:0002")
    sp.add_argument("--dialect", default="postgresql", choices=["postgresql", "sqlite"])
    sp = sub.add_parser("revision", help="write a new revision file")
    sp.add_argument("-m", "--message", required=True)
    sp.add_argument("--autogenerate", action="store_true")
    args = p.parse_args(argv)

    if args.cmd == "heads":
        print(head())
        return 0
    if args.cmd == "history":
        for r in script().walk_revisions():
            print(f"{r.revision}  {r.doc}")
        return 0
    if args.cmd == "revision":
        created = new_revision(args.message, args.autogenerate, args.url)
        print(f"wrote {created.path}")
        return 0
    if args.cmd == "sql":
        from alembic import command

        command.upgrade(config(url=f"{args.dialect}://"), args.range, sql=True)
        return 0
    from svmon.models.engine import make_engine
    from svmon.settings import Settings

    engine = make_engine(args.url or Settings.from_env().database_url)
    try:
        if args.cmd == "current":
            print(current_revision(engine) or "none")
        else:
            action = {"upgrade": upgrade, "downgrade": downgrade, "stamp": stamp}[args.cmd]
            print(action(engine, args.revision) or "none")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
