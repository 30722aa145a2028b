"""The repository: the stores of one database, composed, as the rest of the code sees it.

Each store has one reason to change: the journal and its hash chain
(:mod:`~svmon.models.journal`), the contract states and their totals
(:mod:`~svmon.models.states`), alerts and the notice outbox
(:mod:`~svmon.models.alert_store`), the delivery queue
(:mod:`~svmon.models.deliveries`), consumer positions, dead letters and inbox
settlement (:mod:`~svmon.models.positions`) and the read-only reports
(:mod:`~svmon.models.reports`). :class:`Repository` owns the engine, hands the stores
one connection for a batch, and keeps the methods callers have always used.

``apply_batch`` writes one processed batch in a single transaction: journal rows,
projections as absolute values from the fold's state, notices and alert changes, dead
letters, the inbox rows the batch settles and the partition positions.

Redelivery is made harmless before this point: the event-id gate (``seed_gate``) turns
records already journalled into duplicates, so a batch folded again carries no journal
rows and no new facts. A ``Batch`` object applied twice as it is, without the gate, is
refused by the journal's unique key (contract, event id) and rolls back whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel

from svmon.audit.chain import ChainRow
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.errors import NotAllowed
from svmon.core.idempotence import EventGate
from svmon.core.state import ContractState, EvidenceRecord
from svmon.models.alert_store import AlertStore
from svmon.models.batch import Batch
from svmon.models.deliveries import DeliveryStore
from svmon.models.journal import JournalStore
from svmon.models.positions import PositionStore
from svmon.models.reports import ReportStore
from svmon.models.statements import NOT_RESOLVED, T, Writes
from svmon.models.states import StateStore, changed_measures
from svmon.schemas import now_utc

# names callers import from here
__all__ = ["NOT_RESOLVED", "Batch", "NotAllowed", "Repository", "T", "changed_measures"]


class Repository:
    def __init__(self, engine: Engine, catalogue: Catalogue, *,
                 checkpoint_behind: bool = False) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.checkpoint_behind = checkpoint_behind and engine.dialect.name == "sqlite"
        self._last_restart = -1e9  # monotonic time of the last log restart
        writes = Writes(engine)  # one set of compiled statements for every store
        self.journal = JournalStore(engine, writes)
        self.states = StateStore(engine, writes, catalogue)
        self.delivery_queue = DeliveryStore(engine, writes)
        self.alert_store = AlertStore(engine, writes, self.delivery_queue)
        self.consumption = PositionStore(engine, writes)
        self.reports = ReportStore(engine)

    def checkpoint_wal(self, restart_above: int = 8192) -> None:
        """Copy SQLite's write-ahead log into the database without stopping writers;
        once the log is over ``restart_above`` pages (32 MiB), let it start again from
        its beginning, waiting at most 0.2 s for readers (else: next time). Only for an
        engine made with ``checkpoint_behind``; nothing to do on PostgreSQL."""
        if not self.checkpoint_behind:
            return
        with self.engine.connect() as conn:
            _, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            now = time.monotonic()
            # only once everything is copied (little left to wait for), and not often:
            # a reader holding an old snapshot makes the restart wait, and writers too
            due = done == log or log > 4 * restart_above  # (never unbounded)
            if log > restart_above and due and now - self._last_restart > 5.0:
                self._last_restart = now
                conn.exec_driver_sql("PRAGMA busy_timeout=200").all()
                try:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").all()
                finally:
                    conn.exec_driver_sql("PRAGMA busy_timeout=30000").all()

    def create_schema(self) -> str:
        """Bring the schema to the newest revision: create it in an empty database,
        upgrade an older one (see ``svmon.models.migrate``); returns the revision."""
        from svmon.models.migrate import ensure_schema

        return ensure_schema(self.engine, SQLModel.metadata)

    def save_catalogue(self) -> None:
        self.states.save_catalogue()

    # ------------------------------------------------------ the batch's write

    def apply_batch(self, b: Batch) -> None:
        now = now_utc()
        with self.engine.begin() as conn:
            self.journal.append(conn, b.journal)
            self.states.write(conn, b)
            self.alert_store.write_derived(conn, b.derived, b.states)
            self.consumption.dead_letters(conn, b.dead_letters)
            self.consumption.settle_inbox(conn, b.settled, now)
            self.consumption.write(conn, b.consumer, b.positions, now)

    # ------------------------------------------------- states (StateStore)

    def total_rows(self, s: ContractState, measures: Iterable[str] | None = None
                   ) -> list[dict[str, Any]]:
        return self.states.total_rows(s, measures)

    def seed_gate(self, keys: Iterable[tuple[str, str]]) -> EventGate:
        """An event-id gate that knows which of these (contract, event) ids were journalled
        (with their events) or refused by the fold before."""
        return self.before_batch(keys, ())[0]

    def before_batch(self, keys: Iterable[tuple[str, str]],
                     evidence_keys: Iterable[tuple[str, str]]
                     ) -> tuple[EventGate, dict[str, dict[str, EvidenceRecord]]]:
        return self.states.before_batch(keys, evidence_keys)

    def evidence_records(self, keys: Iterable[tuple[str, str]]
                         ) -> dict[str, dict[str, EvidenceRecord]]:
        """The evidence recorded under these (contract, evidence) ids, by contract, as
        the fold holds it (see :meth:`StateStore.before_batch`)."""
        return self.before_batch((), keys)[1]

    def state_versions(self, contract_ids: Iterable[str]) -> dict[str, int]:
        return self.states.state_versions(contract_ids)

    def contract_ids(self) -> list[str]:
        return self.states.contract_ids()

    def live_totals(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.states.live_totals()

    def expected_totals(self, states: Iterable[ContractState]
                        ) -> dict[tuple[str, str], dict[str, Any]]:
        return self.states.expected_totals(states)

    # ----------------------------------------------- journal (JournalStore)

    def journal_events(self, contract_id: str | None = None,
                       until: datetime | None = None) -> Iterator[ev.ContractEvent]:
        return self.journal.events(contract_id, until)

    def chain_rows(self, contract_id: str | None = None) -> Iterator[ChainRow]:
        return self.journal.chain_rows(contract_id)

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        return self.journal.chain_heads()

    def journal_rows(self, event_id: str | None = None, contract_id: str | None = None,
                     last: int | None = None) -> list[dict[str, Any]]:
        return self.journal.rows(event_id, contract_id, last)

    # --------------------------------------------- alerts (AlertStore)

    def alerts(self, status: str | None = None, contract_id: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
        return self.alert_store.alerts(status, contract_id, limit)

    def acknowledge(self, alert_id: str, by: str) -> dict[str, Any]:
        """The contract's manager (or deputy) acknowledges; anyone else is refused."""
        return self.alert_store.decide(alert_id, by, "acknowledged")

    def resolve(self, alert_id: str, by: str) -> dict[str, Any]:
        return self.alert_store.decide(alert_id, by, "resolved")

    def open_alert_identities(self) -> set[tuple[str, str, str, str]]:
        return self.alert_store.open_identities()

    def manually_resolved_identities(self) -> set[tuple[str, str, str, str]]:
        return self.alert_store.manually_resolved_identities()

    def unpublished_notices(self, limit: int = 500) -> list[tuple[str, str, str]]:
        return self.alert_store.unpublished_notices(limit)

    def mark_published(self, derived_ids: Sequence[str]) -> None:
        self.alert_store.mark_published(derived_ids)

    # ------------------------------------------ deliveries (DeliveryStore)

    def set_recipient(self, recipient_id: str, name: str = "", email: str | None = None,
                      webhook_url: str | None = None, digest: bool = False) -> None:
        self.delivery_queue.set_recipient(recipient_id, name, email, webhook_url, digest)

    def due_deliveries(self, now: datetime, channels: Sequence[str] = ("email", "webhook"),
                       limit: int = 100) -> list[dict[str, Any]]:
        return self.delivery_queue.due_deliveries(now, channels, limit)

    def due_digests(self, now: datetime, every: timedelta) -> dict[str, list[dict[str, Any]]]:
        return self.delivery_queue.due_digests(now, every)

    def claim_delivery(self, delivery_id: str, now: datetime, lease: timedelta) -> bool:
        return self.delivery_queue.claim_delivery(delivery_id, now, lease)

    def delivery_skipped(self, delivery_id: str, why: str) -> None:
        self.delivery_queue.delivery_skipped(delivery_id, why)

    def delivery_sent(self, delivery_ids: Sequence[str], at: datetime) -> None:
        self.delivery_queue.delivery_sent(delivery_ids, at)

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime | None) -> None:
        self.delivery_queue.delivery_failed(delivery_id, error, retry_at)

    def escalate(self, now: datetime, after: timedelta) -> int:
        return self.delivery_queue.escalate(now, after)

    def deliveries(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        return self.delivery_queue.deliveries(alert_id)

    # ------------------------------------- positions and reports

    def positions(self, consumer: str, topic: str) -> dict[int, int]:
        return self.consumption.positions(consumer, topic)

    def counts(self) -> dict[str, int]:
        return self.reports.counts()

    def report(self) -> dict[str, Any]:
        return self.reports.report()
