"""The clock's tick: milestones falling due, reporting overdue, ratings, forecasts,
and settling a contract once its term and reporting window are over."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.handling import NOTHING, Result, bump, reject
from svmon.core.judgement import evaluate_milestones
from svmon.core.rules import Policy, elapsed_fraction, expected_by, forecast, rating_for
from svmon.core.state import ContractState, Terms, evolve

CLOCK_ACTOR = "system"
CLOCK_SKEW = timedelta(minutes=5)


def ticked(s: ContractState, e: ev.ClockTicked, _: Catalogue, policy: Policy) -> Result:
    if e.actor != CLOCK_ACTOR:
        raise reject(e, "actor", f"{CLOCK_ACTOR!r} (only the system keeps time)", e.actor)
    if e.at > e.occurred_at + CLOCK_SKEW:
        raise reject(e, "at", f"no later than occurred_at {e.occurred_at.isoformat()}",
                      e.at.isoformat())
    if s.as_of is not None and e.at <= s.as_of:
        return s, NOTHING
    s = bump(s, as_of=e.at)
    s, out = evaluate_milestones(s, e.event_id, e.at, policy)
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
