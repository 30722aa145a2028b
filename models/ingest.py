"""Persistence of the ingestion side: the inbox of received events, and what the API
reads back for the parties who sent them (API tokens: ``svmon.models.tokens``).

The inbox is the durable acknowledgement of the HTTP API: a receipt is returned only
after the event's row is committed here. A relay publishes rows that the worker has
not settled yet (again, with backoff, because the embedded broker forgets everything
when it restarts); the worker settles a row in the transaction that journals or
refuses its event (``PositionStore.settle_inbox``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from svmon.core.errors import Conflict, NotFound
from svmon.models.keys import journalled, reviews
from svmon.models.repository import Repository
from svmon.models.statements import T
from svmon.models.tables import (
    ChainHead,
    ContractRow,
    DeadLetterRow,
    EvidenceRow,
    InboxRow,
    JournalEntry,
    MeasureTotalRow,
)
from svmon.models.tokens import Principal, TokenStore
from svmon.schemas import now_utc

# Principal is the tokens store's, the errors svmon.core's: names callers import from here
__all__ = ["Conflict", "Incoming", "IngestStore", "NotFound", "Principal", "receipt",
           "request_digest"]

GIVE_UP_AFTER = 12  # deliveries of an event the worker keeps finding "not yet known"
MAX_REDELIVERY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One event to receive: its wire form and a digest of what the client asked."""

    contract_id: str
    event_id: str
    type: str
    payload: str
    request_sha256: str


