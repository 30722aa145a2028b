"""Database engines: one place that knows how SQLite and PostgreSQL are opened, and
which database errors are worth trying again.

Below the stores and the migrations alike, so both can open a database without
importing each other.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

# errors after which the same statement may succeed (the database restarted, the
# connection dropped): retried by the worker, answered 503 by the API
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError)


def make_engine(url: str, *, fsync_each_commit: bool = False,
                checkpoint_behind: bool = False) -> Engine:
    """An engine for SQLite (WAL, foreign processes welcome) or PostgreSQL (psycopg 3).

    SQLite in WAL mode with ``synchronous=NORMAL`` keeps every commit across a crash of
    the process; ``fsync_each_commit`` (``synchronous=FULL``) keeps it across a crash of
    the machine too, which is what an acknowledgement to a supplier promises.
    PostgreSQL's default (``synchronous_commit=on``) already does.

    ``checkpoint_behind``: SQLite copies the write-ahead log into the database file (and
    syncs both to disk) inside whichever commit takes the log past 1,000 pages, so one
    batch in a few waited 100-300 ms for the disk. The worker turns that off and calls
    :meth:`Repository.checkpoint_wal` from a timer instead, beside its commits.
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            switch_to_wal(cur)
            cur.execute("PRAGMA synchronous=FULL" if fsync_each_commit
                        else "PRAGMA synchronous=NORMAL")  # WAL: survives a process crash
            cur.execute("PRAGMA busy_timeout=30000")
            if checkpoint_behind:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def switch_to_wal(cur: Any, wait: float = 30.0) -> None:
    """Put the database in WAL mode, waiting for other processes doing the same.

    A new file is still in rollback-journal mode. When two connections switch it at
    once, each holds a shared lock and wants the exclusive one; SQLite refuses one of
    them at once ("database is locked"), without its busy timeout, to avoid a deadlock.
    Three processes opening one new file through ``make_engine`` together: 86 of 500
    rounds had one refused so, 0 of 500 with this. The refused one tries again until
    ``wait`` has passed (SQLite's own busy handler sleeps in the same kind of steps).
    """
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
