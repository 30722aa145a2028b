"""SQLModel tables: the durable journal and the read-side projections.

The journal holds every accepted event once (unique ``event_id``), append-only. All
other tables are projections written as absolute values from the fold's state, so
writing them twice is harmless: that is what makes at-least-once delivery safe.
Amounts are stored as exact decimals (NUMERIC) on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, DateTime, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

from svmon.core.rules import canonical


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC(38, 12) on PostgreSQL; text on SQLite, which would round through float.

    Twelve places keep units (6 places on the wire) × proxy values (6 places) exact.
    """

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(60))
        return dialect.type_descriptor(Numeric(38, 12, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # what process_bind_param does, in one call (String has no processor here):
        # the batch writes convert a quarter of a million amounts a minute
        return _text_or_none

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else canonical(Decimal(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        _refuse_naive(value)
        return value.astimezone(UTC) if dialect.name != "sqlite" else \
            value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # process_bind_param, then SQLite DATETIME's text, in one call: SQLAlchemy's
        # format ("2026-11-01 09:30:00.000000") is isoformat's with a space (a test
        # compares it with SQLAlchemy's own processor, built on process_bind_param)
        return _sqlite_utc_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        at: datetime = value
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _refuse_naive(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware (got {value!r})")


def _sqlite_utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    _refuse_naive(value)
    return _utc_text(value)


@lru_cache(maxsize=8192)  # a batch repeats its times: recorded_at, as_of, the clock's
def _utc_text(value: datetime) -> str:  # (equal instants give equal text: safe to share)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


AMOUNT = ExactDecimal()


def _amount(**kw: Any) -> Decimal:
    return Field(sa_column=Column(AMOUNT, nullable=False, **kw))  # type: ignore[no-any-return]


def _ts(nullable: bool = False) -> datetime:
    return Field(  # type: ignore[no-any-return]
        sa_column=Column(UTCDateTime(), nullable=nullable)
    )


class JournalEntry(SQLModel, table=True):
    """Every accepted event, in the order it was first applied (``seq``).

    Append-only, and hash-chained per contract (see ``svmon.audit.chain``).
    """

    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_contract_seq", "contract_id", "seq"),
                      UniqueConstraint("contract_id", "chain_seq"),
                      UniqueConstraint("contract_id", "event_id"))  # ids are per contract

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=128)
    contract_id: str = Field(max_length=128)
    type: str = Field(max_length=40)
    schema_version: int
    occurred_at: datetime = _ts()
    recorded_at: datetime = _ts()
    actor: str = Field(max_length=128)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the wire JSON
    topic: str = Field(max_length=200)
    partition: int
    offset: int
    chain_seq: int
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """The length and last hash of each contract's chain: a deleted tail shows."""

    __tablename__ = "chain_head"

    contract_id: str = Field(primary_key=True, max_length=128)
    length: int
    head_hash: str = Field(max_length=64)


class ContractRow(SQLModel, table=True):
    __tablename__ = "contract"

    contract_id: str = Field(primary_key=True, max_length=128)
    title: str
    buyer: str
    buyer_department: str
    supplier_id: str = Field(index=True, max_length=128)
    supplier_name: str
    start: date
    end: date
    value_gbp: Decimal = _amount()
    catalogue_edition: str = Field(max_length=128)
    manager: str = Field(index=True, max_length=128)
    deputy: str = Field(default="", max_length=128)
    supplier_contact: str = Field(default="", max_length=128)
    reporting_cadence_days: int
    as_of: datetime | None = _ts(nullable=True)
    last_evidence_at: datetime | None = _ts(nullable=True)
    state_version: int = 0


class MeasureTotalRow(SQLModel, table=True):
    """Running totals per contract and measure, in units and £."""

    __tablename__ = "measure_total"

    contract_id: str = Field(primary_key=True, max_length=128)
    measure: str = Field(primary_key=True, max_length=128)
    target: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    claimed: Decimal = _amount()
    verified: Decimal = _amount()
    proxy_gbp: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    target_gbp: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    claimed_gbp: Decimal = _amount()
    verified_gbp: Decimal = _amount()
    shortfall: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    at_risk: bool = False
    target_met: bool = False


class MilestoneRow(SQLModel, table=True):
    __tablename__ = "milestone"

    contract_id: str = Field(primary_key=True, max_length=128)
    milestone_id: str = Field(primary_key=True, max_length=128)
    measure: str = Field(max_length=128)
    due: date
    cumulative_target: Decimal = _amount()
    status: str = Field(max_length=20)


class EvidenceRow(SQLModel, table=True):
    __tablename__ = "evidence"

    contract_id: str = Field(primary_key=True, max_length=128)
    evidence_id: str = Field(primary_key=True, max_length=128)
    measure: str = Field(max_length=128)
    quantity: Decimal = _amount()
    period_start: date
    period_end: date
    status: str = Field(max_length=20)
    submitted_by: str
    submitted_at: datetime = _ts()
    # the event that submitted it (rows from before revision 0003: filled from the journal)
    submitted_event_id: str | None = Field(default=None, max_length=128)
    decided_by: str = ""
    decided_at: datetime | None = _ts(nullable=True)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))


class AlertRow(SQLModel, table=True):
    """The in-app inbox: one row per alert, at most one not resolved per contract ×
    measure × kind. Lifecycle: open → acknowledged → resolved."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_identity", "contract_id", "measure", "kind", "status"),
                      Index("ix_alert_status", "status", "raised_at"))

    alert_id: str = Field(primary_key=True, max_length=1000)
    contract_id: str = Field(max_length=128)
    measure: str = Field(max_length=128)
    kind: str = Field(max_length=40)
    severity: str = Field(default="warning", max_length=10)
    subject: str = Field(default="", max_length=128)  # e.g. the latest milestone missed
    status: str = Field(max_length=20)  # open | acknowledged | resolved
    raised_at: datetime = _ts()  # when the fact holds on the contract's log
    raised_by: str = Field(max_length=1000)  # the derived fact's id
    created_at: datetime = _ts()  # when it reached the inbox (escalation counts from here)
    last_raised_at: datetime = _ts()
    raise_count: int = 1
    delivered_at: datetime | None = _ts(nullable=True)
    acknowledged_at: datetime | None = _ts(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=128)
    escalated_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=1000)
    resolved_manually: bool = False  # a person's decision, not the stream's
    detail: str = Field(sa_column=Column(Text, nullable=False))  # JSON


class RecipientRow(SQLModel, table=True):
    """Where a person or team hears about alerts. Secrets are not stored here: webhook
    signatures use SVMON_WEBHOOK_SECRET from the environment."""

    __tablename__ = "recipient"

    recipient_id: str = Field(primary_key=True, max_length=128)
    name: str = ""
    email: str | None = Field(default=None, max_length=320)
    webhook_url: str | None = Field(default=None, max_length=2000)
    digest: bool = False  # one email a day instead of one per alert


class DeliveryRow(SQLModel, table=True):
    """One alert to one recipient on one channel; the id is the idempotency key sent
    with it (email Message-ID, webhook Idempotency-Key)."""

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_due", "status", "next_attempt_at"),)

    delivery_id: str = Field(primary_key=True, max_length=1300)
    alert_id: str = Field(index=True, max_length=1000)
    recipient_id: str = Field(max_length=128)
    channel: str = Field(max_length=20)  # email | webhook | digest
    status: str = Field(max_length=20)  # pending | sent | failed | skipped
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)
    escalation: bool = False
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class NoticeRow(SQLModel, table=True):
    """Every derived fact, once (the alerts topic carries the same records)."""

    __tablename__ = "notice"

    derived_id: str = Field(primary_key=True, max_length=1000)
    contract_id: str = Field(index=True, max_length=128)
    kind: str = Field(max_length=40)
    measure: str = Field(max_length=128)
    at: datetime = _ts()
    body: str = Field(sa_column=Column(Text, nullable=False))
    published_at: datetime | None = _ts(nullable=True)  # outbox: relayed to the alerts topic


class PositionRow(SQLModel, table=True):
    """The last offset applied to the database, per consumer, topic and partition."""

    __tablename__ = "position"

    consumer: str = Field(primary_key=True, max_length=200)
    topic: str = Field(primary_key=True, max_length=200)
    partition: int = Field(primary_key=True)
    offset: int
    updated_at: datetime = _ts()


class DeadLetterRow(SQLModel, table=True):
    """A record that was refused. The same record redelivered is stored once; the raw
    hash tells it from a new record at a reused offset (the embedded broker restarts
    its offsets when it restarts)."""

    __tablename__ = "dead_letter"
    __table_args__ = (UniqueConstraint("topic", "partition", "offset", "raw_sha256"),
                      Index("ix_dead_letter_event", "contract_id", "event_id"))

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=200)
    partition: int
    offset: int
    raw_sha256: str = Field(max_length=64)
    key: str | None = Field(default=None, max_length=400)
    contract_id: str | None = Field(default=None, max_length=128)
    event_id: str | None = Field(default=None, max_length=128)
    error: str = Field(max_length=60)
    field: str | None = Field(default=None, max_length=200)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    raw: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = _ts()


class MeasureRow(SQLModel, table=True):
    """The catalogue as loaded, so reports and replays price with the same values."""

    __tablename__ = "measure"

    edition: str = Field(primary_key=True, max_length=128)
    code: str = Field(primary_key=True, max_length=128)
    set_name: str
    theme: str
    outcome: str
    category: str = Field(max_length=20)
    title: str
    unit: str
    proxy_gbp: Decimal | None = Field(default=None, sa_column=Column(AMOUNT, nullable=True))
    illustrative: bool
    source: str = Field(sa_column=Column(Text, nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token of a supplier or a contract manager. Only its SHA-256 is kept:
    tokens are 256 random bits, so a fast hash is enough (nothing to brute-force)."""

    __tablename__ = "api_token"

    token_id: str = Field(primary_key=True, max_length=32)  # public part, shown in lists
    token_hash: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=20)  # supplier | manager
    party: str = Field(index=True, max_length=128)  # supplier id or manager id
    label: str = Field(default="", max_length=200)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)
    last_used_at: datetime | None = _ts(nullable=True)


