"""The repository: every database read and write the system makes, behind one class.

``apply_batch`` writes one processed batch in a single transaction: journal rows,
projections as absolute values from the fold's state, notices and alert changes, dead
letters and the partition positions.

Redelivery is made harmless before this point: the event-id gate (``seed_gate``) turns
records already journalled into duplicates, so a batch folded again carries no journal
rows and no new facts. A ``Batch`` object applied twice as it is, without the gate, is
refused by the journal's unique key (contract, event id) and rolls back whole.

Positions record the last offset of the latest batch applied per partition: after a
redelivery they can be lower than before, which only makes a worker read again (the
worker resumes from the earlier of this and the broker's committed offset).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Engine,
    Table,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from svmon.alerts.lifecycle import AlertChange, Identity, changes_for, identity
from svmon.alerts.routing import escalation_recipients, recipients_for
from svmon.audit.chain import GENESIS, ChainRow, link_hash
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.errors import InvalidInput, SvmonError
from svmon.core.idempotence import EventGate
from svmon.core.rules import canonical, shortfall
from svmon.core.state import ContractState, EvidenceRecord
from svmon.models import keys as keys_lookup
from svmon.models.bulk import BulkWriter
from svmon.models.tables import (
    AlertRow,
    ChainHead,
    ContractRow,
    DeadLetterRow,
    DeliveryRow,
    EvidenceRow,
    InboxRow,
    JournalEntry,
    MeasureRow,
    MeasureTotalRow,
    MilestoneRow,
    NoticeRow,
    PositionRow,
    RecipientRow,
)
from svmon.schemas import decode_event, derived_to_dict, now_utc


def T(model: type[SQLModel]) -> Table:
    """A table model's Core ``Table`` (SQLModel declares ``__table__`` on the class only at
    run time)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table
NOT_RESOLVED = ("open", "acknowledged")


class NotAllowed(SvmonError, PermissionError):
    """The actor may not do this (for example acknowledge another manager's alert)."""


@dataclass
class Batch:
    """What one batch of the stream produced, ready to be written."""

    consumer: str
    journal: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, ContractState] = field(default_factory=dict)
    evidence: dict[str, set[str]] = field(default_factory=dict)  # contract -> evidence ids
    milestones_changed: set[str] = field(default_factory=set)  # contracts to rewrite
    # each contract's state before the batch (None: new to the worker): only what
    # changed since is written; a contract missing here has every row written
    before: dict[str, ContractState | None] = field(default_factory=dict)
    derived: list[ev.Derived] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    # (contract, event id, outcome, reason) of every event decided: settles the inbox
    settled: list[tuple[str, str, str, str]] = field(default_factory=list)

    def rewrite(self, contract_id: str) -> None:
        """Write every row of this contract, not only what changed since ``before``
        (its evidence rows: those its state in this batch holds)."""
        self.before[contract_id] = None
        self.milestones_changed.add(contract_id)
        state = self.states.get(contract_id)
        if state is not None and state.evidence:
            self.evidence.setdefault(contract_id, set()).update(state.evidence)

    def touch_evidence(self, contract_id: str, evidence_id: str) -> None:
        self.evidence.setdefault(contract_id, set()).add(evidence_id)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset > self.positions.get(key, -1):
            self.positions[key] = offset