def request_digest(type_name: str, actor: str, data: Any) -> str:
    """Identifies a request apart from server-assigned fields (the receive time), so a
    client's retry matches its first attempt."""
    body = json.dumps([type_name, actor, data], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class IngestStore:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.engine = repo.engine
        # SQLite has one writer at a time: queue this process's writers here rather than
        # in SQLite's busy handler, which sleeps in steps of up to 100 ms
        self._writer = threading.Lock() if self.engine.dialect.name == "sqlite" \
            else contextlib.nullcontext()
        self.token_store = TokenStore(self.engine, self._writer)

    # ------------------------------------------- tokens (svmon.models.tokens)

    def create_token(self, kind: str, party: str, label: str = "") -> tuple[str, str]:
        return self.token_store.create_token(kind, party, label)

    def revoke_token(self, token_id: str) -> bool:
        return self.token_store.revoke_token(token_id)

    def tokens(self) -> list[dict[str, Any]]:
        return self.token_store.tokens()

    def principal(self, token: str) -> Principal | str:
        return self.token_store.principal(token)

    def touch_token(self, token_id: str, at: datetime) -> bool:
        return self.token_store.touch_token(token_id, at)

    # ------------------------------------------------------------------ inbox

    def receive(self, items: Sequence[Incoming], principal: Principal, channel: str
                ) -> list[tuple[dict[str, Any], bool]]:
        """Store every item or none; returns (receipt, replayed) per item.

        An event id already received on the contract with the same request is a retry:
        its original receipt comes back and nothing is stored twice. The same id with a
        different request raises :class:`Conflict`.
        """
        for attempt in range(3):
            try:
                with self._writer:
                    return self._receive_once(items, principal, channel)
            except IntegrityError:  # a concurrent request stored one of these ids first
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _receive_once(self, items: Sequence[Incoming], principal: Principal, channel: str
                      ) -> list[tuple[dict[str, Any], bool]]:
        t = T(InboxRow)
        now = now_utc()
        out: list[tuple[dict[str, Any], bool]] = []
        with self.engine.begin() as conn:
            existing = self._existing(conn, [(i.contract_id, i.event_id) for i in items])
            new_rows: list[dict[str, Any]] = []
            seen: dict[tuple[str, str], dict[str, Any]] = {}
            for i in items:
                key = (i.contract_id, i.event_id)
                old = existing.get(key) or seen.get(key)
                if old is not None:
                    if old["request_sha256"] != i.request_sha256:
                        raise Conflict("event_id", "an id not already used on this contract "
                                       "for a different request", i.event_id,
                                       contract_id=i.contract_id, event_id=i.event_id)
                    out.append((receipt(old), True))
                    continue
                row = dict(contract_id=i.contract_id, event_id=i.event_id, type=i.type,
                           payload=i.payload, request_sha256=i.request_sha256,
                           submitted_by=principal.actor, token_id=principal.token_id,
                           channel=channel, received_at=now, next_publish_at=now,
                           outcome="pending", reason="")
                new_rows.append(row)
                seen[key] = {**row, "settled_at": None}
                out.append((receipt(seen[key]), False))
            if new_rows:
                conn.execute(t.insert(), new_rows)
        return out

    def _existing(self, conn: Any, keys: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], dict[str, Any]]:
        t = T(InboxRow)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        by_contract: dict[str, list[str]] = {}
        for c, e in keys:
            by_contract.setdefault(c, []).append(e)
        for c, ids in by_contract.items():
            for r in conn.execute(select(t).where(t.c.contract_id == c,
                                                  t.c.event_id.in_(ids))).mappings():
                found[(c, r["event_id"])] = dict(r)
        return found

    def known(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(contract, event id) already used -> the digest of its request, or "" for an
        event that reached the journal another way (straight onto the topic)."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            found = {k: r["request_sha256"] for k, r in self._existing(conn, keys).items()}
            for k in journalled(conn, sorted(set(keys) - set(found))):
                found[k] = ""
        return found

    def receipt(self, contract_id: str, event_id: str) -> dict[str, Any] | None:
        t = T(InboxRow)
        with self.engine.connect() as conn:
            r = conn.execute(select(t).where(t.c.contract_id == contract_id,
                                             t.c.event_id == event_id)).mappings().first()
        return receipt(r) if r else None

    def due(self, now: datetime, limit: int = 1000) -> list[tuple[int, str, str, int]]:
        """(id, contract id, payload, attempts) of unsettled events due to (re)publish."""
        t = T(InboxRow)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(t.c.id, t.c.contract_id, t.c.payload, t.c.publish_attempts)
                .where(t.c.settled_at.is_(None), t.c.next_publish_at <= now)
                .order_by(t.c.id).limit(limit))]

    def published(self, rows: Iterable[tuple[int, int]], now: datetime,
                  redeliver: timedelta) -> None:
        """Record a publish of (id, attempts before it); the next one waits twice as long."""
        t = T(InboxRow)
        by_attempts: dict[int, list[int]] = {}
        for row_id, attempts in rows:
            by_attempts.setdefault(attempts, []).append(row_id)
        with self.engine.begin() as conn:
            for attempts, ids in by_attempts.items():
                wait = min(redeliver * 2 ** min(attempts, 16), MAX_REDELIVERY)
                conn.execute(update(t).where(t.c.id.in_(ids)).values(
                    published_at=now, publish_attempts=attempts + 1,
                    next_publish_at=now + wait))

    def give_up(self, after: int = GIVE_UP_AFTER) -> int:
        """Settle as refused the events the worker has seen and found "not yet known"
        ``after`` deliveries in a row (what they wait for was itself refused, say), with
        the worker's last reason. Events it has not seen yet are never given up."""
        t, d = T(InboxRow), T(DeadLetterRow)
        seen = exists().where(d.c.contract_id == t.c.contract_id, d.c.event_id == t.c.event_id)
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.event_id).where(
                t.c.settled_at.is_(None), t.c.publish_attempts >= after, seen)).all()
            for r in rows:
                reason = conn.execute(select(d.c.reason).where(
                    d.c.contract_id == r.contract_id, d.c.event_id == r.event_id)
                    .order_by(d.c.id.desc()).limit(1)).scalar()
                conn.execute(update(t).where(t.c.id == r.id).values(
                    settled_at=now_utc(), outcome="refused",
                    reason=f"still not accepted after {after} deliveries: {reason}"))
        return len(rows)

    def pending_ids(self, contract_id: str) -> list[int]:
        t = T(InboxRow)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(t.c.id).where(t.c.contract_id == contract_id, t.c.settled_at.is_(None))
                .order_by(t.c.id))]

    def payloads(self, ids: Sequence[int]) -> list[tuple[int, str]]:
        t = T(InboxRow)
        out: list[tuple[int, str]] = []
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                out += [(r.id, r.payload) for r in conn.execute(
                    select(t.c.id, t.c.payload).where(t.c.id.in_(list(ids[i:i + 500]))))]
        return sorted(out)

    def republish_all(self) -> int:
        """Make every unsettled event due now (after the broker lost its log)."""
        t = T(InboxRow)
        with self.engine.begin() as conn:
            return int(conn.execute(update(t).where(t.c.settled_at.is_(None))
                                    .values(next_publish_at=now_utc())).rowcount)

    def counts(self) -> dict[str, int]:
        t = T(InboxRow)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.outcome, func.count()).group_by(t.c.outcome)).all()
        return {o: int(n) for o, n in rows}

    # ---------------------------------------------------------------- reading

    def contracts_of(self, principal: Principal) -> list[dict[str, Any]]:
        c = T(ContractRow)
        where = c.c.supplier_id == principal.party if principal.kind == "supplier" else \
            or_(c.c.manager == principal.party, c.c.deputy == principal.party)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(c).where(where).order_by(c.c.contract_id)).mappings()]

    def contract_detail(self, contract_id: str) -> dict[str, Any]:
        m, e = T(MeasureTotalRow), T(EvidenceRow)
        with self.engine.connect() as conn:
            totals = [dict(r) for r in conn.execute(
                select(m).where(m.c.contract_id == contract_id).order_by(m.c.measure))
                .mappings()]
            evidence = [dict(r) for r in conn.execute(
                select(e).where(e.c.contract_id == contract_id)
                .order_by(e.c.submitted_at, e.c.evidence_id)).mappings()]
        return {"totals": totals, "evidence": evidence}

    def submissions(self, contract_ids: Sequence[str], outcome: str | None = None,
                    limit: int = 100, before: int | None = None,
                    submitted_by: str | None = None) -> list[dict[str, Any]]:
        """Received events on these contracts (or sent by ``submitted_by``, which covers
        contracts the worker has not registered yet), newest first, with the evidence's
        review status where the event concerns evidence."""
        t = T(InboxRow)
        if not contract_ids and not submitted_by:
            return []
        q = select(t).where(or_(t.c.contract_id.in_(list(contract_ids)),
                                t.c.submitted_by == (submitted_by or "")))
        if outcome:
            q = q.where(t.c.outcome == outcome)
        if before is not None:
            q = q.where(t.c.id < before)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q.order_by(t.c.id.desc()).limit(limit))
                    .mappings()]
            for r in rows:
                r["data"] = json.loads(r.pop("payload"))["data"]
            wanted = {(r["contract_id"], r["data"].get("evidence_id")) for r in rows}
            status = reviews(conn, [k for k in wanted if isinstance(k[1], str)])
        out = []
        for r in rows:
            data = r["data"]
            item = {**receipt(r), "id": r["id"], "submitted_by": r["submitted_by"],
                    "channel": r["channel"], "data": data}
            ev = status.get((r["contract_id"], data.get("evidence_id")))
            if ev is not None:
                item["evidence"] = {"status": ev["status"], "decided_by": ev["decided_by"],
                                    "decided_at": ev["decided_at"], "reason": ev["reason"]}
            out.append(item)
        return out

    def rejections(self, contract_ids: Sequence[str], limit: int = 100
                   ) -> list[dict[str, Any]]:
        """Records the stream refused on these contracts (from any channel), newest first."""
        d, j = T(DeadLetterRow), T(JournalEntry)
        if not contract_ids:
            return []
        later_accepted = select(j.c.seq).where(j.c.contract_id == d.c.contract_id,
                                               j.c.event_id == d.c.event_id).exists()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.id, d.c.contract_id, d.c.event_id, d.c.error, d.c.field,
                       d.c.reason, d.c.at, d.c.topic, d.c.partition, d.c.offset)
                .where(or_(d.c.contract_id.in_(list(contract_ids)),
                           and_(d.c.contract_id.is_(None), d.c.key.in_(list(contract_ids)))),
                       ~later_accepted)  # an event that came too early and fitted later
                .order_by(d.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def chain_length(self, contract_id: str) -> int:
        h = T(ChainHead)
        with self.engine.connect() as conn:
            n = conn.execute(select(h.c.length).where(h.c.contract_id == contract_id)).scalar()
        return int(n or 0)

    def journal_since(self, contract_id: str, after_chain_seq: int) -> list[tuple[int, str]]:
        j = T(JournalEntry)
        with self.engine.connect() as conn:
            return [(r.chain_seq, r.payload) for r in conn.execute(
                select(j.c.chain_seq, j.c.payload)
                .where(j.c.contract_id == contract_id, j.c.chain_seq > after_chain_seq)
                .order_by(j.c.chain_seq))]


def receipt(r: Any) -> dict[str, Any]:
    """What a client gets back for an event it sent (the same on every retry)."""
    status = r["outcome"] if r.get("settled_at") is not None else "pending"
    out = {"contract_id": r["contract_id"], "event_id": r["event_id"], "type": r["type"],
           "received_at": r["received_at"], "status": status}
    if status == "refused":
        out["reason"] = r["reason"]
    return out