class InboxRow(SQLModel, table=True):
    """Every event received over HTTP or CSV, stored before the receipt is returned.

    This is the durable acknowledgement: a relay publishes unsettled rows to the
    contract-events topic (again, with backoff, until the worker settles them), and the
    worker settles a row in the same transaction that journals or refuses its event.
    """

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("contract_id", "event_id"),  # ids are per contract
                      Index("ix_inbox_due", "settled_at", "next_publish_at"),
                      Index("ix_inbox_submitter", "submitted_by", "id"))

    id: int | None = Field(default=None, primary_key=True)  # order of receipt
    contract_id: str = Field(max_length=128)
    event_id: str = Field(max_length=128)
    type: str = Field(max_length=40)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the wire JSON
    request_sha256: str = Field(max_length=64)  # the request, apart from the receive time
    submitted_by: str = Field(max_length=200)  # the principal, e.g. supplier:S01
    token_id: str = Field(default="", max_length=32)
    channel: str = Field(max_length=10)  # http | csv | cli
    received_at: datetime = _ts()
    publish_attempts: int = 0
    next_publish_at: datetime = _ts()
    published_at: datetime | None = _ts(nullable=True)
    settled_at: datetime | None = _ts(nullable=True)
    outcome: str = Field(default="pending", max_length=20)  # pending | accepted | refused
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
