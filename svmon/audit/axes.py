"""The two time axes an auditor's figure can be cut on.

*Record time* is when svmon learnt a fact: a replay ``--as-of T`` folds only the events
recorded up to T. *Delivery time* is when the social value happened, the evidence
period: a figure "delivered by D" counts evidence whose period ends on or before D in
full and a period spanning D pro rata by days (:func:`svmon.core.rules.delivered_by`,
the rule milestones are judged on), with the decisions (verified, rejected, retracted)
as the record-time cut knows them. The two combine: "what did we believe on T about
delivery up to D".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from svmon.core.events import delivery_axis
from svmon.core.rules import ZERO, canonical, delivered_by
from svmon.core.state import ContractState, Totals


def record_axis(as_of: datetime | None) -> str:
    """How a figure is cut on record time, in the words the outputs use."""
    if as_of is None:
        return "record time: every event recorded (as known now)"
    return f"record time: events recorded up to {as_of.astimezone(UTC).isoformat()}"


def delivery_axis_text(day: date | None) -> str:
    """How a figure is cut on delivery time, in the words the outputs use (a milestone's
    facts name the same axis with :func:`svmon.core.events.delivery_axis`)."""
    if day is None:
        return "delivery time: every evidence period"
    return f"{delivery_axis(day)} (a period spanning it counted pro rata by days)"


def delivered_totals(s: ContractState, measure: str, day: date) -> Totals:
    """Claimed and verified units of ``measure`` delivered on or before ``day``.

    Applied to each period's sum, as a milestone due on ``day`` would be judged, so a
    notice or replay cut at a milestone's due date shows the milestone's own figure.
    """
    claimed = verified = ZERO
    for (start, end), (c, v) in s.by_period.get(measure, {}).items():
        if start <= day:
            claimed += delivered_by(c, start, end, day)
            verified += delivered_by(v, start, end, day)
    return Totals(claimed=canonical(claimed), verified=canonical(verified))


def delivered_by_day(s: ContractState, day: date) -> ContractState:
    """The state with its totals cut at ``day`` on delivery time.

    The evidence records kept are those whose period starts on or before ``day`` (a
    spanning one is listed whole; its total counts the share up to ``day``). Milestones,
    ratings and alerts are left as they are: each names its own axis already.
    """
    measures = set(s.totals) | set(s.by_period)
    totals = {m: delivered_totals(s, m, day) for m in sorted(measures)}
    evidence = {k: r for k, r in s.evidence.items() if r.period_start <= day}
    return replace(s, totals=totals, evidence=evidence)
