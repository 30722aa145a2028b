"""``fold(state, event) -> (state, derived)``: the accounting, in one place.

The live agents, the auditor's replay and the tests all call this function, so a
replay cannot drift from the live run. It is idempotent per event: applying an
event the state has already seen returns the state unchanged and derives nothing.

This module holds the entry points and the handlers of the contract's own terms
(registration, commitments, milestones, evidence submitted); decisions on evidence
are in :mod:`svmon.core.decisions`, the clock's tick in :mod:`svmon.core.clock`, and
the judgement of milestones and targets in :mod:`svmon.core.judgement`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from svmon.core import authority
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.clock import ticked
from svmon.core.decisions import rejected, retracted, verified
from svmon.core.errors import InvalidInput, NotYetKnown, RejectedEvent
from svmon.core.handling import NOTHING, Result, bump, measure_of, reject, terms_of
from svmon.core.idempotence import EventGate
from svmon.core.judgement import check_met, evaluate_milestones, track
from svmon.core.rules import DEFAULT_POLICY, Policy, canonical
from svmon.core.state import (
    Commitment,
    ContractState,
    EvidenceRecord,
    Milestone,
    Terms,
    evolve,
)

__all__ = ["Result", "fold", "fold_all"]


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




def _unit_key(unit: str) -> str:
    return " ".join(unit.casefold().split())


# -------------------------------------------------------------------- handlers


def _registered(
    s: ContractState, e: ev.ContractRegistered, cat: Catalogue, policy: Policy
) -> Result:
    if s.terms is not None and e.event_id in s.terms.event_ids:
        return s, NOTHING
    if e.end < e.start:
        raise reject(e, "end", f"on or after start {e.start.isoformat()}", e.end.isoformat())
    if e.catalogue_edition not in cat.editions():
        raise reject(e, "catalogue_edition", f"one of {cat.editions()}", e.catalogue_edition)
    for code in sorted({*s.commitments, *s.totals}):  # an amendment may not strand a measure
        if not cat.has(e.catalogue_edition, code):
            raise reject(e, "catalogue_edition",
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
    return bump(s, terms=terms, closed=closed), NOTHING


def _committed(s: ContractState, e: ev.CommitmentMade, cat: Catalogue, _: Policy) -> Result:
    terms = terms_of(s, e)
    old = s.commitments.get(e.measure)
    if old is not None and e.event_id in old.event_ids:
        return s, NOTHING
    measure_of(cat, terms, e, e.measure)
    ids = (*old.event_ids, e.event_id) if old else (e.event_id,)
    s = bump(s, commitments={**s.commitments, e.measure: Commitment(e.measure, e.target, ids)})
    s, out = check_met(s, e.measure, e.event_id, e.occurred_at)
    return s, tuple(out)


def _scheduled(
    s: ContractState, e: ev.MilestoneScheduled, cat: Catalogue, policy: Policy
) -> Result:
    terms = terms_of(s, e)
    old = s.milestones.get(e.milestone_id)
    if old is not None and e.event_id in old.event_ids:
        return s, NOTHING
    if old is not None:  # an id names one milestone: only a retry of the same body is taken
        if (old.measure, old.due, old.cumulative_target) == (
                e.measure, e.due, e.cumulative_target):
            return bump(s, milestones={**s.milestones, e.milestone_id: evolve(
                old, event_ids=(*old.event_ids, e.event_id))}), NOTHING
        by = f"event {old.event_ids[0]!r} scheduled it" if old.event_ids else "scheduled"
        raise reject(e, "milestone_id",
                      f"a milestone id not used before on this contract (milestone "
                      f"{e.milestone_id!r} is {old.cumulative_target} of {old.measure} by "
                      f"{old.due.isoformat()}; {by})", e.milestone_id)
    c = s.commitments.get(e.measure)
    if c is None:
        raise NotYetKnown("measure", "a measure with a commitment on this contract", e.measure,
                          contract_id=e.contract_id, event_id=e.event_id)
    if not terms.start <= e.due <= terms.end:
        raise reject(e, "due", f"within the term {terms.start}..{terms.end}", e.due.isoformat())
    if e.cumulative_target > c.target:
        raise reject(e, "cumulative_target", f"at most the commitment's target {c.target}",
                      str(e.cumulative_target))
    m = Milestone(milestone_id=e.milestone_id, measure=e.measure, due=e.due,
                  cumulative_target=e.cumulative_target, status="scheduled",
                  event_ids=(e.event_id,))
    s = bump(s, milestones={**s.milestones, e.milestone_id: m})
    if s.as_of is not None:  # scheduled after its due date: judge it now
        s, out = evaluate_milestones(s, e.event_id, s.as_of, policy)
        return s, tuple(out)
    return s, NOTHING


def _submitted(s: ContractState, e: ev.EvidenceSubmitted, cat: Catalogue, _: Policy) -> Result:
    terms = terms_of(s, e)
    if e.evidence_id in s.evidence:
        used = s.evidence[e.evidence_id].event_ids
        if e.event_id in used:
            return s, NOTHING
        by = f"event {used[0]!r} submitted it" if used and used[0] else "submitted before"
        raise reject(e, "evidence_id", f"an evidence id not used before on this contract "
                      f"({by})", e.evidence_id)
    measure = measure_of(cat, terms, e, e.measure)
    if e.unit and _unit_key(e.unit) != _unit_key(measure.unit):
        raise reject(e, "unit", f"the unit of measure {measure.code}, {measure.unit!r}", e.unit)
    if _unit_key(measure.unit) == "%" and e.quantity > 100:
        raise reject(e, "quantity", f"a percentage of at most 100 ({measure.code} is in %)",
                      str(e.quantity))
    if e.period_start < terms.start or e.period_end > terms.end:
        raise reject(e, "period", f"within the term {terms.start}..{terms.end}",
                      f"{e.period_start}..{e.period_end}")
    if e.period_end > e.occurred_at.date():  # delivery is reported once it has happened
        raise reject(e, "period_end", f"not after the submission date {e.occurred_at.date()}",
                      e.period_end.isoformat())
    # The quantity is kept without trailing zeros, as the evidence table gives it back,
    # so a record read from there is the record folded here.
    q = e.quantity if e.quantity.as_tuple().exponent == 0 else canonical(e.quantity)
    rec = EvidenceRecord(evidence_id=e.evidence_id, measure=e.measure, quantity=q,
                         period_start=e.period_start, period_end=e.period_end,
                         status="submitted", submitted_by=e.actor, submitted_at=e.occurred_at,
                         event_ids=(e.event_id,))
    last = s.last_evidence_at
    out: tuple[ev.Derived, ...] = NOTHING
    cadence = timedelta(days=terms.reporting_cadence_days)
    if s.overdue and (s.as_of is None or s.as_of - e.occurred_at <= cadence):
        # (backdated evidence older than the cadence does not end the silence)
        out = (ev.ReportingResumed(contract_id=s.contract_id, measure="", caused_by=e.event_id,
                                   at=e.occurred_at),)
    overdue = s.overdue and not out
    s = bump(
        s,
        evidence={**s.evidence, e.evidence_id: rec},
        totals={**s.totals, e.measure: s.totals_for(e.measure).add(claimed=q)},
        last_evidence_at=e.occurred_at if last is None or e.occurred_at > last else last,
        overdue=overdue,
    )
    s, judged = track(s, None, rec, e.event_id, e.occurred_at)
    return s, (*out, *judged) if judged else out


_HANDLERS: dict[type[Any], Callable[..., Result]] = {
    ev.ContractRegistered: _registered,
    ev.CommitmentMade: _committed,
    ev.MilestoneScheduled: _scheduled,
    ev.EvidenceSubmitted: _submitted,
    ev.EvidenceVerified: verified,
    ev.EvidenceRejected: rejected,
    ev.EvidenceRetracted: retracted,
    ev.ClockTicked: ticked,
}
