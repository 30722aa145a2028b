"""The alerting rules of the core: reporting overdue, evidence rejected, KPI ratings.

Worked examples on one contract (2025-01-01 to 2025-12-31, reporting cadence 90 days,
L-VOL target 1000 hours with quarterly milestones 250 / 500 / 750).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from svmon.core import events as ev
from svmon.core.rules import Policy, RatingThresholds, rating_for
from tests.unit._builders import (
    apply,
    committed,
    derived_of,
    milestone,
    registered,
    rejected,
    submitted,
    tick,
    verified,
)

D = Decimal


def setup() -> list[ev.ContractEvent]:
    return [registered(), committed("L-VOL", "1000"),
            milestone("Q1", "L-VOL", "2025-03-31", "250"),
            milestone("Q2", "L-VOL", "2025-06-30", "500"),
            milestone("Q3", "L-VOL", "2025-09-30", "750")]


def kinds(derived: tuple[ev.Derived, ...]) -> list[str]:
    return [x.kind for x in derived]


def test_reporting_overdue_after_the_cadence_and_resumed_by_evidence() -> None:
    s, log = apply([*setup(), tick("2025-03-31"), tick("2025-04-02")])
    assert "ReportingOverdue" not in kinds(derived_of(log, "C-001:tick:2025-03-31"))  # 89 days
    [overdue] = [x for x in derived_of(log, "C-001:tick:2025-04-02")
                 if isinstance(x, ev.ReportingOverdue)]
    assert overdue.measure == "" and overdue.last_evidence_at is None
    assert overdue.cadence_days == 90 and s.overdue
    s, log = apply([tick("2025-05-01")], s)  # still overdue: announced once only
    assert "ReportingOverdue" not in kinds(derived_of(log, "C-001:tick:2025-05-01"))
    s, log = apply([submitted("E1", "L-VOL", "10", "2025-04-01", "2025-04-30",
                              "2025-05-02")], s)
    assert kinds(derived_of(log, "C-001:E1")) == ["ReportingResumed"] and not s.overdue
    # counted from the last evidence: 90 days after 2025-05-02 10:00 is 2025-07-31 10:00
    s, log = apply([tick("2025-07-31"), tick("2025-08-01")], s)
    assert "ReportingOverdue" not in kinds(derived_of(log, "C-001:tick:2025-07-31"))
    assert "ReportingOverdue" in kinds(derived_of(log, "C-001:tick:2025-08-01"))


def test_rejected_evidence_is_announced_with_its_reason() -> None:
    _, log = apply([*setup(),
                    submitted("E1", "L-VOL", "40", "2025-01-01", "2025-01-31", "2025-02-03"),
                    rejected("E1", "2025-02-05", reason="timesheets unsigned")])
    [notice] = derived_of(log, "C-001:E1:rejected")
    assert isinstance(notice, ev.EvidenceWasRejected)
    assert (notice.evidence_id, notice.quantity, notice.reason, notice.measure) == (
        "E1", D(40), "timesheets unsigned", "L-VOL")
    assert notice.reviewer == "mgr-aoife"  # the contract's manager reviews


def test_rating_changes_are_announced_from_the_second_rating_on() -> None:
    events = [*setup(),
              submitted("E1", "L-VOL", "250", "2025-01-01", "2025-03-31", "2025-04-02"),
              verified("E1", "2025-04-03")]
    # 2025-05-01: basis 2025-04-01 expects 250 + 250 × 1/91 = 252.7; 250 verified → 98.9%
    s, log = apply([*events, tick("2025-05-01")])
    assert s.ratings == {"L-VOL": "approaching target"}
    assert "RatingChanged" not in kinds(derived_of(log, "C-001:tick:2025-05-01"))
    # 2025-07-01: basis 2025-06-01 expects 250 + 250 × 62/91 = 420.3 → 250 is 59% inadequate
    s, log = apply([tick("2025-07-01")], s)
    [changed] = [x for x in derived_of(log, "C-001:tick:2025-07-01")
                 if isinstance(x, ev.RatingChanged)]
    assert (changed.previous, changed.rating) == ("approaching target", "inadequate")
    assert changed.verified == D(250)
    assert changed.expected.quantize(D("0.1")) == D("420.3")
    # delivery recovers: 500 more verified, rating back to good
    s, log = apply([submitted("E2", "L-VOL", "500", "2025-04-01", "2025-06-30", "2025-07-02"),
                    verified("E2", "2025-07-03"), tick("2025-08-01")], s)
    [back] = [x for x in derived_of(log, "C-001:tick:2025-08-01")
              if isinstance(x, ev.RatingChanged)]
    assert (back.previous, back.rating) == ("inadequate", "good")


def test_rating_thresholds_come_from_the_policy() -> None:
    strict = Policy(rating=RatingThresholds(good=D("2"), approaching=D("1.5"),
                                            requires_improvement=D("1.2")))
    from svmon.core.fold import fold_all
    from tests.unit._builders import CATALOGUE
    states, _ = fold_all([*setup(), submitted("E1", "L-VOL", "250", "2025-01-01",
                                              "2025-03-31", "2025-04-02"),
                          verified("E1", "2025-04-03"), tick("2025-05-01")],
                         CATALOGUE, strict)
    assert states["C-001"].ratings == {"L-VOL": "inadequate"}


@settings(max_examples=200, deadline=None)
@given(delivered=st.decimals(0, 10_000, places=2), expected=st.decimals(0, 10_000, places=2))
def test_rating_is_monotone_in_delivery(delivered: Decimal, expected: Decimal) -> None:
    order = ["inadequate", "requires improvement", "approaching target", "good"]
    r = rating_for(delivered, expected)
    if expected == 0:
        assert r == "other"
        return
    more = rating_for(delivered + 1, expected)
    assert order.index(more) >= order.index(r)


def test_reregistering_keeps_routing_fields() -> None:
    s, _ = apply([replace(registered(), deputy="mgr-bilal", supplier_contact="sup-s01")])
    assert s.terms is not None
    assert (s.terms.deputy, s.terms.supplier_contact) == ("mgr-bilal", "sup-s01")


@settings(max_examples=150, deadline=None)
@given(target=st.integers(1, 50), pieces=st.lists(st.tuples(st.integers(1, 20), st.booleans()),
                                                   max_size=6))
def test_a_milestone_alert_is_raised_iff_verified_is_short_at_due_time(
        target: int, pieces: list[tuple[int, bool]]) -> None:
    """Evidence for Q1 (some verified, some not); the milestone is judged once:
    MilestoneMissed iff verified < target when judged, else MilestoneMet."""
    events: list[ev.ContractEvent] = [registered(), committed("L-VOL", "1000"),
                                      milestone("Q1", "L-VOL", "2025-03-31", str(target))]
    verified_total = 0
    for i, (qty, ok) in enumerate(pieces):
        events.append(submitted(f"E{i}", "L-VOL", str(qty), "2025-01-01", "2025-03-31",
                                "2025-04-02"))
        if ok:
            events.append(verified(f"E{i}", "2025-04-03"))
            verified_total += qty
    events += [tick("2025-05-01"), tick("2025-06-01")]
    _, log = apply(events)
    facts = [x for _, d in log for x in d if isinstance(x, ev.MilestoneMissed | ev.MilestoneMet)]
    assert len(facts) == 1
    assert isinstance(facts[0], ev.MilestoneMissed) == (verified_total < target)


def _behind() -> list[ev.ContractEvent]:
    """L-VOL: 100 of 1000 hours claimed and verified by the end of March."""
    return [submitted("E1", "L-VOL", "100", "2025-01-01", "2025-03-31", "2025-04-02"),
            verified("E1", "2025-04-03")]


def test_a_contracts_own_thresholds_override_the_global_policy() -> None:
    # globally: at risk (100 × 365/90 = 405 < 900) and Q1 judged only 30 days after due
    _, log = apply([*setup(), *_behind(), tick("2025-04-02"), tick("2025-05-02")])
    assert "MilestoneMissed" not in kinds(derived_of(log, "C-001:tick:2025-04-02"))
    assert {"MilestoneMissed", "TargetAtRisk"} <= set(kinds(derived_of(
        log, "C-001:tick:2025-05-02")))
    # this contract: judged at the first tick after due, at risk only below 30% of target
    own = replace(registered(), policy=(("at_risk_threshold", D("0.3")),
                                        ("reporting_lag_days", D(0))))
    _, log = apply([own, *setup()[1:], *_behind(), tick("2025-04-02"), tick("2025-05-02")])
    assert "MilestoneMissed" in kinds(derived_of(log, "C-001:tick:2025-04-02"))
    assert "TargetAtRisk" not in kinds(derived_of(log, "C-001:tick:2025-05-02"))


def test_contract_policy_travels_on_the_wire_and_in_the_state() -> None:
    from svmon.core.state import state_from_dict, state_to_dict
    from svmon.schemas import decode_event, encode_event

    own = replace(registered(), policy=(("at_risk_threshold", D("0.8")),
                                        ("rating_good", D("1.05"))))
    assert decode_event(encode_event(own)) == own
    s, _ = apply([own])
    assert state_from_dict(state_to_dict(s)) == s
    assert s.terms is not None and dict(s.terms.policy)["rating_good"] == D("1.05")


def test_an_unknown_policy_key_is_refused() -> None:
    import json

    import pytest

    from svmon.core.errors import SchemaError
    from svmon.schemas import decode_event, encode_event

    body = json.loads(encode_event(registered()))
    body["data"]["policy"] = {"at_risk_treshold": "0.8"}
    with pytest.raises(SchemaError) as err:
        decode_event(json.dumps(body))
    assert err.value.field == "data.policy.at_risk_treshold"