class Repository:
    def __init__(self, engine: Engine, catalogue: Catalogue, *,
                 checkpoint_behind: bool = False) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self._dialect = engine.dialect.name
        self.checkpoint_behind = checkpoint_behind and self._dialect == "sqlite"
        self._last_restart = -1e9  # monotonic time of the last log restart
        self._bulk = BulkWriter(engine.dialect)  # the batch writes' statements, compiled

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

    # ---------------------------------------------------------------- schema

    def create_schema(self) -> str:
        """Bring the schema to the newest revision: create it in an empty database,
        upgrade an older one (see ``svmon.models.migrate``); returns the revision."""
        from svmon.models.migrate import ensure_schema

        return ensure_schema(self.engine, SQLModel.metadata)

    def save_catalogue(self) -> None:
        rows = [dict(edition=m.edition, code=m.code, set_name=m.set_name, theme=m.theme,
                     outcome=m.outcome, category=m.category, title=m.title, unit=m.unit,
                     proxy_gbp=m.proxy_gbp, illustrative=m.illustrative, source=m.source)
                for m in self.catalogue]
        with self.engine.begin() as conn:
            self._upsert(conn, T(MeasureRow), rows, ("edition", "code"))

    # -------------------------------------------------------------- dialects

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert(table) if self._dialect == "postgresql"
                else sqlite.insert(table))

    def _upsert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                keys: Sequence[str]) -> None:
        if not rows:
            return

        def build() -> Any:
            stmt = self._insert(table)
            cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
            return stmt.on_conflict_do_update(index_elements=list(keys), set_=cols)

        self._bulk.execute(conn, ("upsert", table.name, tuple(keys)), build, rows)

    def _insert_ignore(self, conn: Connection, table: Table,
                       rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
        self._bulk.execute(
            conn, ("insert-ignore", table.name, tuple(keys)),
            lambda: self._insert(table).on_conflict_do_nothing(index_elements=list(keys)),
            rows)

    # ----------------------------------------------------------------- writes

    def apply_batch(self, b: Batch) -> None:
        now = now_utc()
        with self.engine.begin() as conn:
            self._append_journal(conn, b.journal)
            self._write_states(conn, b)
            self._write_derived(conn, b.derived, b.states)
            self._insert_ignore(conn, T(DeadLetterRow), b.dead_letters,
                                ("topic", "partition", "offset", "raw_sha256"))
            self._settle_inbox(conn, b.settled, now)
            self._upsert(conn, T(PositionRow), [
                dict(consumer=b.consumer, topic=t, partition=p, offset=o, updated_at=now)
                for (t, p), o in sorted(b.positions.items())
            ], ("consumer", "topic", "partition"))

    def _settle_inbox(self, conn: Connection, settled: Sequence[tuple[str, str, str, str]],
                      now: datetime) -> None:
        """Mark received events decided, in the transaction that journals or refuses them
        (events that came straight onto the topic have no inbox row: nothing matches)."""
        if not settled:
            return
        t = T(InboxRow)
        contracts = sorted({c for c, _, _, _ in settled})
        waiting = {(r.contract_id, r.event_id) for r in conn.execute(  # one read per batch,
            select(t.c.contract_id, t.c.event_id).where(  # not an UPDATE per event
                t.c.contract_id.in_(contracts), t.c.settled_at.is_(None)))}
        rows = [dict(c=c, e=e, o=o, r=r) for c, e, o, r in settled if (c, e) in waiting]
        if rows:
            stmt = update(t).where(t.c.contract_id == bindparam("c"),
                                   t.c.event_id == bindparam("e"), t.c.settled_at.is_(None)) \
                .values(settled_at=now, outcome=bindparam("o"), reason=bindparam("r"))
            conn.execute(stmt, rows)

    def _append_journal(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append the events not journalled yet, each linked into its contract's chain."""
        if not rows:
            return
        j, h = T(JournalEntry), T(ChainHead)
        contracts = sorted({r["contract_id"] for r in rows})
        heads = {r.contract_id: (r.length, r.head_hash) for r in conn.execute(
            select(h).where(h.c.contract_id.in_(contracts)))}
        new = []
        for r in rows:  # the event-id gate let through only events not journalled yet
            length, prev = heads.get(r["contract_id"], (0, GENESIS))
            n = length + 1
            digest = link_hash(prev, r["contract_id"], n, r["event_id"], r["recorded_at"],
                               r["actor"], r["payload"])
            new.append({**r, "chain_seq": n, "prev_hash": prev, "hash": digest})
            heads[r["contract_id"]] = (n, digest)
        if new:
            self._bulk.execute(conn, ("insert", j.name), j.insert, new)
            self._upsert(conn, h, [dict(contract_id=c, length=n, head_hash=d)
                                   for c, (n, d) in sorted(heads.items())], ("contract_id",))

    def _write_states(self, conn: Connection, b: Batch) -> None:
        contracts, moved, totals, evidence = [], [], [], []
        milestones: list[dict[str, Any]] = []
        for cid, s in b.states.items():
            if s.terms is None:
                continue
            t = s.terms
            prev = b.before.get(cid)
            if prev is not None and prev.terms == t:  # the row is there: only time moved
                moved.append(dict(b_id=cid, b_as_of=s.as_of,
                                  b_last_evidence_at=s.last_evidence_at,
                                  b_state_version=s.version))
            else:
                contracts.append(dict(
                    contract_id=cid, title=t.title, buyer=t.buyer,
                    buyer_department=t.buyer_department, supplier_id=t.supplier_id,
                    supplier_name=t.supplier_name, start=t.start, end=t.end,
                    value_gbp=t.value_gbp, catalogue_edition=t.catalogue_edition,
                    manager=t.manager, deputy=t.deputy, supplier_contact=t.supplier_contact,
                    reporting_cadence_days=t.reporting_cadence_days, as_of=s.as_of,
                    last_evidence_at=s.last_evidence_at, state_version=s.version))
            totals.extend(self.total_rows(s, changed_measures(prev, s)))
            if cid in b.milestones_changed:  # most events leave the milestones alone
                old = prev.milestones if prev is not None else {}
                milestones.extend(dict(contract_id=cid, milestone_id=m.milestone_id,
                                       measure=m.measure, due=m.due,
                                       cumulative_target=m.cumulative_target,
                                       status=m.status)
                                  for m in s.milestones.values()
                                  if old.get(m.milestone_id) != m)
            for eid in sorted(b.evidence.get(cid, ())):
                r = s.evidence[eid]
                evidence.append(dict(
                    contract_id=cid, evidence_id=eid, measure=r.measure, quantity=r.quantity,
                    period_start=r.period_start, period_end=r.period_end, status=r.status,
                    submitted_by=r.submitted_by, submitted_at=r.submitted_at,
                    submitted_event_id=r.event_ids[0] or None,
                    decided_by=r.decided_by, decided_at=r.decided_at, reason=r.reason))
        self._upsert(conn, T(ContractRow), contracts, ("contract_id",))
        c = T(ContractRow)
        self._bulk.execute(conn, ("contract-moved",), lambda: update(c).where(
            c.c.contract_id == bindparam("b_id")).values(
            as_of=bindparam("b_as_of"), last_evidence_at=bindparam("b_last_evidence_at"),
            state_version=bindparam("b_state_version")), moved)
        self._upsert(conn, T(MeasureTotalRow), totals, ("contract_id", "measure"))
        self._upsert(conn, T(MilestoneRow), milestones, ("contract_id", "milestone_id"))
        self._upsert(conn, T(EvidenceRow), evidence, ("contract_id", "evidence_id"))

    def total_rows(self, s: ContractState, measures: Iterable[str] | None = None
                   ) -> list[dict[str, Any]]:
        """Totals per measure in units and £ (units × the edition's proxy value); of
        ``measures`` only when given."""
        assert s.terms is not None
        rows = []
        for m in s.measures() if measures is None else measures:
            measure = self.catalogue.measure(s.terms.catalogue_edition, m)
            t = s.totals_for(m)
            c = s.commitments.get(m)
            rows.append(dict(
                contract_id=s.contract_id, measure=m,
                target=c.target if c else None, claimed=t.claimed, verified=t.verified,
                proxy_gbp=measure.proxy_gbp,
                target_gbp=measure.value_gbp(c.target) if c else None,
                claimed_gbp=measure.value_gbp(t.claimed),
                verified_gbp=measure.value_gbp(t.verified),
                shortfall=shortfall(c.target, t.verified) if c else None,
                at_risk=m in s.at_risk, target_met=m in s.met))
        return rows

    def _write_derived(self, conn: Connection, derived: Sequence[ev.Derived],
                       states: Mapping[str, ContractState]) -> None:
        """Notices for the outbox, and the alert changes they cause, for a whole batch.

        The batch's contracts' unresolved alerts are read once; the changes are then
        worked through in memory in order (so a raise, a resolve and a raise again in
        one batch give what they would one by one), and written with one statement per
        kind of write: a few round trips a batch instead of several per change."""
        self._insert_ignore(conn, T(NoticeRow), [
            dict(derived_id=d.derived_id, contract_id=d.contract_id, kind=d.kind,
                 measure=d.measure, at=d.at, body=json.dumps(derived_to_dict(d)))
            for d in derived], ("derived_id",))
        changes = [(c, d) for d in derived for c in changes_for(d)]
        if changes:
            self._apply_alerts(conn, changes, states)

    def _channels(self, conn: Connection) -> dict[str, list[str]]:
        """recipient -> the channels configured for them."""
        r = T(RecipientRow)
        out = {}
        for row in conn.execute(select(r)):
            if row.digest and row.email:
                out[row.recipient_id] = ["digest"]
            else:
                out[row.recipient_id] = [c for c, v in (("email", row.email),
                                                        ("webhook", row.webhook_url)) if v]
        return out

    def _apply_alerts(self, conn: Connection, changes: Sequence[tuple[AlertChange, ev.Derived]],
                      states: Mapping[str, ContractState]) -> None:
        a = T(AlertRow)
        now = now_utc()
        unresolved: dict[Identity, list[dict[str, Any]]] = {}
        for r in conn.execute(select(a.c.alert_id, a.c.contract_id, a.c.measure, a.c.kind,
                                     a.c.subject, a.c.raised_by, a.c.raise_count).where(
                a.c.contract_id.in_(sorted({c.contract_id for c, _ in changes})),
                a.c.status.in_(NOT_RESOLVED))):
            unresolved.setdefault(identity(r.contract_id, r.measure, r.kind, r.subject),
                                  []).append(dict(r._mapping))
        raises = sorted({c.derived_id for c, _ in changes if c.action == "raise"})
        seen = {r[0] for r in conn.execute(select(a.c.alert_id).where(
            a.c.alert_id.in_(raises)))} if raises else set()  # raises applied before
        new: dict[str, dict[str, Any]] = {}  # alert id -> the row to insert
        refreshed: dict[str, dict[str, Any]] = {}  # existing alerts raised again
        resolved: dict[str, dict[str, Any]] = {}  # existing alerts resolved
        deliveries: list[dict[str, Any]] = []
        channels = self._channels(conn)
        for c, d in changes:
            rows = unresolved.get(c.identity, [])
            if c.action == "resolve":
                for row in rows:
                    change = dict(status="resolved", resolved_at=c.at, resolved_by=c.derived_id)
                    if row["alert_id"] in new:
                        new[row["alert_id"]].update(change)
                    else:
                        resolved[row["alert_id"]] = {"b_id": row["alert_id"],
                                                     **{f"b_{k}": v for k, v in change.items()}}
                unresolved.pop(c.identity, None)
                continue
            detail = json.dumps(derived_to_dict(d))
            if rows:  # already open: refresh it, no new delivery (no storms)
                row = rows[0]
                if row["raised_by"] != c.derived_id:
                    row.update(subject=c.subject, last_raised_at=c.at, raised_by=c.derived_id,
                               raise_count=row["raise_count"] + 1, detail=detail)
                    if row["alert_id"] not in new:
                        refreshed[row["alert_id"]] = {
                            "b_id": row["alert_id"], **{f"b_{k}": row[k] for k in (
                                "subject", "last_raised_at", "raised_by", "raise_count",
                                "detail")}}
                continue
            if c.derived_id in seen or c.derived_id in new:
                continue  # this very raise was applied before (a batch written twice)
            row = dict(alert_id=c.derived_id, contract_id=c.contract_id, measure=c.measure,
                       kind=c.kind, severity=c.severity, subject=c.subject, status="open",
                       raised_at=c.at, raised_by=c.derived_id, last_raised_at=c.at,
                       raise_count=1, detail=detail, created_at=now, resolved_at=None,
                       resolved_by=None)
            new[c.derived_id] = row
            unresolved[c.identity] = [row]
            state = states.get(c.contract_id)
            if state is not None and state.terms is not None:
                deliveries.extend(self._deliveries(
                    c.derived_id, recipients_for(c.kind, state.terms), channels, now,
                    escalation=False))
        if new:
            self._bulk.execute(conn, ("insert", a.name), a.insert, list(new.values()))
        for rows_, cols in ((refreshed, ("subject", "last_raised_at", "raised_by",
                                          "raise_count", "detail")),
                            (resolved, ("status", "resolved_at", "resolved_by"))):
            if rows_:  # still unresolved: a manager may have resolved it meanwhile
                conn.execute(update(a).where(a.c.alert_id == bindparam("b_id"), or_(
                    *(a.c.status == st for st in NOT_RESOLVED))).values(
                    {k: bindparam(f"b_{k}") for k in cols}), list(rows_.values()))
        self._insert_ignore(conn, T(DeliveryRow), deliveries, ("delivery_id",))

    def _deliveries(self, alert_id: str, people: Sequence[str],
                    channels: Mapping[str, list[str]], now: datetime,
                    escalation: bool) -> list[dict[str, Any]]:
        return [dict(delivery_id=f"{alert_id}|{p}|{ch}", alert_id=alert_id, recipient_id=p,
                     channel=ch, status="pending", attempts=0, next_attempt_at=now,
                     created_at=now, escalation=escalation)
                for p in people for ch in channels.get(p, ())]

    def _queue(self, conn: Connection, alert_id: str, people: Sequence[str],
               channels: Mapping[str, list[str]], now: datetime, escalation: bool) -> None:
        self._insert_ignore(conn, T(DeliveryRow),
                            self._deliveries(alert_id, people, channels, now, escalation),
                            ("delivery_id",))

    # ------------------------------------------------------------ the inbox

    def set_recipient(self, recipient_id: str, name: str = "", email: str | None = None,
                      webhook_url: str | None = None, digest: bool = False) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, T(RecipientRow), [dict(
                recipient_id=recipient_id, name=name, email=email, webhook_url=webhook_url,
                digest=digest)], ("recipient_id",))

    def alerts(self, status: str | None = None, contract_id: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
        a = T(AlertRow)
        q = select(a).order_by(a.c.raised_at.desc(), a.c.alert_id).limit(limit)
        if status == "unresolved":
            q = q.where(a.c.status.in_(NOT_RESOLVED))
        elif status and status != "all":
            q = q.where(a.c.status == status)
        if contract_id:
            q = q.where(a.c.contract_id == contract_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def _decide_alert(self, alert_id: str, by: str, to: str) -> dict[str, Any]:
        a, c = T(AlertRow), T(ContractRow)
        now = now_utc()
        with self.engine.begin() as conn:
            row = conn.execute(select(a.c.status, c.c.manager, c.c.deputy, c.c.contract_id)
                               .join(c, c.c.contract_id == a.c.contract_id)
                               .where(a.c.alert_id == alert_id)).first()
            if row is None:
                raise InvalidInput("alert_id", "the id of an alert in the inbox", alert_id)
            if by not in {row.manager, row.deputy} - {""}:
                raise NotAllowed(f"{by!r} does not manage contract {row.contract_id!r} "
                                 f"(its manager is {row.manager!r})")
            if row.status == "resolved" or (to == "acknowledged" and
                                            row.status == "acknowledged"):
                return dict(alert_id=alert_id, status=row.status, changed=False)
            values: dict[str, Any] = (
                dict(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
                if to == "acknowledged" else
                dict(status="resolved", resolved_at=now, resolved_by=by,
                     resolved_manually=True))
            done = conn.execute(update(a).where(a.c.alert_id == alert_id,
                                                a.c.status.in_(NOT_RESOLVED)).values(**values))
            if done.rowcount != 1:  # resolved by the stream meanwhile
                return dict(alert_id=alert_id, status="resolved", changed=False)
            return dict(alert_id=alert_id, status=to, changed=True)

    def acknowledge(self, alert_id: str, by: str) -> dict[str, Any]:
        """The contract's manager (or deputy) acknowledges; anyone else is refused."""
        return self._decide_alert(alert_id, by, "acknowledged")

    def resolve(self, alert_id: str, by: str) -> dict[str, Any]:
        return self._decide_alert(alert_id, by, "resolved")

    def manually_resolved_identities(self) -> set[tuple[str, str, str, str]]:
        return self._alert_identities(T(AlertRow).c.resolved_manually.is_(True))

    # ------------------------------------------------------------ deliveries

    def due_deliveries(self, now: datetime, channels: Sequence[str] = ("email", "webhook"),
                       limit: int = 100) -> list[dict[str, Any]]:
        """Pending deliveries on these channels whose time has come, with their alert,
        contract and recipient."""
        d, a, c, r = T(DeliveryRow), T(AlertRow), T(ContractRow), T(RecipientRow)
        q = (select(d.c.delivery_id, d.c.channel, d.c.attempts, d.c.escalation,
                    a.c.alert_id, a.c.kind, a.c.severity, a.c.measure, a.c.subject,
                    a.c.status.label("alert_status"), a.c.raised_at, a.c.detail,
                    c.c.contract_id, c.c.title, c.c.supplier_name, c.c.manager,
                    r.c.recipient_id, r.c.name, r.c.email, r.c.webhook_url)
             .join(a, a.c.alert_id == d.c.alert_id)
             .join(c, c.c.contract_id == a.c.contract_id)
             .join(r, r.c.recipient_id == d.c.recipient_id)
             .where(d.c.status == "pending", d.c.next_attempt_at <= now,
                    d.c.channel.in_([c for c in channels if c != "digest"]))
             .order_by(d.c.next_attempt_at, d.c.delivery_id).limit(limit))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(q).mappings()]

    def due_digests(self, now: datetime, every: timedelta) -> dict[str, list[dict[str, Any]]]:
        """recipient -> pending digest items, for recipients whose oldest item has waited
        ``every`` (one email a day by default)."""
        d, a, r = T(DeliveryRow), T(AlertRow), T(RecipientRow)
        q = (select(d.c.delivery_id, d.c.created_at, d.c.attempts, a.c.alert_id, a.c.kind,
                    a.c.measure, a.c.contract_id, a.c.subject, a.c.raised_at,
                    r.c.recipient_id, r.c.email, r.c.name)
             .join(a, a.c.alert_id == d.c.alert_id)
             .join(r, r.c.recipient_id == d.c.recipient_id)
             .where(d.c.status == "pending", d.c.channel == "digest",
                    d.c.next_attempt_at <= now, r.c.email.is_not(None))
             .order_by(d.c.created_at, d.c.delivery_id))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                out.setdefault(row["recipient_id"], []).append(dict(row))
        return {k: v for k, v in out.items() if v[0]["created_at"] <= now - every}

    def claim_delivery(self, delivery_id: str, now: datetime, lease: timedelta) -> bool:
        """Take a due delivery for ``lease`` (two dispatchers never send the same row)."""
        d = T(DeliveryRow)
        with self.engine.begin() as conn:
            done = conn.execute(update(d).where(
                d.c.delivery_id == delivery_id, d.c.status == "pending",
                d.c.next_attempt_at <= now).values(next_attempt_at=now + lease))
            return done.rowcount == 1

    def delivery_skipped(self, delivery_id: str, why: str) -> None:
        d = T(DeliveryRow)
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id == delivery_id,
                                         d.c.status == "pending")
                         .values(status="skipped", last_error=why))

    def delivery_sent(self, delivery_ids: Sequence[str], at: datetime) -> None:
        d, a = T(DeliveryRow), T(AlertRow)
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id.in_(list(delivery_ids)),
                                         d.c.status == "pending")
                         .values(status="sent", sent_at=at, attempts=d.c.attempts + 1))
            alert_ids = select(d.c.alert_id).where(d.c.delivery_id.in_(list(delivery_ids)))
            conn.execute(update(a).where(a.c.alert_id.in_(alert_ids),
                                         a.c.delivered_at.is_(None)).values(delivered_at=at))

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime | None) -> None:
        """One failed attempt: try again at ``retry_at``, or give up (None)."""
        d = T(DeliveryRow)
        values: dict[str, Any] = dict(attempts=d.c.attempts + 1, last_error=error[:2000])
        if retry_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id == delivery_id,
                                         d.c.status == "pending").values(**values))

    def escalate(self, now: datetime, after: timedelta) -> int:
        """Alerts open (not acknowledged) in the inbox for longer than ``after`` go to the
        deputy (inbox time, not the log time the fact refers to)."""
        a = T(AlertRow)
        with self.engine.begin() as conn:
            c = T(ContractRow)
            stale = conn.execute(select(a.c.alert_id, c.c.deputy, c.c.manager)
                                 .join(c, c.c.contract_id == a.c.contract_id).where(
                a.c.status == "open", a.c.severity == "warning",
                a.c.escalated_at.is_(None), a.c.created_at <= now - after)).all()
            if not stale:
                return 0
            channels = self._channels(conn)
            for alert_id, deputy, manager in stale:
                self._queue(conn, alert_id, escalation_recipients(manager, deputy), channels,
                            now, escalation=True)
                conn.execute(update(a).where(a.c.alert_id == alert_id)
                             .values(escalated_at=now))
            return len(stale)

    def deliveries(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        d = T(DeliveryRow)
        q = select(d).order_by(d.c.created_at, d.c.delivery_id)
        if alert_id:
            q = q.where(d.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # ------------------------------------------------------------------ reads

    def seed_gate(self, keys: Iterable[tuple[str, str]]) -> EventGate:
        """An event-id gate that knows which of these (contract, event) ids were journalled
        (with their events) or refused by the fold before."""
        gate, _ = self.before_batch(keys, ())
        return gate

    def before_batch(self, keys: Iterable[tuple[str, str]],
                     evidence_keys: Iterable[tuple[str, str]]
                     ) -> tuple[EventGate, dict[str, dict[str, EvidenceRecord]]]:
        """What a batch reads before its fold, on one connection: the event-id gate of
        ``keys`` (:meth:`seed_gate`) and the evidence ``evidence_keys`` name
        (:meth:`evidence_records`)."""
        gate = EventGate()
        wanted = sorted(set(keys))
        named = sorted(set(evidence_keys))
        if not wanted and not named:
            return gate, {}
        with self.engine.connect() as conn:
            if wanted:
                for payload in keys_lookup.journalled(conn, wanted).values():
                    gate.seed_accepted(decode_event(payload))
                for key in keys_lookup.refused(conn, wanted):
                    gate.seed_refused(key)
            return gate, _records(keys_lookup.evidence(conn, named)) if named else {}

    def evidence_records(self, keys: Iterable[tuple[str, str]]
                         ) -> dict[str, dict[str, EvidenceRecord]]:
        """The evidence recorded under these (contract, evidence) ids, by contract, as
        the fold holds it. Its event ids are the submitting event's alone: the decisions'
        are in the journal, and the event-id gate recognises every journalled event
        before the fold would look."""
        return self.before_batch((), keys)[1]

    def state_versions(self, contract_ids: Iterable[str]) -> dict[str, int]:
        ids = list(contract_ids)
        if not ids:
            return {}
        c = T(ContractRow)
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.c.contract_id, c.c.state_version)
                                .where(c.c.contract_id.in_(ids)))
            return {r.contract_id: r.state_version for r in rows}

    def journal_events(self, contract_id: str | None = None,
                       until: datetime | None = None) -> Iterator[ev.ContractEvent]:
        """The journal in the order events were first applied, decoded to core events."""
        j = T(JournalEntry)
        q = select(j.c.payload).order_by(j.c.seq)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        if until is not None:
            q = q.where(j.c.recorded_at <= until)
        with self.engine.connect() as conn:
            for (payload,) in conn.execution_options(yield_per=2000).execute(q):
                yield decode_event(payload)

    def live_totals(self) -> dict[tuple[str, str], dict[str, Any]]:
        t = T(MeasureTotalRow)
        with self.engine.connect() as conn:
            return {(r["contract_id"], r["measure"]): dict(r)
                    for r in conn.execute(select(t)).mappings()}

    def expected_totals(self, states: Iterable[ContractState]
                        ) -> dict[tuple[str, str], dict[str, Any]]:
        """The totals rows these states would write (what a replay compares with live)."""
        return {(r["contract_id"], r["measure"]): r
                for s in states if s.terms is not None for r in self.total_rows(s)}

    def open_alert_identities(self) -> set[tuple[str, str, str, str]]:
        """Alerts not resolved, by identity (see ``svmon.alerts.lifecycle.identity``)."""
        return self._alert_identities(T(AlertRow).c.status.in_(NOT_RESOLVED))

    def _alert_identities(self, where: Any) -> set[tuple[str, str, str, str]]:
        a = T(AlertRow)
        with self.engine.connect() as conn:
            return {identity(r.contract_id, r.measure, r.kind, r.subject) for r in conn.execute(
                select(a.c.contract_id, a.c.measure, a.c.kind, a.c.subject).where(where))}

    def chain_rows(self, contract_id: str | None = None) -> Iterator[ChainRow]:
        j = T(JournalEntry)
        q = select(j.c.seq, j.c.contract_id, j.c.chain_seq, j.c.event_id, j.c.recorded_at,
                   j.c.actor, j.c.payload, j.c.prev_hash, j.c.hash).order_by(j.c.seq)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=2000).execute(q):
                yield ChainRow(*r)

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        h = T(ChainHead)
        with self.engine.connect() as conn:
            return {r.contract_id: (r.length, r.head_hash) for r in conn.execute(select(h))}

    def positions(self, consumer: str, topic: str) -> dict[int, int]:
        """partition -> last offset written to the database by ``consumer``."""
        p = T(PositionRow)
        with self.engine.connect() as conn:
            return {r.partition: r.offset for r in conn.execute(
                select(p.c.partition, p.c.offset).where(p.c.consumer == consumer,
                                                        p.c.topic == topic))}

    def journal_rows(self, event_id: str | None = None, contract_id: str | None = None,
                     last: int | None = None) -> list[dict[str, Any]]:
        """Journal rows as stored (audit and diagnostics), in order; optionally one event
        id, one contract, or only the ``last`` rows."""
        j = T(JournalEntry)
        q = select(j).order_by(j.c.seq.desc() if last else j.c.seq)
        if event_id is not None:
            q = q.where(j.c.event_id == event_id)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        if last:
            q = q.limit(last)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        return rows[::-1] if last else rows

    def contract_ids(self) -> list[str]:
        c = T(ContractRow)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(c.c.contract_id).order_by(c.c.contract_id))]

    def unpublished_notices(self, limit: int = 500) -> list[tuple[str, str, str]]:
        n = T(NoticeRow)
        with self.engine.connect() as conn:
            rows = conn.execute(select(n.c.derived_id, n.c.contract_id, n.c.body)
                                .where(n.c.published_at.is_(None))
                                .order_by(n.c.at, n.c.derived_id).limit(limit))
            return [tuple(r) for r in rows]

    def mark_published(self, derived_ids: Sequence[str]) -> None:
        if not derived_ids:
            return
        n = T(NoticeRow)
        with self.engine.begin() as conn:
            conn.execute(update(n).where(n.c.derived_id.in_(list(derived_ids)))
                         .values(published_at=now_utc()))

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        out = {}
        with self.engine.connect() as conn:
            for name, model in (("journal", JournalEntry), ("contracts", ContractRow),
                                ("dead_letters", DeadLetterRow), ("notices", NoticeRow)):
                out[name] = conn.execute(select(func.count()).select_from(T(model))).scalar_one()
            a = T(AlertRow)
            out["open_alerts"] = conn.execute(select(func.count()).select_from(a)
                                              .where(a.c.status.in_(NOT_RESOLVED))
                                              ).scalar_one()
        return out

    def report(self) -> dict[str, Any]:
        """Every contract's totals per measure and its open alerts (for scripts and tests)."""
        c, t, a = T(ContractRow), T(MeasureTotalRow), T(AlertRow)
        with self.engine.connect() as conn:
            contracts = conn.execute(select(c).order_by(c.c.contract_id)).mappings().all()
            totals = conn.execute(select(t).order_by(t.c.contract_id, t.c.measure)).mappings()
            alerts = conn.execute(select(a).where(a.c.status.in_(NOT_RESOLVED))
                                  .order_by(a.c.contract_id, a.c.raised_at, a.c.alert_id)
                                  ).mappings()
            by_contract: dict[str, dict[str, Any]] = {}
            for r in contracts:
                by_contract[r["contract_id"]] = {
                    "contract_id": r["contract_id"], "title": r["title"],
                    "buyer": r["buyer"], "buyer_department": r["buyer_department"],
                    "supplier_id": r["supplier_id"], "supplier_name": r["supplier_name"],
                    "manager": r["manager"], "start": r["start"].isoformat(),
                    "end": r["end"].isoformat(), "value_gbp": _num(r["value_gbp"]),
                    "catalogue_edition": r["catalogue_edition"],
                    "as_of": r["as_of"].isoformat() if r["as_of"] else None,
                    "measures": [], "open_alerts": [],
                }
            for r in totals:
                by_contract[r["contract_id"]]["measures"].append({
                    k: _num(r[k]) for k in ("measure", "target", "claimed", "verified",
                                            "proxy_gbp", "target_gbp", "claimed_gbp",
                                            "verified_gbp", "shortfall", "at_risk",
                                            "target_met")})
            for r in alerts:
                by_contract[r["contract_id"]]["open_alerts"].append({
                    "alert_id": r["alert_id"], "kind": r["kind"], "measure": r["measure"],
                    "severity": r["severity"], "status": r["status"],
                    "subject": r["subject"], "raised_at": r["raised_at"].isoformat(),
                    "detail": json.loads(r["detail"])})
        return {"contracts": list(by_contract.values()),
                "summary": self._summary(by_contract.values())}

    @staticmethod
    def _summary(contracts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        cs = list(contracts)
        alerts = [a for c in cs for a in c["open_alerts"]]
        kinds: dict[str, int] = {}
        for a in alerts:
            kinds[a["kind"]] = kinds.get(a["kind"], 0) + 1
        return {"contracts": len(cs), "open_alerts": len(alerts), "open_alerts_by_kind": kinds,
                "contracts_with_open_alerts": sum(1 for c in cs if c["open_alerts"])}


def _records(rows: Iterable[Any]) -> dict[str, dict[str, EvidenceRecord]]:
    out: dict[str, dict[str, EvidenceRecord]] = {}
    for r in rows:
        out.setdefault(r.contract_id, {})[r.evidence_id] = EvidenceRecord(
            evidence_id=r.evidence_id, measure=r.measure, quantity=r.quantity,
            period_start=r.period_start, period_end=r.period_end, status=r.status,
            submitted_by=r.submitted_by, submitted_at=r.submitted_at,
            # "" for a submitting event not recorded (a row written by a release before
            # revision 0003 after the migration ran): never an event's id, so a decision
            # folded onto the record cannot be taken for the submission
            event_ids=(r.submitted_event_id or "",),
            decided_by=r.decided_by, decided_at=r.decided_at, reason=r.reason)
    return out


def changed_measures(before: ContractState | None, after: ContractState) -> list[str]:
    """The measures whose total row differs between two states of a contract (all of
    them when there is no earlier state, or its terms or catalogue edition differ)."""
    if before is None or before.terms is None or after.terms is None \
            or before.terms.catalogue_edition != after.terms.catalogue_edition:
        return after.measures()

    def row(s: ContractState, m: str) -> tuple[Any, ...]:
        # whether the measure is in the state at all is part of its row: one that enters
        # and is back at zero within a batch still has a row (the replay expects one)
        return (m in s.totals or m in s.commitments, s.commitments.get(m), s.totals_for(m),
                m in s.at_risk, m in s.met)

    return [m for m in after.measures() if row(before, m) != row(after, m)]


def _num(v: Any) -> Any:
    """Decimals as strings in JSON, without float rounding, trailing zeros or an
    exponent (0.0000006, not 6E-7)."""
    if isinstance(v, Decimal):
        return format(canonical(v), "f")
    return v
