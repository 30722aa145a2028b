"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Created: ${create_date}

Write the schema out explicitly (column types included): a revision must stay as it is
when ``models/tables.py`` changes later. Amounts are ``AMOUNT`` and timestamps ``TS``.
``op.batch_alter_table`` is needed for ALTERs that SQLite cannot do in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# NUMERIC(38, 12) on PostgreSQL, text on SQLite (as svmon.models.tables.ExactDecimal stores it)
AMOUNT = sa.String(60).with_variant(sa.Numeric(38, 12), "postgresql")
TS = sa.DateTime(timezone=True)  # stored in UTC (svmon.models.tables.UTCDateTime)


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
