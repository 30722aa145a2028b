"""Milestones and targets judged on delivery: the facts announced when they change.

A milestone is judged once its due date plus the reporting lag has passed, then
re-judged whenever delivery towards it changes; a target is announced met once, and
forgotten when verified delivery falls back below it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from svmon.core import events as ev
from svmon.core.rules import MET, ZERO, Policy, delivered_by, milestone_judgement
from svmon.core.state import ContractState, EvidenceRecord, Milestone, evolve


def check_met(
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


def evaluate_milestones(
    s: ContractState, caused_by: str, at: datetime, policy: Policy
) -> tuple[ContractState, list[ev.Derived]]:
    """Judge, for the first time, every scheduled milestone whose due date plus grace
    (the reporting lag) has ended by ``at``; later changes re-judge it (:func:`track`)."""
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
        claimed, verified = delivery(s, m)
        m, fact = judge(s.contract_id, evolve(
            m, judged_at=at, claimed=claimed, verified=verified, on_time=verified),
            caused_by, at)
        milestones[m.milestone_id] = m
        if fact is not None:
            out.append(fact)
    return evolve(s, milestones=milestones), out


def judge(contract_id: str, m: Milestone, caused_by: str, at: datetime
           ) -> tuple[Milestone, ev.Derived | None]:
    """(Re-)judge a milestone on its current delivery (delivery time), and the fact to
    announce: MilestoneMet when it becomes met (or met late), MilestoneMissed whenever it
    is short (the first judgement, or figures that changed: the open alert follows)."""
    status = milestone_judgement(m.cumulative_target, m.verified, m.on_time)
    previous = m.status
    met_at = (m.met_at if previous == "met late" else at) if status == "met late" else None
    new = evolve(m, status=status, verified_when_judged=m.verified, met_at=met_at)
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


def delivery(s: ContractState, m: Milestone) -> tuple[Decimal, Decimal]:
    """Claimed and verified delivery towards a milestone on the delivery-time axis, from
    the state's per-period sums of its measure (not the evidence records: the live
    worker holds only those its batch names). Made once, at the first judgement; from
    then on :func:`track` keeps both current event by event."""
    claimed = verified = ZERO
    for (start, end), (c, v) in s.by_period.get(m.measure, {}).items():
        if start <= m.due:
            claimed += delivered_by(c, start, end, m.due)
            verified += delivered_by(v, start, end, m.due)
    return claimed, verified


def track(s: ContractState, old: EvidenceRecord | None, new: EvidenceRecord,
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
    s = evolve(s, by_period={**s.by_period, new.measure: periods})
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
        m, fact = judge(s.contract_id, evolve(m, **changes), caused_by, at)
        if fact is not None:
            out.append(fact)
        if milestones is None:
            milestones = dict(s.milestones)
        milestones[mid] = m
    if milestones is None:
        return s, out
    return evolve(s, milestones=milestones), out


# -------------------------------------------------------------------- handlers
