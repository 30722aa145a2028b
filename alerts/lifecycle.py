"""From derived facts to alert changes: raise once, resolve when the cause clears.

Pure: no database here. An alert's identity is (contract, measure, kind): at most one
is open per identity, so a flapping forecast or a run of missed milestones cannot start
a storm (a second raise while one is open refreshes it instead). The subject (which
milestone) travels with the alert as detail, except for rejected evidence, where each
rejection is its own alert.

Lifecycle of an alert row: open → acknowledged → resolved; "delivered" is recorded per
recipient and channel in the delivery table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from svmon.core import events as ev

AlertKind = Literal["MilestoneMissed", "TargetAtRisk", "TargetMissed", "ReportingOverdue",
                    "EvidenceRejected", "KpiRating", "TargetMet"]
Severity = Literal["warning", "info"]
WORSE = ("requires improvement", "inadequate")
Identity = tuple[str, str, str, str]
# Kinds where each subject is its own alert (each rejected evidence must be heard about);
# for the others the subject is detail and one alert per contract × measure × kind.
PER_SUBJECT = frozenset({"EvidenceRejected"})


def identity(contract_id: str, measure: str, kind: str, subject: str) -> Identity:
    return (contract_id, measure, kind, subject if kind in PER_SUBJECT else "")


@dataclass(frozen=True, slots=True)
class AlertChange:
    action: Literal["raise", "resolve"]
    contract_id: str
    measure: str
    kind: AlertKind
    subject: str
    at: datetime
    derived_id: str
    severity: Severity = "warning"

    @property
    def identity(self) -> Identity:
        return identity(self.contract_id, self.measure, self.kind, self.subject)


def changes_for(d: ev.Derived) -> list[AlertChange]:
    """The alert changes one derived fact causes."""

    def change(action: Literal["raise", "resolve"], kind: AlertKind, subject: str = "",
               severity: Severity = "warning") -> AlertChange:
        return AlertChange(action, d.contract_id, d.measure, kind, subject, d.at,
                           d.derived_id, severity)

    if isinstance(d, ev.MilestoneMissed):
        return [change("raise", "MilestoneMissed", d.milestone_id)]
    if isinstance(d, ev.MilestoneMet):  # delivery caught up: earlier misses are history
        return [change("resolve", "MilestoneMissed")]
    if isinstance(d, ev.TargetAtRisk):
        return [change("raise", "TargetAtRisk")]
    if isinstance(d, ev.TargetBackOnTrack):
        return [change("resolve", "TargetAtRisk")]
    if isinstance(d, ev.TargetMet):  # late verification can still meet a missed target
        return [change("resolve", "TargetAtRisk"), change("resolve", "TargetMissed"),
                change("raise", "TargetMet", severity="info")]
    if isinstance(d, ev.TargetMissed):
        return [change("resolve", "TargetAtRisk"), change("raise", "TargetMissed")]
    if isinstance(d, ev.ReportingOverdue):
        return [change("raise", "ReportingOverdue")]
    if isinstance(d, ev.ReportingResumed):
        return [change("resolve", "ReportingOverdue")]
    if isinstance(d, ev.EvidenceWasRejected):
        return [change("raise", "EvidenceRejected", d.evidence_id)]
    if isinstance(d, ev.RatingChanged):
        if d.rating in WORSE:
            return [change("raise", "KpiRating", d.rating)]
        return [change("resolve", "KpiRating")]
    return []


def open_alerts(derived: Iterable[ev.Derived]) -> set[Identity]:
    """The alert identities left open after these facts, as the inbox would hold them
    (before anyone resolves one by hand)."""
    opened: set[Identity] = set()
    for d in derived:
        for c in changes_for(d):
            if c.action == "raise":
                opened.add(c.identity)
            else:
                opened.discard(c.identity)
    return opened
