"""The manager's review queue: evidence awaiting review on the contracts a signed-in
manager manages (or deputises on), oldest first, and their decisions, one by one or in
bulk, with the effect on the contract's totals.

Decisions are events built and checked by :class:`~svmon.api.service.IngestService`
with the manager's principal: a supplier's token, or another manager's, is refused by
the same rule that refuses it over HTTP. The queue reads the contract state the API
checks against (the journal plus what was received and not yet processed), so a
decision is shown, and counted, as soon as it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select

from svmon.api.ids import default_event_id
from svmon.api.service import Draft, IngestService, ItemError
from svmon.core.errors import InvalidInput
from svmon.core.state import ContractState
from svmon.dashboards.portal import unit_of
from svmon.dashboards.session import CHANNEL
from svmon.models.ingest import Principal
from svmon.models.repository import T
from svmon.models.tables import InboxRow, JournalEntry

ZERO = Decimal(0)
DECISIONS = {"verify": "EvidenceVerified", "reject": "EvidenceRejected"}


def _details(service: IngestService, keys: Sequence[tuple[str, str]]
             ) -> dict[tuple[str, str], dict[str, Any]]:
    """The submitting events' data (description, attachments) by (contract, event id):
    from the journal, or the inbox for evidence not processed yet."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if not keys:
        return out
    j, i = T(JournalEntry), T(InboxRow)
    with service.store.engine.connect() as conn:
        for table in (i, j):  # the journal's copy wins: it is what was applied
            for start in range(0, len(keys), 200):
                part = keys[start:start + 200]
                where = or_(*(and_(table.c.contract_id == c, table.c.event_id == e)
                              for c, e in part))
                for r in conn.execute(select(table.c.contract_id, table.c.event_id,
                                             table.c.payload).where(where)):
                    out[(r.contract_id, r.event_id)] = json.loads(r.payload)["data"]
    return out


def queue(service: IngestService, p: Principal, contract_id: str | None = None
          ) -> list[dict[str, Any]]:
    """Evidence awaiting review, oldest first. With ``contract_id``: that contract only
    (NotAllowed if it is not the manager's, NotFound if there is none)."""
    rows: list[dict[str, Any]] = []
    for cid in service.contract_ids(p, contract_id):
        state = service.views.state(cid)
        t = state.terms
        if t is None:
            continue
        for rec in state.evidence.values():
            if rec.status != "submitted":
                continue
            unit, title = unit_of(service, t.catalogue_edition, rec.measure)
            rows.append({"contract_id": cid, "title": t.title,
                         "supplier": t.supplier_name, "evidence_id": rec.evidence_id,
                         "measure": rec.measure, "measure_title": title, "unit": unit,
                         "quantity": rec.quantity, "period_start": rec.period_start,
                         "period_end": rec.period_end, "submitted_by": rec.submitted_by,
                         "submitted_at": rec.submitted_at, "event_id": rec.event_ids[0]})
    rows.sort(key=lambda r: (r["submitted_at"], r["contract_id"], r["evidence_id"]))
    details = _details(service, [(r["contract_id"], r["event_id"]) for r in rows])
    for r in rows:
        d = details.get((r["contract_id"], r["event_id"]), {})
        r["description"] = d.get("description", "")
        r["attachments"] = [(a.get("name", ""), a.get("sha256", ""))
                            for a in d.get("attachments", [])]
    return rows


def alike(rows: Sequence[dict[str, Any]], key: dict[str, Any]) -> list[dict[str, Any]]:
    """The queue's evidence like ``key``: same contract, measure and reporting period,
    which a manager checks against one statement and decides together."""
    def same(r: dict[str, Any]) -> bool:
        return all(r[k] == key[k] for k in ("contract_id", "measure", "period_start",
                                             "period_end"))

    return [r for r in rows if same(r)]


def totals(state: ContractState) -> dict[str, tuple[Decimal, Decimal]]:
    """(claimed, verified) per measure."""
    return {m: (t.claimed, t.verified) for m, t in state.totals.items()}


@dataclass
class Outcome:
    """Decisions stored, refused, and each touched measure's totals before and after."""

    decision: str
    receipts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    # (contract, measure) -> (claimed, verified) before, (claimed, verified) after
    effect: dict[tuple[str, str], tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]] \
        = field(default_factory=dict)


def decide(service: IngestService, p: Principal, items: Sequence[tuple[str, str]],
           decision: str, reason: str = "") -> Outcome:
    """Verify or reject the (contract, evidence id) items, in one transaction; a
    refused item (not this manager's, already decided) is reported and the others
    stored. A rejection needs a reason: the supplier reads it on the portal."""
    if decision not in DECISIONS:
        raise InvalidInput("decision", "verify or reject", decision)
    reason = reason.strip()
    if decision == "reject" and not reason:
        raise InvalidInput("reason", "a reason for rejecting, which the supplier reads",
                           reason)
    if not items:
        raise InvalidInput("evidence", "at least one piece of evidence chosen", "none")
    contracts = sorted({c for c, _ in items})
    before = {c: service.views.state(c) for c in contracts}
    drafts: list[tuple[int, Draft | InvalidInput]] = []
    for n, (cid, eid) in enumerate(items, start=1):
        body: dict[str, Any] = {"evidence_id": eid}
        if decision == "reject":
            body["reason"] = reason
        elif reason:
            body["note"] = reason
        try:
            drafts.append((n, service.draft(p, DECISIONS[decision], cid, body, None,
                                            default_event_id(decision, eid))))
        except InvalidInput as err:
            drafts.append((n, err))
    out = Outcome(decision)
    out.receipts, out.errors = service.accept(p, drafts, CHANNEL, partial=True)
    touched = {(cid, st.evidence[eid].measure) for cid, eid in items
               if (st := before[cid]).terms is not None and eid in st.evidence}
    after = {c: totals(service.views.state(c)) for c in contracts}
    for cid, m in sorted(touched):
        was = totals(before[cid]).get(m, (ZERO, ZERO))
        out.effect[(cid, m)] = (was, after[cid].get(m, (ZERO, ZERO)))
    return out
