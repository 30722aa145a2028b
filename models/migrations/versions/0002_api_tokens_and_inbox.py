"""API tokens and the inbox of the HTTP ingestion API (commit 47e0309).

Revision ID: 0002
Revises: 0001
Created: the tables ``api_token`` and ``inbox`` added by the HTTP ingestion API

Only new tables: nothing in the first release's tables changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)  # stored in UTC (svmon.models.tables.UTCDateTime)


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("party", sa.String(128), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("token_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_api_token_party", "api_token", ["party"])

    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL; SQLite's rowid
        sa.Column("contract_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("publish_attempts", sa.Integer(), nullable=False),
        sa.Column("next_publish_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("settled_at", TS, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_id", "event_id"),
    )
    op.create_index("ix_inbox_due", "inbox", ["settled_at", "next_publish_at"])
    op.create_index("ix_inbox_submitter", "inbox", ["submitted_by", "id"])


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("api_token")
