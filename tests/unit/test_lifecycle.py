"""svmon.alerts.lifecycle.changes_for: which alert each derived fact raises or resolves."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from svmon.alerts.lifecycle import changes_for, open_alerts
from svmon.core import events as ev
from tests.unit._builders import (
    all_derived,
    apply,
    at,
    committed,
    d,
    final_period_reported_in_arrears,
    milestone,
    registered,
    submitted,
    tick,
    verified,
)

D = Decimal
WHEN = at("2025-05-01")
COMMON = {"contract_id": "C-001", "measure": "NT1", "caused_by": "tick-9", "at": WHEN}


def missed(mid: str = "NT1-Q1") -> ev.MilestoneMissed:
    return ev.MilestoneMissed(**COMMON, milestone_id=mid, due=d("2025-03-31"), target=D(2),
                              verified=D(1), claimed=D(1))


FACTS: dict[str, ev.Derived] = {
    "MilestoneMissed": missed(),
    "MilestoneMet": ev.MilestoneMet(**COMMON, milestone_id="NT1-Q2", due=d("2025-06-30"),
                                    target=D(4), verified=D(5)),
    "TargetAtRisk": ev.TargetAtRisk(**COMMON, target=D(10), forecast=D(4), claimed=D(1),
                                    threshold=D("0.9")),
    "TargetBackOnTrack": ev.TargetBackOnTrack(**COMMON, target=D(10), forecast=D(11)),
    "TargetMet": ev.TargetMet(**COMMON, target=D(10), verified=D(10)),
    "TargetMissed": ev.TargetMissed(**COMMON, target=D(10), verified=D(7), claimed=D(8)),
    "ReportingOverdue": ev.ReportingOverdue(**{**COMMON, "measure": ""}, last_evidence_at=None,
                                            cadence_days=90),
    "ReportingResumed": ev.ReportingResumed(**{**COMMON, "measure": ""}),
    "EvidenceWasRejected": ev.EvidenceWasRejected(**COMMON, evidence_id="E1", quantity=D(2),
                                                  reason="no payroll", reviewer="mgr-a"),
    "RatingChanged": ev.RatingChanged(**COMMON, previous="good", rating="inadequate",
                                      verified=D(1), expected=D(5)),
}

EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "MilestoneMissed": [("raise", "MilestoneMissed", "NT1-Q1")],
    "MilestoneMet": [("resolve", "MilestoneMissed", "")],
    "TargetAtRisk": [("raise", "TargetAtRisk", "")],
    "TargetBackOnTrack": [("resolve", "TargetAtRisk", "")],
    "TargetMet": [("resolve", "TargetAtRisk", ""), ("resolve", "TargetMissed", ""),
                  ("raise", "TargetMet", "")],
    "TargetMissed": [("resolve", "TargetAtRisk", ""), ("raise", "TargetMissed", "")],
    "ReportingOverdue": [("raise", "ReportingOverdue", "")],
    "ReportingResumed": [("resolve", "ReportingOverdue", "")],
    "EvidenceWasRejected": [("raise", "EvidenceRejected", "E1")],
    "RatingChanged": [("raise", "KpiRating", "inadequate")],
}


def test_every_derived_type_is_mapped() -> None:
    assert set(FACTS) == {t.__name__ for t in ev.DERIVED_TYPES} == set(EXPECTED)


@pytest.mark.parametrize("kind", sorted(FACTS))
def test_changes_for_each_derived_fact(kind: str) -> None:
    fact = FACTS[kind]
    changes = changes_for(fact)
    assert [(c.action, c.kind, c.subject) for c in changes] == EXPECTED[kind]
    for c in changes:
        assert (c.contract_id, c.measure, c.at) == ("C-001", fact.measure, WHEN)
        assert c.derived_id == fact.derived_id
        assert c.severity == ("info" if c.kind == "TargetMet" else "warning")


def test_a_better_rating_resolves_the_kpi_alert() -> None:
    better = ev.RatingChanged(**COMMON, previous="inadequate", rating="approaching target",
                              verified=D(5), expected=D(5))
    assert [(c.action, c.kind) for c in changes_for(better)] == [("resolve", "KpiRating")]


def test_base_derived_fact_changes_nothing() -> None:
    assert changes_for(ev.Derived(**COMMON)) == []


def test_each_rejected_evidence_is_its_own_alert() -> None:
    [a] = changes_for(FACTS["EvidenceWasRejected"])
    other = replace(FACTS["EvidenceWasRejected"], evidence_id="E2")
    [b] = changes_for(other)
    assert a.identity == ("C-001", "NT1", "EvidenceRejected", "E1")
    assert b.identity == ("C-001", "NT1", "EvidenceRejected", "E2")
    assert open_alerts([FACTS["EvidenceWasRejected"], other]) == {a.identity, b.identity}


def test_identity_is_contract_measure_and_kind() -> None:
    [a] = changes_for(missed("NT1-Q1"))
    [b] = changes_for(missed("NT1-Q2"))
    assert a.identity == b.identity == ("C-001", "NT1", "MilestoneMissed", "")
    assert (a.subject, b.subject) == ("NT1-Q1", "NT1-Q2")
    [risk] = changes_for(FACTS["TargetAtRisk"])
    [back] = changes_for(FACTS["TargetBackOnTrack"])
    assert risk.identity == back.identity == ("C-001", "NT1", "TargetAtRisk", "")


def test_open_alerts_keeps_one_per_identity() -> None:
    facts = [missed("NT1-Q1"), missed("NT1-Q2"), missed("NT1-Q1"), FACTS["TargetAtRisk"]]
    assert open_alerts(facts) == {("C-001", "NT1", "MilestoneMissed", ""),
                                  ("C-001", "NT1", "TargetAtRisk", "")}
    other = ev.MilestoneMet(**{**COMMON, "measure": "L-VOL"}, milestone_id="L-VOL-Q1",
                            due=d("2025-03-31"), target=D(1), verified=D(1))
    # a met milestone of another measure leaves NT1's misses open ...
    assert len(open_alerts([*facts, other])) == 2
    # ... one of the same measure closes them; back on track closes the risk
    assert open_alerts([*facts, FACTS["MilestoneMet"], FACTS["TargetBackOnTrack"]]) == set()
    assert open_alerts([*facts, FACTS["TargetMissed"]]) == {
        ("C-001", "NT1", "MilestoneMissed", ""), ("C-001", "NT1", "TargetMissed", "")}


def test_alerts_from_a_folded_log_open_and_close() -> None:
    events = [
        registered(), committed("NT1", "10"),
        milestone("NT1-Q1", "NT1", "2025-03-31", "2"),
        milestone("NT1-Q2", "NT1", "2025-06-30", "4"),
        submitted("E1", "NT1", "1", "2025-01-01", "2025-03-31", "2025-04-03"),
        verified("E1", "2025-04-04"),
        tick("2025-05-01"),  # NT1-Q1 missed (1 of 2), NT1 at risk (1 × 365/90 < 9)
    ]
    _, log = apply(events)
    assert open_alerts(all_derived(log)) == {
        ("C-001", "NT1", "MilestoneMissed", ""),
        ("C-001", "NT1", "TargetAtRisk", ""),
    }
    _, later = apply([
        *events,
        submitted("E2", "NT1", "9", "2025-04-01", "2025-06-30", "2025-07-03"),
        verified("E2", "2025-07-04"),  # target met: at-risk resolved
        tick("2025-08-01"),  # NT1-Q2 met: the earlier miss is history
    ])
    assert open_alerts(all_derived(later)) == {("C-001", "NT1", "TargetMet", "")}  # good news


def test_final_period_reported_in_arrears_leaves_no_target_missed_alert() -> None:
    # Once a TargetMissed raised on the day after the term and never resolved. Fixed in
    # svmon/core/fold.py (settle after the reporting lag) and alerts/lifecycle.py.
    _, log = apply(final_period_reported_in_arrears())  # December reported within the lag
    facts = all_derived(log)
    assert any(isinstance(x, ev.TargetMet) for x in facts)  # the target was met in full
    assert open_alerts(facts) == {("C-001", "L-VOL", "TargetMet", "")}
