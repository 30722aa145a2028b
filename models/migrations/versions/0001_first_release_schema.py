"""First release schema: the journal, its chain heads, the projections and the alerts.

Revision ID: 0001
Revises:
Created: the schema of the first release (commit 917bb98), written out table by table

This is the schema that ``SQLModel.metadata.create_all`` made in that release, frozen
here: it must not follow later changes of ``models/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# NUMERIC(38, 12) on PostgreSQL, text on SQLite (as svmon.models.tables.ExactDecimal stores it)
AMOUNT = sa.String(60).with_variant(sa.Numeric(38, 12), "postgresql")
TS = sa.DateTime(timezone=True)  # stored in UTC (svmon.models.tables.UTCDateTime)


def _s(length: int | None = None) -> sa.String:
    return sa.String(length) if length else sa.String()


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("alert_id", _s(1000), nullable=False),
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("measure", _s(128), nullable=False),
        sa.Column("kind", _s(40), nullable=False),
        sa.Column("severity", _s(10), nullable=False),
        sa.Column("subject", _s(128), nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("raised_by", _s(1000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_raised_at", TS, nullable=False),
        sa.Column("raise_count", sa.Integer(), nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", _s(128), nullable=True),
        sa.Column("escalated_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolved_by", _s(1000), nullable=True),
        sa.Column("resolved_manually", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index("ix_alert_identity", "alert", ["contract_id", "measure", "kind", "status"])
    op.create_index("ix_alert_status", "alert", ["status", "raised_at"])

    op.create_table(
        "chain_head",
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("head_hash", _s(64), nullable=False),
        sa.PrimaryKeyConstraint("contract_id"),
    )

    op.create_table(
        "contract",
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("title", _s(), nullable=False),
        sa.Column("buyer", _s(), nullable=False),
        sa.Column("buyer_department", _s(), nullable=False),
        sa.Column("supplier_id", _s(128), nullable=False),
        sa.Column("supplier_name", _s(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("value_gbp", AMOUNT, nullable=False),
        sa.Column("catalogue_edition", _s(128), nullable=False),
        sa.Column("manager", _s(128), nullable=False),
        sa.Column("deputy", _s(128), nullable=False),
        sa.Column("supplier_contact", _s(128), nullable=False),
        sa.Column("reporting_cadence_days", sa.Integer(), nullable=False),
        sa.Column("as_of", TS, nullable=True),
        sa.Column("last_evidence_at", TS, nullable=True),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id"),
    )
    op.create_index("ix_contract_manager", "contract", ["manager"])
    op.create_index("ix_contract_supplier_id", "contract", ["supplier_id"])

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL on PostgreSQL
        sa.Column("topic", _s(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("raw_sha256", _s(64), nullable=False),
        sa.Column("key", _s(400), nullable=True),
        sa.Column("contract_id", _s(128), nullable=True),
        sa.Column("event_id", _s(128), nullable=True),
        sa.Column("error", _s(60), nullable=False),
        sa.Column("field", _s(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic", "partition", "offset", "raw_sha256"),
    )
    op.create_index("ix_dead_letter_event", "dead_letter", ["contract_id", "event_id"])

    op.create_table(
        "delivery",
        sa.Column("delivery_id", _s(1300), nullable=False),
        sa.Column("alert_id", _s(1000), nullable=False),
        sa.Column("recipient_id", _s(128), nullable=False),
        sa.Column("channel", _s(20), nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("escalation", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.create_index("ix_delivery_alert_id", "delivery", ["alert_id"])
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])

    op.create_table(
        "evidence",
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("evidence_id", _s(128), nullable=False),
        sa.Column("measure", _s(128), nullable=False),
        sa.Column("quantity", AMOUNT, nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.Column("submitted_by", _s(), nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("decided_by", _s(), nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "evidence_id"),
    )

    op.create_table(
        "journal",
        sa.Column("seq", sa.Integer(), nullable=False),  # SERIAL; SQLite's rowid
        sa.Column("event_id", _s(128), nullable=False),
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("type", _s(40), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("actor", _s(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("topic", _s(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("chain_seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", _s(64), nullable=False),
        sa.Column("hash", _s(64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("contract_id", "chain_seq"),
        sa.UniqueConstraint("contract_id", "event_id"),
    )
    op.create_index("ix_journal_contract_seq", "journal", ["contract_id", "seq"])

    op.create_table(
        "measure",
        sa.Column("edition", _s(128), nullable=False),
        sa.Column("code", _s(128), nullable=False),
        sa.Column("set_name", _s(), nullable=False),
        sa.Column("theme", _s(), nullable=False),
        sa.Column("outcome", _s(), nullable=False),
        sa.Column("category", _s(20), nullable=False),
        sa.Column("title", _s(), nullable=False),
        sa.Column("unit", _s(), nullable=False),
        sa.Column("proxy_gbp", AMOUNT, nullable=True),
        sa.Column("illustrative", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("edition", "code"),
    )

    op.create_table(
        "measure_total",
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("measure", _s(128), nullable=False),
        sa.Column("target", AMOUNT, nullable=True),
        sa.Column("claimed", AMOUNT, nullable=False),
        sa.Column("verified", AMOUNT, nullable=False),
        sa.Column("proxy_gbp", AMOUNT, nullable=True),
        sa.Column("target_gbp", AMOUNT, nullable=True),
        sa.Column("claimed_gbp", AMOUNT, nullable=False),
        sa.Column("verified_gbp", AMOUNT, nullable=False),
        sa.Column("shortfall", AMOUNT, nullable=True),
        sa.Column("at_risk", sa.Boolean(), nullable=False),
        sa.Column("target_met", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "measure"),
    )

    op.create_table(
        "milestone",
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("milestone_id", _s(128), nullable=False),
        sa.Column("measure", _s(128), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("cumulative_target", AMOUNT, nullable=False),
        sa.Column("status", _s(20), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "milestone_id"),
    )

    op.create_table(
        "notice",
        sa.Column("derived_id", _s(1000), nullable=False),
        sa.Column("contract_id", _s(128), nullable=False),
        sa.Column("kind", _s(40), nullable=False),
        sa.Column("measure", _s(128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("derived_id"),
    )
    op.create_index("ix_notice_contract_id", "notice", ["contract_id"])

    op.create_table(
        "position",
        sa.Column("consumer", _s(200), nullable=False),
        sa.Column("topic", _s(200), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )

    op.create_table(
        "recipient",
        sa.Column("recipient_id", _s(128), nullable=False),
        sa.Column("name", _s(), nullable=False),
        sa.Column("email", _s(320), nullable=True),
        sa.Column("webhook_url", _s(2000), nullable=True),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("recipient_id"),
    )


def downgrade() -> None:
    for table in ("recipient", "position", "notice", "milestone", "measure_total", "measure",
                  "journal", "evidence", "delivery", "dead_letter", "contract", "chain_head",
                  "alert"):
        op.drop_table(table)  # their indexes go with them
