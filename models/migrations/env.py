"""Alembic's environment for svmon, configured from code: no alembic.ini is needed.

``svmon.models.migrate`` builds the :class:`alembic.config.Config` and passes the connection
to use in ``config.attributes["connection"]``; that connection is already inside the
transaction (and holds the lock) that ``svmon.models.migrate`` opened, so nothing here
commits. Without a connection (``python -m svmon.models.migrate ... --url``) an engine is
made from the ``sqlalchemy.url`` option. ``--sql`` (offline mode) prints the SQL.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import svmon.models.tables  # noqa: F401 - registers every table on SQLModel.metadata
from svmon.models.tables import ExactDecimal, UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Autogenerate writes the project's own column types as plain SQLAlchemy types, so
    that a generated revision does not change when those classes change."""
    if type_ != "type":
        return False
    if isinstance(obj, ExactDecimal):
        return "AMOUNT"  # defined in script.py.mako
    if isinstance(obj, UTCDateTime):
        return "TS"
    if isinstance(obj, AutoString):
        return f"sa.String({obj.length})" if obj.length else "sa.String()"
    return False


def _configure(**kw: Any) -> None:
    context.configure(target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, render_item=render_item, **kw)


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from svmon.models.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
