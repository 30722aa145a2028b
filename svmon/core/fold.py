"""``fold(state, event) -> (state, derived)``: the accounting, in one place.

The live agents, the auditor's replay and the tests all call this function, so a
replay cannot drift from the live run. It is idempotent per event: applying an
event the state has already seen returns the state unchanged and derives nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from svmon.core import authority
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue, Measure
from svmon.core.errors import InvalidInput, NotYetKnown, RejectedEvent
from svmon.core.fast import builder, replacer
from svmon.core.idempotence import EventGate
from svmon.core.rules import (
    DEFAULT_POLICY,
    MET,
    ZERO,
    Policy,
    canonical,
    delivered_by,
    elapsed_fraction,
    expected_by,
    forecast,
    milestone_judgement,
    rating_for,
)
from svmon.core.state import (
    Commitment,
    ContractState,
    EvidenceRecord,
    EvidenceStatus,
    Milestone,
    Terms,
    evolve,
)

_new_record = builder(EvidenceRecord)
_new_milestone = builder(Milestone)  # (every field, in order: see Milestone)
_evolve_milestone = replacer(Milestone)
_evolve_state = replacer(ContractState)  # (every field, in order: see EvidenceRecord)

Result = tuple[ContractState, tuple[ev.Derived, ...]]
NOTHING: tuple[ev.Derived, ...] = ()



_SHARED: dict[Decimal, Decimal] = {}


def _shared(q: Decimal) -> Decimal:
    """One Decimal object for each common quantity (whole numbers up to 10,000)."""
    if q.as_tuple().exponent == 0 and 0 <= q <= 10_000:
        return _SHARED.setdefault(q, q)
    return q

def fold(
    state: ContractState,
    event: ev.ContractEvent,
    catalogue: Catalogue,
    policy: Policy = DEFAULT_POLICY,
) -> Result:
    """Apply one event to a contract's state.

    Raises :class:`RejectedEvent` (a ``ValueError``) when the event is well formed
    but the state cannot accept it, or its actor may not assert it
    (:mod:`svmon.core.authority`); the state is then unchanged.
    """
    if event.contract_id != state.contract_id:
        raise RejectedEvent(
            "contract_id", f"{state.contract_id!r} for this state", event.contract_id,
            event_id=event.event_id,
        )
    # who may assert this, whatever channel it came by (svmon.core.authority)
    needed = authority.refusal(event, state.terms)
    if needed is not None and not authority.already_applied(state, event):
        raise RejectedEvent("actor", needed, event.actor,
                            contract_id=event.contract_id, event_id=event.event_id)
    if state.terms is not None and state.terms.policy:
        policy = policy.with_overrides(state.terms.policy)  # the contract's own thresholds
    handler = _HANDLERS[type(event)]
    return handler(state, event, catalogue, policy)


def fold_all(
    events: Iterable[ev.ContractEvent],
    catalogue: Catalogue,
    policy: Policy = DEFAULT_POLICY,
    states: dict[str, ContractState] | None = None,
    gate: EventGate | None = None,
) -> tuple[dict[str, ContractState], list[ev.Derived]]:
    """Fold a log of any contracts' events in order, as the live pipeline decides them:
    duplicates skipped, refused events (and their later copies) left out."""
    states = {} if states is None else states
    gate = EventGate() if gate is None else gate
    derived: list[ev.Derived] = []
    for e in events:
        s = states.get(e.contract_id) or ContractState(e.contract_id)
        try:
            if gate.check(e) == "duplicate":
                continue
            s, d = fold(s, e, catalogue, policy)
        except InvalidInput as err:
            gate.refused(e, err)
            continue
        gate.accepted(e)
        states[e.contract_id] = s
        derived.extend(d)
    return states, derived


# --------------------------------------------------------------------- helpers


def _reject(e: ev.ContractEvent, field: str, expected: str, got: Any) -> RejectedEvent:
    return RejectedEvent(field, expected, got, contract_id=e.contract_id, event_id=e.event_id)


def _terms(s: ContractState, e: ev.ContractEvent) -> Terms:
    if s.terms is None:
        raise NotYetKnown("contract_id", "a registered contract", e.contract_id,
                          contract_id=e.contract_id, event_id=e.event_id)
    return s.terms


def _measure(cat: Catalogue, terms: Terms, e: ev.ContractEvent, code: str) -> Measure:
    try:
        return cat.measure(terms.catalogue_edition, code)
    except InvalidInput as err:
        raise _reject(e, err.field, err.expected, err.got) from err


def _evidence(s: ContractState, e: ev.ContractEvent, evidence_id: str) -> EvidenceRecord:
    try:
        return s.evidence[evidence_id]
    except KeyError:
        raise NotYetKnown("evidence_id", "evidence submitted on this contract", evidence_id,
                          contract_id=e.contract_id, event_id=e.event_id) from None


def _unit_key(unit: str) -> str:
    return " ".join(unit.casefold().split())


def _bump(s: ContractState, **changes: Any) -> ContractState:
    return _evolve_state(s, version=s.version + 1, **changes)


def _check_met(
    s: ContractState, measure: str, caused_by: str, at: datetime
) -> tuple[ContractState, list[ev.Derived]]:
    """Announce a target met once; forget it if verified delivery falls back below."""
    c = s.commitments.get(measure)
    if c is None:
        return s, []
    verified = s.totals_for(measure).verified
    out: list[ev.Derived] = []
    if verified >= c.target and measure not in s.met:
        out.append(ev.TargetMet(contract_id=s.contract_id, measure=measure,
                                caused_by=caused_by, at=at, target=c.target, verified=verified))
        s = evolve(s, met=s.met | {measure})
        if measure in s.at_risk:
            out.append(ev.TargetBackOnTrack(contract_id=s.contract_id, measure=measure,
                                            caused_by=caused_by, at=at, target=c.target,
                                            forecast=verified))
            s = evolve(s, at_risk=s.at_risk - {measure},
                       risk_claimed={k: v for k, v in s.risk_claimed.items() if k != measure})
    elif verified < c.target and measure in s.met:
        s = evolve(s, met=s.met - {measure})
    return s, out


def _evaluate_milestones(
    s: ContractState, caused_by: str, at: datetime, policy: Policy
) -> tuple[ContractState, list[ev.Derived]]:
    """Judge, for the first time, every scheduled milestone whose due date plus grace
    (the reporting lag) has ended by ``at``; later changes re-judge it (:func:`_track`)."""
    cutoff = at.date() - timedelta(days=policy.reporting_lag_days)
    due = sorted(
        (m for m in s.milestones.values() if m.status == "scheduled" and m.due < cutoff),
        key=lambda m: (m.due, m.milestone_id),
    )
    if not due:
        return s, []
    milestones = dict(s.milestones)
    out: list[ev.Derived] = []
    for m in due:
        claimed, verified = _delivery(s, m)
        m, fact = _judge(s.contract_id, _evolve_milestone(
            m, judged_at=at, claimed=claimed, verified=verified, on_time=verified),
            caused_by, at)
        milestones[m.milestone_id] = m
        if fact is not None:
            out.append(fact)
    return evolve(s, milestones=milestones), out


def _judge(contract_id: str, m: Milestone, caused_by: str, at: datetime
           ) -> tuple[Milestone, ev.Derived | None]:
    """(Re-)judge a milestone on its current delivery (delivery time), and the fact to
    announce: MilestoneMet when it becomes met (or met late), MilestoneMissed whenever it
    is short (the first judgement, or figures that changed: the open alert follows)."""
    status = milestone_judgement(m.cumulative_target, m.verified, m.on_time)
    previous = m.status
    met_at = (m.met_at if previous == "met late" else at) if status == "met late" else None
    new = _evolve_milestone(m, status=status, verified_when_judged=m.verified, met_at=met_at)
    if status in MET:
        if previous == status:
            return new, None
        return new, ev.MilestoneMet(contract_id=contract_id, measure=m.measure,
                                    caused_by=caused_by, at=at, milestone_id=m.milestone_id,
                                    due=m.due, target=m.cumulative_target, verified=m.verified,
                                    status=status, axis=ev.delivery_axis(m.due))
    return new, ev.MilestoneMissed(contract_id=contract_id, measure=m.measure,
                                   caused_by=caused_by, at=at, milestone_id=m.milestone_id,
                                   due=m.due, target=m.cumulative_target, verified=m.verified,
                                   claimed=m.claimed, status=status,
                                   axis=ev.delivery_axis(m.due))


def _delivery(s: ContractState, m: Milestone) -> tuple[Decimal, Decimal]:
    """Claimed and verified delivery towards a milestone on the delivery-time axis, from
    the state's per-period sums of its measure (not the evidence records: the live
    worker holds only those its batch names). Made once, at the first judgement; from
    then on :func:`_track` keeps both current event by event."""
    claimed = verified = ZERO
    for (start, end), (c, v) in s.by_period.get(m.measure, {}).items():
        if start <= m.due:
            claimed += delivered_by(c, start, end, m.due)
            verified += delivered_by(v, start, end, m.due)
    return claimed, verified


def _track(s: ContractState, old: EvidenceRecord | None, new: EvidenceRecord,
           caused_by: str, at: datetime) -> tuple[ContractState, list[ev.Derived]]:
    """Add the evidence's change of status (``old`` is None for a submission) to its
    measure's per-period sums, and re-judge each judged milestone that period reaches.

    Incremental: one period's sums change, and each judged milestone of that measure
    whose due date the period reaches moves by the change in that period's share up to
    its due date; nothing scans the evidence."""
    was_c = old is not None and old.counts_as_claimed
    was_v = old is not None and old.status == "verified"
    dc = int(new.counts_as_claimed) - int(was_c)
    dv = int(new.status == "verified") - int(was_v)
    if dc == 0 and dv == 0:
        return s, []
    q, start, end = new.quantity, new.period_start, new.period_end
    periods = dict(s.by_period.get(new.measure, {}))
    c0, v0 = periods.get((start, end), (ZERO, ZERO))
    c1 = c0 + q * dc if dc else c0
    v1 = v0 + q * dv if dv else v0
    if c1 or v1:
        periods[(start, end)] = (c1, v1)
    else:
        periods.pop((start, end), None)
    s = _evolve_state(s, by_period={**s.by_period, new.measure: periods})
    if not s.milestones:
        return s, []
    milestones: dict[str, Milestone] | None = None
    out: list[ev.Derived] = []
    for mid, m in s.milestones.items():
        if m.judged_at is None or m.measure != new.measure or start > m.due:
            continue
        changes: dict[str, Any] = {}
        if dc:
            changes["claimed"] = m.claimed + (delivered_by(c1, start, end, m.due)
                                              - delivered_by(c0, start, end, m.due))
        if dv:
            delta = delivered_by(v1, start, end, m.due) - delivered_by(v0, start, end, m.due)
            verified = changes["verified"] = m.verified + delta
            # on time: verified by the first judgement (every verification folded before
            # it); one recorded after it is late, and withdrawing an on-time one takes
            # back what it gave
            on_time = m.on_time
            if dv < 0 and old is not None and old.decided_at is not None \
                    and old.decided_at <= m.judged_at:
                on_time = max(ZERO, on_time + delta)
            changes["on_time"] = min(on_time, verified)
        m, fact = _judge(s.contract_id, _evolve_milestone(m, **changes), caused_by, at)
        if fact is not None:
            out.append(fact)
        if milestones is None:
            milestones = dict(s.milestones)
        milestones[mid] = m
    if milestones is None:
        return s, out
    return evolve(s, milestones=milestones), out


# -------------------------------------------------------------------- handlers


def _registered(
    s: ContractState, e: ev.ContractRegistered, cat: Catalogue, policy: Policy
) -> Result:
    if s.terms is not None and e.event_id in s.terms.event_ids:
        return s, NOTHING
    if e.end < e.start:
        raise _reject(e, "end", f"on or after start {e.start.isoformat()}", e.end.isoformat())
    if e.catalogue_edition not in cat.editions():
        raise _reject(e, "catalogue_edition", f"one of {cat.editions()}", e.catalogue_edition)
    for code in sorted({*s.commitments, *s.totals}):  # an amendment may not strand a measure
        if not cat.has(e.catalogue_edition, code):
            raise _reject(e, "catalogue_edition",
                          f"an edition holding measure {code!r} in use on this contract",
                          e.catalogue_edition)
    previous = s.terms.event_ids if s.terms else ()
    terms = Terms(
        title=e.title, buyer=e.buyer, buyer_department=e.buyer_department,
        supplier_id=e.supplier_id, supplier_name=e.supplier_name, start=e.start, end=e.end,
        value_gbp=e.value_gbp, catalogue_edition=e.catalogue_edition, manager=e.manager,
        reporting_cadence_days=e.reporting_cadence_days, event_ids=(*previous, e.event_id),
        deputy=e.deputy, supplier_contact=e.supplier_contact, policy=e.policy,
    )
    # a term extended past the clock reopens a contract that was settled
    closed = s.closed and s.as_of is not None and \
        s.as_of.date() - timedelta(days=policy.reporting_lag_days) > e.end
    return _bump(s, terms=terms, closed=closed), NOTHING


def _committed(s: ContractState, e: ev.CommitmentMade, cat: Catalogue, _: Policy) -> Result:
    terms = _terms(s, e)
    old = s.commitments.get(e.measure)
    if old is not None and e.event_id in old.event_ids:
        return s, NOTHING
    _measure(cat, terms, e, e.measure)
    ids = (*old.event_ids, e.event_id) if old else (e.event_id,)
    s = _bump(s, commitments={**s.commitments, e.measure: Commitment(e.measure, e.target, ids)})
    s, out = _check_met(s, e.measure, e.event_id, e.occurred_at)
    return s, tuple(out)


def _scheduled(
    s: ContractState, e: ev.MilestoneScheduled, cat: Catalogue, policy: Policy
) -> Result:
    terms = _terms(s, e)
    old = s.milestones.get(e.milestone_id)
    if old is not None and e.event_id in old.event_ids:
        return s, NOTHING
    if old is not None:  # an id names one milestone: only a retry of the same body is taken
        if (old.measure, old.due, old.cumulative_target) == (
                e.measure, e.due, e.cumulative_target):
            return _bump(s, milestones={**s.milestones, e.milestone_id: evolve(
                old, event_ids=(*old.event_ids, e.event_id))}), NOTHING
        by = f"event {old.event_ids[0]!r} scheduled it" if old.event_ids else "scheduled"
        raise _reject(e, "milestone_id",
                      f"a milestone id not used before on this contract (milestone "
                      f"{e.milestone_id!r} is {old.cumulative_target} of {old.measure} by "
                      f"{old.due.isoformat()}; {by})", e.milestone_id)
    c = s.commitments.get(e.measure)
    if c is None:
        raise NotYetKnown("measure", "a measure with a commitment on this contract", e.measure,
                          contract_id=e.contract_id, event_id=e.event_id)
    if not terms.start <= e.due <= terms.end:
        raise _reject(e, "due", f"within the term {terms.start}..{terms.end}", e.due.isoformat())
    if e.cumulative_target > c.target:
        raise _reject(e, "cumulative_target", f"at most the commitment's target {c.target}",
                      str(e.cumulative_target))
    m = _new_milestone(e.milestone_id, e.measure, e.due, e.cumulative_target, "scheduled",
                       (e.event_id,), None, ZERO, ZERO, None, ZERO, None)
    s = _bump(s, milestones={**s.milestones, e.milestone_id: m})
    if s.as_of is not None:  # scheduled after its due date: judge it now
        s, out = _evaluate_milestones(s, e.event_id, s.as_of, policy)
        return s, tuple(out)
    return s, NOTHING


def _submitted(s: ContractState, e: ev.EvidenceSubmitted, cat: Catalogue, _: Policy) -> Result:
    terms = _terms(s, e)
    if e.evidence_id in s.evidence:
        used = s.evidence[e.evidence_id].event_ids
        if e.event_id in used:
            return s, NOTHING
        by = f"event {used[0]!r} submitted it" if used and used[0] else "submitted before"
        raise _reject(e, "evidence_id", f"an evidence id not used before on this contract "
                      f"({by})", e.evidence_id)
    measure = _measure(cat, terms, e, e.measure)
    if e.unit and _unit_key(e.unit) != _unit_key(measure.unit):
        raise _reject(e, "unit", f"the unit of measure {measure.code}, {measure.unit!r}", e.unit)
    if _unit_key(measure.unit) == "%" and e.quantity > 100:
        raise _reject(e, "quantity", f"a percentage of at most 100 ({measure.code} is in %)",
                      str(e.quantity))
    if e.period_start < terms.start or e.period_end > terms.end:
        raise _reject(e, "period", f"within the term {terms.start}..{terms.end}",
                      f"{e.period_start}..{e.period_end}")
    if e.period_end > e.occurred_at.date():  # delivery is reported once it has happened
        raise _reject(e, "period_end", f"not after the submission date {e.occurred_at.date()}",
                      e.period_end.isoformat())
    # A replay keeps every piece of evidence in memory (the live worker only a batch's):
    # repeated text (measure, actor) is interned, an evidence id equal to its event's id
    # is one string, and a common quantity one Decimal (about 40% less per record). The
    # quantity is kept without trailing zeros, as the evidence table gives it back, so
    # a record read from there is the record folded here.
    eid = e.event_id if e.evidence_id == e.event_id else e.evidence_id
    q = _shared(e.quantity) if e.quantity.as_tuple().exponent == 0 else canonical(e.quantity)
    rec = _new_record(eid, sys.intern(e.measure), q, e.period_start,
                      e.period_end, "submitted", sys.intern(e.actor), e.occurred_at,
                      (e.event_id,), "", None, "")
    last = s.last_evidence_at
    out: tuple[ev.Derived, ...] = NOTHING
    cadence = timedelta(days=terms.reporting_cadence_days)
    if s.overdue and (s.as_of is None or s.as_of - e.occurred_at <= cadence):
        # (backdated evidence older than the cadence does not end the silence)
        out = (ev.ReportingResumed(contract_id=s.contract_id, measure="", caused_by=e.event_id,
                                   at=e.occurred_at),)
    overdue = s.overdue and not out
    s = _bump(
        s,
        evidence={**s.evidence, eid: rec},
        totals={**s.totals, e.measure: s.totals_for(e.measure).add(claimed=q)},
        last_evidence_at=e.occurred_at if last is None or e.occurred_at > last else last,
        overdue=overdue,
    )
    s, judged = _track(s, None, rec, e.event_id, e.occurred_at)
    return s, (*out, *judged) if judged else out


def _decide(
    s: ContractState,
    e: ev.EvidenceVerified | ev.EvidenceRejected | ev.EvidenceRetracted,
    to: EvidenceStatus,
    allowed_from: tuple[str, ...],
    noop_from: tuple[str, ...],
    reason: str,
) -> Result:
    _terms(s, e)
    rec = _evidence(s, e, e.evidence_id)
    if e.event_id in rec.event_ids or rec.status in noop_from:
        return s, NOTHING
    if rec.status not in allowed_from:
        raise _reject(e, "evidence_id", f"evidence that is {' or '.join(allowed_from)}",
                      f"{e.evidence_id} ({rec.status})")
    q = rec.quantity
    was_claimed, was_verified = rec.counts_as_claimed, rec.status == "verified"
    new = _new_record(rec.evidence_id, rec.measure, q, rec.period_start, rec.period_end, to,
                      rec.submitted_by, rec.submitted_at, (*rec.event_ids, e.event_id),
                      sys.intern(e.actor), e.occurred_at, reason)
    d_claimed = (q if new.counts_as_claimed else 0) - (q if was_claimed else 0)
    d_verified = (q if to == "verified" else 0) - (q if was_verified else 0)
    totals = s.totals_for(rec.measure).add(Decimal(d_claimed), Decimal(d_verified))
    s = _bump(s, evidence={**s.evidence, e.evidence_id: new},
              totals={**s.totals, rec.measure: totals})
    s, out = _check_met(s, rec.measure, e.event_id, e.occurred_at)
    if to == "rejected":
        out.insert(0, ev.EvidenceWasRejected(
            contract_id=s.contract_id, measure=rec.measure, caused_by=e.event_id,
            at=e.occurred_at, evidence_id=rec.evidence_id, quantity=rec.quantity,
            reason=reason, reviewer=e.actor))
    s, judged = _track(s, rec, new, e.event_id, e.occurred_at)
    return s, (*out, *judged)


def _verified(s: ContractState, e: ev.EvidenceVerified, _c: Catalogue, _p: Policy) -> Result:
    return _decide(s, e, "verified", ("submitted",), ("verified",), e.note)


def _rejected(s: ContractState, e: ev.EvidenceRejected, _c: Catalogue, _p: Policy) -> Result:
    return _decide(s, e, "rejected", ("submitted", "verified"), ("rejected",), e.reason)


def _retracted(s: ContractState, e: ev.EvidenceRetracted, _c: Catalogue, _p: Policy) -> Result:
    return _decide(s, e, "retracted", ("submitted", "verified"), ("retracted", "rejected"),
                   e.reason)


CLOCK_ACTOR = "system"
CLOCK_SKEW = timedelta(minutes=5)


def _ticked(s: ContractState, e: ev.ClockTicked, _: Catalogue, policy: Policy) -> Result:
    if e.actor != CLOCK_ACTOR:
        raise _reject(e, "actor", f"{CLOCK_ACTOR!r} (only the system keeps time)", e.actor)
    if e.at > e.occurred_at + CLOCK_SKEW:
        raise _reject(e, "at", f"no later than occurred_at {e.occurred_at.isoformat()}",
                      e.at.isoformat())
    if s.as_of is not None and e.at <= s.as_of:
        return s, NOTHING
    s = _bump(s, as_of=e.at)
    s, out = _evaluate_milestones(s, e.event_id, e.at, policy)
    terms = s.terms
    if terms is None or s.closed:
        return s, tuple(out)
    today = e.at.date()
    basis = today - timedelta(days=policy.reporting_lag_days)  # reported up to about here
    if basis > terms.end:  # the term and its reporting window are over: settle once
        for m, c in sorted(s.commitments.items()):
            t = s.totals_for(m)
            if t.verified < c.target:
                out.append(ev.TargetMissed(contract_id=s.contract_id, measure=m,
                                           caused_by=e.event_id, at=e.at, target=c.target,
                                           verified=t.verified, claimed=t.claimed))
        # no more reporting is due and no more ratings are made: clear those alerts
        if s.overdue:
            out.append(ev.ReportingResumed(contract_id=s.contract_id, measure="",
                                           caused_by=e.event_id, at=e.at))
        for m, r in sorted(s.ratings.items()):
            if r != "other":
                t = s.totals_for(m)
                out.append(ev.RatingChanged(contract_id=s.contract_id, measure=m,
                                            caused_by=e.event_id, at=e.at, previous=r,
                                            rating="other", verified=t.verified,
                                            expected=s.commitments[m].target
                                            if m in s.commitments else t.verified))
        return evolve(s, closed=True, at_risk=frozenset(), overdue=False, risk_claimed={},
                      ratings={m: "other" for m in s.ratings}), tuple(out)
    s = _reporting(s, e, terms, out)
    s = _ratings(s, e, terms, basis, policy, out)
    if elapsed_fraction(terms.start, terms.end, basis) < policy.min_elapsed_fraction:
        return s, tuple(out)
    at_risk = set(s.at_risk)
    risk_claimed = dict(s.risk_claimed)
    for m, c in sorted(s.commitments.items()):
        t = s.totals_for(m)
        fc = forecast(t.claimed, terms.start, terms.end, basis)
        if fc is None or m in s.met:
            continue
        risky = fc < c.target * policy.at_risk_threshold
        # at risk and still so, but delivery moved since the last announcement: announce
        # the new forecast (the open alert is refreshed with it, not raised again)
        if risky and (m not in at_risk or risk_claimed.get(m) != t.claimed):
            at_risk.add(m)
            risk_claimed[m] = t.claimed
            out.append(ev.TargetAtRisk(contract_id=s.contract_id, measure=m,
                                       caused_by=e.event_id, at=e.at, target=c.target,
                                       forecast=fc, claimed=t.claimed,
                                       threshold=policy.at_risk_threshold))
        elif not risky and m in at_risk:
            at_risk.discard(m)
            risk_claimed.pop(m, None)
            out.append(ev.TargetBackOnTrack(contract_id=s.contract_id, measure=m,
                                            caused_by=e.event_id, at=e.at, target=c.target,
                                            forecast=fc))
    if risk_claimed == s.risk_claimed:
        return evolve(s, at_risk=frozenset(at_risk)), tuple(out)
    return evolve(s, at_risk=frozenset(at_risk), risk_claimed=risk_claimed), tuple(out)


def _reporting(s: ContractState, e: ev.ClockTicked, terms: Terms,
               out: list[ev.Derived]) -> ContractState:
    """Reporting overdue: no evidence for longer than the cadence (from the start)."""
    if s.overdue or e.at.date() <= terms.start:
        return s
    since = s.last_evidence_at or datetime.combine(terms.start, time(), tzinfo=UTC)
    if e.at - since <= timedelta(days=terms.reporting_cadence_days):
        return s
    out.append(ev.ReportingOverdue(contract_id=s.contract_id, measure="", caused_by=e.event_id,
                                   at=e.at, last_evidence_at=s.last_evidence_at,
                                   cadence_days=terms.reporting_cadence_days))
    return evolve(s, overdue=True)


def _ratings(s: ContractState, e: ev.ClockTicked, terms: Terms, basis: date,
             policy: Policy, out: list[ev.Derived]) -> ContractState:
    """Each KPI's rating as at ``basis``; a change from a previous rating is announced."""
    ratings = dict(s.ratings)
    by_measure: dict[str, list[tuple[date, Decimal]]] = {}  # in the milestones' order
    for ms in s.milestones.values():
        by_measure.setdefault(ms.measure, []).append((ms.due, ms.cumulative_target))
    for m, c in sorted(s.commitments.items()):
        points = by_measure.get(m, [])
        expected = expected_by(c.target, terms.start, terms.end, points, basis)
        verified = s.totals_for(m).verified
        rating = rating_for(verified, expected, policy.rating)
        previous = ratings.get(m)
        # The first rating is recorded, not announced: the rule is "rating changed", and
        # poor delivery from the start is what the milestone and forecast alerts say.
        if previous is not None and previous != rating:
            out.append(ev.RatingChanged(contract_id=s.contract_id, measure=m,
                                        caused_by=e.event_id, at=e.at, previous=previous,
                                        rating=rating, verified=verified, expected=expected))
        ratings[m] = rating
    return evolve(s, ratings=ratings) if ratings != s.ratings else s


_HANDLERS: dict[type[Any], Callable[..., Result]] = {
    ev.ContractRegistered: _registered,
    ev.CommitmentMade: _committed,
    ev.MilestoneScheduled: _scheduled,
    ev.EvidenceSubmitted: _submitted,
    ev.EvidenceVerified: _verified,
    ev.EvidenceRejected: _rejected,
    ev.EvidenceRetracted: _retracted,
    ev.ClockTicked: _ticked,
}
