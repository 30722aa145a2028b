"""Small builders for contract events, shared by the unit tests of the pure core.

Every builder takes plain values (ISO date strings, numbers as strings) so a worked
example reads like the paper calculation it checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

from svmon.catalogue_files import load_catalogue
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.fold import fold
from svmon.core.state import ContractState

CATALOGUE: Catalogue = load_catalogue()
EDITION = "DEMO-2025"
# the parties of the builders' contract, as the API writes them on events: the manager
# registers, commits, schedules and reviews; the supplier submits and retracts
MANAGER = "mgr-aoife"
SUPPLIER = "supplier:S01"


def final_period_reported_in_arrears() -> list[ev.ContractEvent]:
    """A term ending 2025-12-31 whose December is reported and verified in January,
    within the reporting lag, and brings delivery up to the target."""
    return [
        registered(), committed("L-VOL", "1000"),
        submitted("E1", "L-VOL", "900", "2025-01-01", "2025-11-30", "2025-12-05"),
        verified("E1", "2025-12-08"),
        tick("2026-01-01"),
        submitted("E2", "L-VOL", "100", "2025-12-01", "2025-12-31", "2026-01-05"),
        verified("E2", "2026-01-10"),
        tick("2026-02-01"),
    ]


def d(iso: str) -> date:
    return date.fromisoformat(iso)


def at(iso: str, hour: int = 0) -> datetime:
    """Midnight (or ``hour``) UTC on an ISO date."""
    return datetime.combine(d(iso), datetime.min.time(), tzinfo=UTC).replace(hour=hour)


def registered(cid: str = "C-001", start: str = "2025-01-01", end: str = "2025-12-31", *,
               when: str = "2025-01-02", event_id: str | None = None,
               edition: str = EDITION) -> ev.ContractRegistered:
    return ev.ContractRegistered(
        event_id=event_id or f"{cid}:registered", contract_id=cid, occurred_at=at(when, 9),
        actor=MANAGER, title="Highways maintenance 2025", buyer="Borsetshire CC",
        buyer_department="Highways", supplier_id="S01", supplier_name="Northgate Ltd",
        start=d(start), end=d(end), value_gbp=Decimal("1000000"), catalogue_edition=edition,
        manager=MANAGER)


def committed(measure: str, target: str, cid: str = "C-001", *, when: str = "2025-01-02",
              event_id: str | None = None) -> ev.CommitmentMade:
    return ev.CommitmentMade(
        event_id=event_id or f"{cid}:commit:{measure}", contract_id=cid,
        occurred_at=at(when, 9), actor=MANAGER, measure=measure, target=Decimal(target))


def milestone(milestone_id: str, measure: str, due: str, cumulative: str, cid: str = "C-001",
              *, when: str = "2025-01-02", event_id: str | None = None
              ) -> ev.MilestoneScheduled:
    return ev.MilestoneScheduled(
        event_id=event_id or f"{cid}:milestone:{milestone_id}", contract_id=cid,
        occurred_at=at(when, 9), actor=MANAGER, milestone_id=milestone_id,
        measure=measure, due=d(due), cumulative_target=Decimal(cumulative))


def submitted(evidence_id: str, measure: str, quantity: str, period_start: str,
              period_end: str, when: str, cid: str = "C-001", *,
              event_id: str | None = None) -> ev.EvidenceSubmitted:
    return ev.EvidenceSubmitted(
        event_id=event_id or f"{cid}:{evidence_id}", contract_id=cid,
        occurred_at=at(when, 10), actor=SUPPLIER, evidence_id=evidence_id,
        measure=measure, quantity=Decimal(quantity), period_start=d(period_start),
        period_end=d(period_end), description=f"{measure} delivered")


def verified(evidence_id: str, when: str, cid: str = "C-001", *,
             event_id: str | None = None) -> ev.EvidenceVerified:
    return ev.EvidenceVerified(
        event_id=event_id or f"{cid}:{evidence_id}:verified", contract_id=cid,
        occurred_at=at(when, 15), actor=MANAGER, evidence_id=evidence_id)


def rejected(evidence_id: str, when: str, cid: str = "C-001", *, reason: str = "no payroll",
             event_id: str | None = None) -> ev.EvidenceRejected:
    return ev.EvidenceRejected(
        event_id=event_id or f"{cid}:{evidence_id}:rejected", contract_id=cid,
        occurred_at=at(when, 15), actor=MANAGER, evidence_id=evidence_id, reason=reason)


def retracted(evidence_id: str, when: str, cid: str = "C-001", *,
              event_id: str | None = None) -> ev.EvidenceRetracted:
    return ev.EvidenceRetracted(
        event_id=event_id or f"{cid}:{evidence_id}:retracted", contract_id=cid,
        occurred_at=at(when, 11), actor=SUPPLIER, evidence_id=evidence_id,
        reason="submitted twice")


def tick(when: str, cid: str = "C-001", *, event_id: str | None = None) -> ev.ClockTicked:
    return ev.ClockTicked(event_id=event_id or f"{cid}:tick:{when}", contract_id=cid,
                          occurred_at=at(when), at=at(when))


def apply(events: Iterable[ev.ContractEvent], state: ContractState | None = None,
          catalogue: Catalogue = CATALOGUE
          ) -> tuple[ContractState, list[tuple[str, tuple[ev.Derived, ...]]]]:
    """Fold events strictly (a rejection raises); the derived facts per event id."""
    events = list(events)
    s = state or ContractState(events[0].contract_id)
    out: list[tuple[str, tuple[ev.Derived, ...]]] = []
    for e in events:
        s, derived = fold(s, e, catalogue)
        out.append((e.event_id, derived))
    return s, out


def derived_of(log: list[tuple[str, tuple[ev.Derived, ...]]], event_id: str
               ) -> tuple[ev.Derived, ...]:
    matches = [derived for eid, derived in log if eid == event_id]
    assert len(matches) == 1, f"event {event_id!r} applied {len(matches)} times"
    return matches[0]


def all_derived(log: list[tuple[str, tuple[ev.Derived, ...]]]) -> list[ev.Derived]:
    return [x for _, derived in log for x in derived]


NOTICE_ONLY = (ev.RatingChanged, ev.ReportingOverdue, ev.ReportingResumed,
               ev.EvidenceWasRejected)


def target_facts(derived: Iterable[ev.Derived]) -> tuple[ev.Derived, ...]:
    """Only the facts about targets and milestones (what the worked examples check);
    ratings, reporting and rejection notices have tests of their own."""
    return tuple(x for x in derived if not isinstance(x, NOTICE_ONLY))
