"""From derived facts to alert changes: raise once, resolve when the cause clears.

Pure: no database here. An alert is identified by (contract, measure, kind, subject);
at most one is open per identity, so a flapping forecast cannot start a storm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from svmon.core import events as ev

AlertKind = Literal["MilestoneMissed", "TargetAtRisk", "TargetMissed"]
ANY_SUBJECT = "*"  # a resolve that applies to every subject (e.g. every missed milestone)


@dataclass(frozen=True, slots=True)
class AlertChange:
    action: Literal["raise", "resolve"]
    contract_id: str
    measure: str
    kind: AlertKind
    subject: str
    at: datetime
    derived_id: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.contract_id, self.measure, self.kind, self.subject)


def changes_for(d: ev.Derived) -> list[AlertChange]:
    """The alert changes one derived fact causes (a positive notice causes none)."""

    def change(action: Literal["raise", "resolve"], kind: AlertKind,
               subject: str = "") -> AlertChange:
        return AlertChange(action, d.contract_id, d.measure, kind, subject, d.at, d.derived_id)

    if isinstance(d, ev.MilestoneMissed):
        return [change("raise", "MilestoneMissed", d.milestone_id)]
    if isinstance(d, ev.MilestoneMet):  # delivery caught up: earlier misses are history
        return [change("resolve", "MilestoneMissed", ANY_SUBJECT)]
    if isinstance(d, ev.TargetAtRisk):
        return [change("raise", "TargetAtRisk")]
    if isinstance(d, ev.TargetBackOnTrack):
        return [change("resolve", "TargetAtRisk")]
    if isinstance(d, ev.TargetMet):  # late verification can still meet a missed target
        return [change("resolve", "TargetAtRisk"), change("resolve", "TargetMissed")]
    if isinstance(d, ev.TargetMissed):
        return [change("resolve", "TargetAtRisk"), change("raise", "TargetMissed")]
    return []


def open_alerts(derived: Iterable[ev.Derived]) -> set[tuple[str, str, str, str]]:
    """The alert identities left open after these facts, as the inbox would hold them."""
    opened: set[tuple[str, str, str, str]] = set()
    for d in derived:
        for c in changes_for(d):
            if c.action == "raise":
                opened.add(c.identity)
            elif c.subject == ANY_SUBJECT:
                opened = {a for a in opened if a[:3] != c.identity[:3]}
            else:
                opened.discard(c.identity)
    return opened
