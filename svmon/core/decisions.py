"""Decisions on evidence: who may verify, reject or retract it, and from which status.

The rules, one table (``RULES``; docs/measurement.md shows it to people). The actor is
fixed by the decision (:mod:`svmon.core.authority`): the contract's manager or deputy
verifies and rejects, its own supplier retracts; anyone else is refused before these
rules are asked.

=========  ==========================  ==========================  ==========================
status     verify (manager)            reject (manager)            retract (supplier)
=========  ==========================  ==========================  ==========================
submitted  verified                    rejected                    retracted
verified   already decided             rejected (a second look)    the manager's decision
rejected   not from this status        already decided             the manager's decision
retracted  not from this status        not from this status        already decided
=========  ==========================  ==========================  ==========================

* **already decided**: the evidence already has the status this decision would give
  it. Refused (:class:`AlreadyDecided`), so the log holds each decision once.
* **the manager's decision**: once the manager has verified or rejected evidence, the
  supplier cannot undo that by retracting it; the manager can reject verified
  evidence on a second look. Refused (:class:`ManagersDecision`).
* **not from this status**: rejected and retracted evidence are final; the supplier
  submits new evidence instead. Refused (:class:`~svmon.core.errors.RejectedEvent`).

Whatever the status, the same event again (a retry or a redelivery: an event id the
evidence record holds) changes nothing and is not refused: it was decided when it was
first applied.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.errors import RejectedEvent
from svmon.core.handling import NOTHING, Result, bump, evidence_of, reject, terms_of
from svmon.core.judgement import check_met, track
from svmon.core.rules import Policy
from svmon.core.state import ContractState, EvidenceRecord, EvidenceStatus

Decision = ev.EvidenceVerified | ev.EvidenceRejected | ev.EvidenceRetracted
Verdict = Literal["allowed", "already decided", "the manager's decision",
                  "not from this status"]

# the status each decision gives the evidence
OUTCOME: dict[type[Decision], EvidenceStatus] = {
    ev.EvidenceVerified: "verified",
    ev.EvidenceRejected: "rejected",
    ev.EvidenceRetracted: "retracted",
}

RULES: dict[tuple[EvidenceStatus, type[Decision]], Verdict] = {
    ("submitted", ev.EvidenceVerified): "allowed",
    ("submitted", ev.EvidenceRejected): "allowed",
    ("submitted", ev.EvidenceRetracted): "allowed",
    ("verified", ev.EvidenceVerified): "already decided",
    ("verified", ev.EvidenceRejected): "allowed",
    ("verified", ev.EvidenceRetracted): "the manager's decision",
    ("rejected", ev.EvidenceVerified): "not from this status",
    ("rejected", ev.EvidenceRejected): "already decided",
    ("rejected", ev.EvidenceRetracted): "the manager's decision",
    ("retracted", ev.EvidenceVerified): "not from this status",
    ("retracted", ev.EvidenceRejected): "not from this status",
    ("retracted", ev.EvidenceRetracted): "already decided",
}


class AlreadyDecided(RejectedEvent):
    """A decision the evidence already has (a conflict with the decision on record)."""


class ManagersDecision(RejectedEvent):
    """A supplier's retraction of evidence its manager has already decided."""


def verdict(status: EvidenceStatus, decision: type[Decision]) -> Verdict:
    return RULES[(status, decision)]


def _allowed_from(decision: type[Decision]) -> str:
    return " or ".join(s for (s, d), v in RULES.items() if d is decision and v == "allowed")


def _refusal(rec: EvidenceRecord, e: Decision, why: Verdict) -> RejectedEvent:
    by = f" by {rec.decided_by!r}" if rec.decided_by else ""
    got = f"{e.evidence_id} ({rec.status}{by})"
    where = {"contract_id": e.contract_id, "event_id": e.event_id}
    if why == "already decided":
        return AlreadyDecided("evidence_id", f"evidence that is not {rec.status} already "
                              f"(event {rec.event_ids[-1]!r} decided it)", got, **where)
    if why == "the manager's decision":
        return ManagersDecision("evidence_id", "evidence its manager has not decided yet "
                                "(only the manager may change a decision made: reject "
                                "verified evidence to withdraw it)", got, **where)
    return reject(e, "evidence_id", f"evidence that is {_allowed_from(type(e))}", got)


def decide(s: ContractState, e: Decision, reason: str) -> Result:
    """Apply a decision on evidence by the rules above."""
    terms_of(s, e)
    rec = evidence_of(s, e, e.evidence_id)
    if e.event_id in rec.event_ids:
        return s, NOTHING
    why = verdict(rec.status, type(e))
    if why != "allowed":
        raise _refusal(rec, e, why)
    to = OUTCOME[type(e)]
    q = rec.quantity
    new = EvidenceRecord(
        evidence_id=rec.evidence_id, measure=rec.measure, quantity=q,
        period_start=rec.period_start, period_end=rec.period_end, status=to,
        submitted_by=rec.submitted_by, submitted_at=rec.submitted_at,
        event_ids=(*rec.event_ids, e.event_id), decided_by=e.actor,
        decided_at=e.occurred_at, reason=reason)
    d_claimed = (q if new.counts_as_claimed else 0) - (q if rec.counts_as_claimed else 0)
    d_verified = (q if to == "verified" else 0) - (q if rec.status == "verified" else 0)
    totals = s.totals_for(rec.measure).add(Decimal(d_claimed), Decimal(d_verified))
    s = bump(s, evidence={**s.evidence, e.evidence_id: new},
             totals={**s.totals, rec.measure: totals})
    s, out = check_met(s, rec.measure, e.event_id, e.occurred_at)
    if to == "rejected":
        out.insert(0, ev.EvidenceWasRejected(
            contract_id=s.contract_id, measure=rec.measure, caused_by=e.event_id,
            at=e.occurred_at, evidence_id=rec.evidence_id, quantity=rec.quantity,
            reason=reason, reviewer=e.actor))
    s, judged = track(s, rec, new, e.event_id, e.occurred_at)
    return s, (*out, *judged)


def verified(s: ContractState, e: ev.EvidenceVerified, _c: Catalogue, _p: Policy) -> Result:
    return decide(s, e, e.note)


def rejected(s: ContractState, e: ev.EvidenceRejected, _c: Catalogue, _p: Policy) -> Result:
    return decide(s, e, e.reason)


def retracted(s: ContractState, e: ev.EvidenceRetracted, _c: Catalogue, _p: Policy) -> Result:
    return decide(s, e, e.reason)
