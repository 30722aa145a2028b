"""The event that submitted each piece of evidence, on its row.

Revision ID: 0003
Revises: 0002
Created: the nullable column ``evidence.submitted_event_id``

The worker no longer keeps every piece of evidence in memory: it reads the rows a batch
names from the evidence table. A submission that reuses an evidence id is refused
naming the event that first submitted it, so the row now records that event. Rows
written before this revision get it from the journal, in one pass over the journal's
submissions (one accepted submission per evidence id: a reuse is refused, never
journalled).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FILL = {
    "sqlite": (
        "UPDATE evidence SET submitted_event_id = s.event_id FROM ("
        "SELECT contract_id, event_id, json_extract(payload, '$.data.evidence_id') AS eid "
        "FROM journal WHERE type = 'EvidenceSubmitted') AS s "
        "WHERE s.contract_id = evidence.contract_id AND s.eid = evidence.evidence_id"),
    "postgresql": (
        "UPDATE evidence AS x SET submitted_event_id = s.event_id FROM ("
        "SELECT contract_id, event_id, CAST(payload AS json) -> 'data' ->> 'evidence_id' "
        "AS eid FROM journal WHERE type = 'EvidenceSubmitted') AS s "
        "WHERE s.contract_id = x.contract_id AND s.eid = x.evidence_id"),
}


def upgrade() -> None:
    op.add_column("evidence", sa.Column("submitted_event_id", sa.String(128), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(FILL["postgresql" if dialect == "postgresql" else "sqlite"])


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("submitted_event_id")
