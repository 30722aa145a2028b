"""Worked examples of the fold: concrete dates, concrete numbers, exact Decimals.

The contract C-001 runs 2025-01-01..2025-12-31 (365 days) on catalogue DEMO-2025 and
commits to 10 local FTE (NT1) and 1,000 volunteering hours (L-VOL). Policy defaults:
at risk when forecast < 90 % of target once 20 % of the term has elapsed, forecasts and
milestone judgements 30 days in arrears (a milestone is judged on the first tick dated
more than 30 days after it is due).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from svmon.core import events as ev
from svmon.core.decisions import ManagersDecision
from svmon.core.errors import NotYetKnown, RejectedEvent
from svmon.core.fold import fold, fold_all
from svmon.core.rules import Policy
from svmon.core.state import ContractState, Totals, state_from_dict, state_to_dict
from tests.unit._builders import (
    CATALOGUE,
    all_derived,
    apply,
    at,
    committed,
    d,
    derived_of,
    final_period_reported_in_arrears,
    milestone,
    registered,
    rejected,
    retracted,
    submitted,
    target_facts,
    tick,
    verified,
)

D = Decimal


def setup_events() -> list[ev.ContractEvent]:
    return [
        registered(),
        committed("NT1", "10"),
        committed("L-VOL", "1000"),
        milestone("NT1-Q1", "NT1", "2025-03-31", "2"),
        milestone("L-VOL-H1", "L-VOL", "2025-06-30", "500"),
    ]


def first_quarter() -> list[ev.ContractEvent]:
    return [
        submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
        submitted("E4", "L-VOL", "80.25", "2025-01-01", "2025-01-31", "2025-02-05"),
        retracted("E4", "2025-02-07"),
        verified("E1", "2025-02-10"),
        tick("2025-03-01"),
        submitted("E2", "NT1", "2", "2025-02-01", "2025-02-28", "2025-03-05"),
        rejected("E2", "2025-03-10"),
        tick("2025-04-01"),
        submitted("E3", "L-VOL", "120.5", "2025-01-01", "2025-03-31", "2025-04-03"),
        tick("2025-04-30"),
        tick("2025-05-01"),
    ]


def rest_of_year() -> list[ev.ContractEvent]:
    return [
        submitted("E5", "L-VOL", "700", "2025-04-01", "2025-06-30", "2025-07-03"),
        verified("E3", "2025-07-04"),
        verified("E5", "2025-07-05"),
        tick("2025-07-30"),
        tick("2025-07-31"),
        submitted("E6", "NT1", "9", "2025-03-01", "2025-07-31", "2025-08-05"),
        verified("E6", "2025-08-08"),
        tick("2025-12-31"),
        tick("2026-01-01"),
        tick("2026-01-30"),
        tick("2026-01-31"),
        tick("2026-03-01"),
    ]


def whole_year() -> list[ev.ContractEvent]:
    return setup_events() + first_quarter() + rest_of_year()


# ------------------------------------------------------------------ totals


def test_registration_commitments_and_milestones_build_the_state() -> None:
    s, log = apply(setup_events())
    assert s.terms is not None
    assert (s.terms.start, s.terms.end) == (d("2025-01-01"), d("2025-12-31"))
    assert s.terms.catalogue_edition == "DEMO-2025"
    assert {m: c.target for m, c in s.commitments.items()} == {"NT1": D(10), "L-VOL": D(1000)}
    assert {k: (m.measure, m.due, m.cumulative_target, m.status)
            for k, m in s.milestones.items()} == {
        "NT1-Q1": ("NT1", d("2025-03-31"), D(2), "scheduled"),
        "L-VOL-H1": ("L-VOL", d("2025-06-30"), D(500), "scheduled"),
    }
    assert s.measures() == ["L-VOL", "NT1"]
    assert s.version == 5
    assert all_derived(log) == []


def test_claimed_and_verified_totals_after_the_first_quarter() -> None:
    s, _ = apply(setup_events() + first_quarter())
    # NT1: E1 (1, verified) counts; E2 (2, rejected) does not.
    assert s.totals_for("NT1") == Totals(claimed=D("1"), verified=D("1"))
    # L-VOL: E3 (120.5, submitted) is claimed only; E4 (80.25) was retracted.
    assert s.totals_for("L-VOL") == Totals(claimed=D("120.5"), verified=D(0))
    assert {k: r.status for k, r in s.evidence.items()} == {
        "E1": "verified", "E2": "rejected", "E3": "submitted", "E4": "retracted"}
    assert s.evidence["E2"].reason == "no payroll"
    assert s.evidence["E2"].decided_by == "mgr-aoife"  # the contract's manager reviews
    assert s.evidence["E2"].decided_at == at("2025-03-10", 15)
    assert s.last_evidence_at == at("2025-04-03", 10)
    assert s.as_of == at("2025-05-01")


def test_totals_at_the_end_of_the_year() -> None:
    s, _ = apply(whole_year())
    assert s.totals_for("NT1") == Totals(claimed=D("10"), verified=D("10"))
    assert s.totals_for("L-VOL") == Totals(claimed=D("820.5"), verified=D("820.5"))
    assert s.totals_for("D-SME") == Totals()  # never committed nor delivered


def test_rejecting_verified_evidence_takes_it_out_of_both_totals() -> None:
    s, _ = apply([
        *setup_events(),
        submitted("E1", "L-VOL", "40.5", "2025-01-01", "2025-01-31", "2025-02-03"),
        submitted("E2", "L-VOL", "12.25", "2025-01-01", "2025-01-31", "2025-02-03"),
        verified("E1", "2025-02-04"),
        verified("E2", "2025-02-04"),
    ])
    assert s.totals_for("L-VOL") == Totals(D("52.75"), D("52.75"))
    s, log = apply([rejected("E1", "2025-03-01", reason="hours double counted")], s)
    assert s.totals_for("L-VOL") == Totals(D("12.25"), D("12.25"))
    # verified evidence is the manager's to withdraw (docs/measurement.md, decisions)
    with pytest.raises(ManagersDecision):
        fold(s, retracted("E2", "2025-03-02"), CATALOGUE)
    s, _ = apply([rejected("E2", "2025-03-02")], s)
    assert s.totals_for("L-VOL") == Totals(D("0.00"), D("0.00"))
    assert target_facts(all_derived(log)) == ()


def test_retracting_submitted_evidence_only_lowers_the_claim() -> None:
    s, _ = apply([
        *setup_events(),
        submitted("E1", "NT1", "3", "2025-01-01", "2025-01-31", "2025-02-03"),
        submitted("E2", "NT1", "1.5", "2025-01-01", "2025-01-31", "2025-02-03"),
        verified("E1", "2025-02-04"),
        retracted("E2", "2025-02-05"),
    ])
    assert s.totals_for("NT1") == Totals(D("3.0"), D("3"))
    assert s.evidence["E2"].status == "retracted"


# ------------------------------------------------------------- derived facts


def test_nothing_is_judged_before_a_fifth_of_the_term_has_been_reported() -> None:
    _, log = apply(setup_events() + first_quarter())
    # 2025-03-01 and 2025-04-01: the basis (30 days earlier) has 29 and 60 of 365 days.
    assert target_facts(derived_of(log, "C-001:tick:2025-03-01")) == ()
    assert target_facts(derived_of(log, "C-001:tick:2025-04-01")) == ()


def test_targets_fall_at_risk_once_a_fifth_of_the_term_is_reported() -> None:
    _, log = apply(setup_events() + first_quarter())
    # 2025-04-30: basis 2025-03-31, 89 of 365 days elapsed (24 %). Forecasts from the
    # claimed totals: NT1 1 × 365/89 = 4.10 < 9; L-VOL 120.5 × 365/89 = 494.19 < 900.
    out = target_facts(derived_of(log, "C-001:tick:2025-04-30"))
    assert [type(x) for x in out] == [ev.TargetAtRisk, ev.TargetAtRisk]
    lvol, nt1 = out
    assert isinstance(lvol, ev.TargetAtRisk) and isinstance(nt1, ev.TargetAtRisk)
    assert (lvol.measure, lvol.target, lvol.claimed) == ("L-VOL", D(1000), D("120.5"))
    assert lvol.forecast.quantize(D("0.01")) == D("494.19")
    assert lvol.threshold == D("0.9")
    assert (nt1.measure, nt1.target, nt1.claimed) == ("NT1", D(10), D(1))
    assert nt1.forecast.quantize(D("0.01")) == D("4.10")
    assert nt1.at == at("2025-04-30") and nt1.caused_by == "C-001:tick:2025-04-30"


def test_milestone_is_judged_on_the_first_tick_more_than_30_days_after_due() -> None:
    s, log = apply(setup_events() + first_quarter())
    # NT1-Q1 is due 2025-03-31. 2025-04-30 is 30 days later: not yet judged.
    assert not any(isinstance(x, ev.MilestoneMissed | ev.MilestoneMet)
                   for x in derived_of(log, "C-001:tick:2025-04-30"))
    # 2025-05-01 is 31 days later: missed, with 1 verified of the 2 due.
    assert derived_of(log, "C-001:tick:2025-05-01") == (ev.MilestoneMissed(
        contract_id="C-001", measure="NT1", caused_by="C-001:tick:2025-05-01",
        at=at("2025-05-01"), milestone_id="NT1-Q1", due=d("2025-03-31"), target=D(2),
        verified=D(1), claimed=D(1), status="partially met",
        axis="delivery time: evidence periods up to 2025-03-31"),)
    assert s.milestones["NT1-Q1"].status == "partially met"
    assert s.milestones["NT1-Q1"].verified_when_judged == D(1)
    assert s.milestones["L-VOL-H1"].status == "scheduled"
    assert s.at_risk == {"NT1", "L-VOL"}


def test_milestone_met_and_target_back_on_track() -> None:
    s, log = apply(whole_year())
    # 2025-07-30: basis 2025-06-30, 180 days; L-VOL 820.5 × 365/180 = 1663.79 ≥ 900.
    # L-VOL-H1 (due 2025-06-30) is only 30 days overdue, so not judged yet.
    out = target_facts(derived_of(log, "C-001:tick:2025-07-30"))
    assert len(out) == 1 and isinstance(out[0], ev.TargetBackOnTrack)
    assert out[0].measure == "L-VOL"
    assert out[0].forecast.quantize(D("0.01")) == D("1663.79")
    # 2025-07-31: judged met with 820.5 verified against 500 due.
    assert derived_of(log, "C-001:tick:2025-07-31") == (ev.MilestoneMet(
        contract_id="C-001", measure="L-VOL", caused_by="C-001:tick:2025-07-31",
        at=at("2025-07-31"), milestone_id="L-VOL-H1", due=d("2025-06-30"), target=D(500),
        verified=D("820.5"), status="met",
        axis="delivery time: evidence periods up to 2025-06-30"),)
    assert s.milestones["L-VOL-H1"].status == "met"


def test_verification_that_reaches_the_target_announces_it_met() -> None:
    _, log = apply(whole_year())
    out = derived_of(log, "C-001:E6:verified")
    assert out == (
        ev.TargetMet(contract_id="C-001", measure="NT1", caused_by="C-001:E6:verified",
                     at=at("2025-08-08", 15), target=D(10), verified=D(10)),
        ev.TargetBackOnTrack(contract_id="C-001", measure="NT1",
                             caused_by="C-001:E6:verified", at=at("2025-08-08", 15),
                             target=D(10), forecast=D(10)),
        # E6 (9 FTE, 2025-03-01..07-31) counts 9 × 31/153 = 1.823529 towards NT1-Q1 (due
        # 2025-03-31), judged short on 2025-05-01: re-judged, met late
        ev.MilestoneMet(contract_id="C-001", measure="NT1", caused_by="C-001:E6:verified",
                        at=at("2025-08-08", 15), milestone_id="NT1-Q1", due=d("2025-03-31"),
                        target=D(2), verified=D("2.823529"), status="met late",
                        axis="delivery time: evidence periods up to 2025-03-31"),
    )


def test_a_target_slips_back_to_at_risk_late_in_the_term() -> None:
    _, log = apply(whole_year())
    # 2025-12-31: basis 2025-12-01, 334 days; L-VOL 820.5 × 365/334 = 896.65 < 900.
    out = target_facts(derived_of(log, "C-001:tick:2025-12-31"))
    assert len(out) == 1 and isinstance(out[0], ev.TargetAtRisk)
    assert out[0].measure == "L-VOL"
    assert out[0].forecast.quantize(D("0.01")) == D("896.65")


def test_term_end_settles_each_commitment_once() -> None:
    s, log = apply(whole_year())
    # The term ends 2025-12-31, but December is reported in arrears: the term is settled
    # on the first tick more than 30 days after the end. L-VOL is missed, NT1 was met.
    assert derived_of(log, "C-001:tick:2026-01-01") == ()
    assert derived_of(log, "C-001:tick:2026-01-30") == ()
    assert target_facts(derived_of(log, "C-001:tick:2026-01-31")) == (ev.TargetMissed(
        contract_id="C-001", measure="L-VOL", caused_by="C-001:tick:2026-01-31",
        at=at("2026-01-31"), target=D(1000), verified=D("820.5"), claimed=D("820.5")),)
    assert derived_of(log, "C-001:tick:2026-03-01") == ()  # closed: settled once
    assert s.closed
    assert s.at_risk == frozenset()
    assert s.met == {"NT1"}


def test_final_period_reported_within_the_lag_counts_before_settlement() -> None:
    s, log = apply(final_period_reported_in_arrears())
    assert [type(x) for x in derived_of(log, "C-001:E2:verified")] == [ev.TargetMet]
    # settled with nothing missed (the rating is retired: no more ratings after the term)
    assert target_facts(derived_of(log, "C-001:tick:2026-02-01")) == ()
    assert [(x.kind, x.rating) for x in derived_of(log, "C-001:tick:2026-02-01")] == [
        ("RatingChanged", "other")]
    assert s.closed
    assert s.totals_for("L-VOL") == Totals(D(1000), D(1000))


def test_extending_the_term_reopens_a_settled_contract() -> None:
    s, _ = apply(whole_year())
    assert s.closed
    extended = replace(registered(end="2026-12-31"), event_id="C-001:registered:v2",
                       occurred_at=at("2026-03-02", 9))
    s, log = apply([extended, tick("2026-04-01")], s)
    assert not s.closed
    assert s.terms is not None and s.terms.end == d("2026-12-31")
    assert s.terms.event_ids == ("C-001:registered", "C-001:registered:v2")
    # L-VOL 820.5 × 730/425 = 1409 ≥ 900 over the longer term: nothing to report yet
    assert target_facts(all_derived(log)) == ()
    # the new term is settled in its turn, once its reporting window has passed
    s, log = apply([tick("2027-01-30"), tick("2027-01-31")], s)
    # monitoring resumed: 820.5 × 730/729 = 821.63 < 900 as at the new end
    assert [(x.kind, x.measure) for x in target_facts(derived_of(
        log, "C-001:tick:2027-01-30"))] == [("TargetAtRisk", "L-VOL")]
    assert [(x.kind, x.measure) for x in target_facts(derived_of(
        log, "C-001:tick:2027-01-31"))] == [("TargetMissed", "L-VOL")]
    assert s.closed


def test_target_missed_reports_claimed_and_verified_separately() -> None:
    _, log = apply([
        *setup_events(),
        submitted("E1", "NT1", "4", "2025-01-01", "2025-06-30", "2025-07-03"),
        submitted("E2", "NT1", "3.5", "2025-07-01", "2025-12-31", "2025-12-31"),
        verified("E1", "2025-07-04"),
        tick("2026-02-01"),
    ])
    out = derived_of(log, "C-001:tick:2026-02-01")
    missed = [x for x in out if isinstance(x, ev.TargetMissed)]
    assert [(x.measure, x.target, x.verified, x.claimed) for x in missed] == [
        ("L-VOL", D(1000), D(0), D(0)),
        ("NT1", D(10), D(4), D("7.5")),
    ]
    # Both milestones were long overdue at that tick too: judged first, in due order.
    # NT1-Q1 (2 by 2025-03-31) counts E1 (4 FTE, 2025-01-01..06-30) pro rata by days:
    # 4 × 90/181 = 1.988950 (6 places, half-even), short of 2: partially met.
    assert [(x.kind, x.milestone_id, x.verified, x.status)  # type: ignore[attr-defined]
            for x in out if isinstance(x, ev.MilestoneMet | ev.MilestoneMissed)] == [
        ("MilestoneMissed", "NT1-Q1", D("1.988950"), "partially met"),
        ("MilestoneMissed", "L-VOL-H1", D(0), "not met")]
    assert out.index(missed[0]) > 1


def test_derived_ids_are_stable_and_name_cause_kind_measure_and_subject() -> None:
    _, log = apply(whole_year())
    ids = [x.derived_id for x in all_derived(log)]
    assert "C-001/C-001:tick:2025-05-01/MilestoneMissed/NT1/NT1-Q1" in ids
    assert "C-001/C-001:tick:2025-04-30/TargetAtRisk/L-VOL" in ids
    assert "C-001/C-001:tick:2026-01-31/TargetMissed/L-VOL" in ids
    assert len(ids) == len(set(ids))
    _, again = apply(whole_year())
    assert [x.derived_id for x in all_derived(again)] == ids


def test_milestone_scheduled_after_its_judgement_date_is_judged_at_once() -> None:
    s, log = apply([
        *setup_events(),
        tick("2025-06-01"),
        milestone("NT1-M2", "NT1", "2025-04-15", "1", when="2025-06-02"),
    ])
    out = derived_of(log, "C-001:milestone:NT1-M2")
    assert [(type(x), x.milestone_id, x.caused_by, x.at) for x in out  # type: ignore[attr-defined]
            ] == [(ev.MilestoneMissed, "NT1-M2", "C-001:milestone:NT1-M2", at("2025-06-01"))]
    assert s.milestones["NT1-M2"].status == "not met"


def test_commitment_amended_below_verified_delivery_is_met() -> None:
    s, _ = apply([
        *setup_events(),
        submitted("E1", "NT1", "6", "2025-01-01", "2025-03-31", "2025-04-03"),
        verified("E1", "2025-04-04"),
    ])
    s, log = apply([committed("NT1", "5", event_id="C-001:commit:NT1:v2", when="2025-05-01")],
                   s)
    assert s.commitments["NT1"].target == D(5)
    assert s.commitments["NT1"].event_ids == ("C-001:commit:NT1", "C-001:commit:NT1:v2")
    assert [type(x) for x in all_derived(log)] == [ev.TargetMet]
    assert "NT1" in s.met
    s, _ = apply([rejected("E1", "2025-05-02")], s)
    assert "NT1" not in s.met  # verified delivery fell back below the target


def test_policy_lag_is_configurable() -> None:
    events = [*setup_events(), tick("2025-04-10")]
    s, derived = fold_all(events, CATALOGUE, Policy(reporting_lag_days=7))
    # 2025-04-10 is 10 days after NT1-Q1 was due: judged with a 7-day lag ...
    assert next(x.kind for x in derived if x.measure == "NT1") == "MilestoneMissed"
    assert s["C-001"].milestones["NT1-Q1"].status == "not met"
    # ... but not with the default 30 days.
    s, derived = fold_all(events, CATALOGUE)
    assert s["C-001"].milestones["NT1-Q1"].status == "scheduled"
    assert not any(x.kind.startswith("Milestone") for x in derived)


# ---------------------------------------------------------------- rejections


def _registered_state() -> ContractState:
    return apply(setup_events())[0]


def _reject(state: ContractState, event: ev.ContractEvent) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as caught:
        fold(state, event, CATALOGUE)
    err = caught.value
    assert isinstance(err, ValueError)
    assert repr(err.field) in str(err)  # the message names the field
    assert err.event_id == event.event_id
    if event.contract_id == state.contract_id:
        assert err.contract_id == event.contract_id
    return err


@pytest.mark.parametrize("event", [
    submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
    committed("NT1", "10"),
    milestone("NT1-Q1", "NT1", "2025-03-31", "2"),
    verified("E1", "2025-02-10"),
    rejected("E1", "2025-02-10"),
    retracted("E1", "2025-02-10"),
], ids=lambda e: type(e).__name__)
def test_event_before_registration_is_rejected_as_unknown_contract(
        event: ev.ContractEvent) -> None:
    err = _reject(ContractState("C-001"), event)
    assert err.field == "contract_id"
    assert err.expected == "a registered contract"


def test_event_for_another_contract_is_rejected() -> None:
    err = _reject(_registered_state(), committed("NT1", "3", cid="C-002"))
    assert err.field == "contract_id"
    assert err.got == "C-002"
    assert "'C-001'" in str(err)  # says which contract the state belongs to


@pytest.mark.parametrize("event", [
    committed("NOPE", "1"),
    committed("X17-VOL", "1"),  # exists, but in another catalogue edition
    submitted("E9", "NOPE", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
    milestone("M9", "D-SME", "2025-03-31", "1"),  # catalogued but not committed
], ids=["commit-unknown", "commit-other-edition", "evidence-unknown", "milestone-uncommitted"])
def test_unknown_measure_is_rejected(event: ev.ContractEvent) -> None:
    err = _reject(_registered_state(), event)
    assert err.field == "measure"


@pytest.mark.parametrize(("start", "end"), [
    ("2024-12-01", "2024-12-31"),  # before the term
    ("2025-12-01", "2026-01-15"),  # runs past the end
    ("2024-12-15", "2025-01-15"),  # starts before the start
])
def test_evidence_period_outside_the_term_is_rejected(start: str, end: str) -> None:
    err = _reject(_registered_state(),
                  submitted("E9", "NT1", "1", start, end, "2026-02-01"))
    assert err.field == "period"
    assert err.got == f"{start}..{end}"


@pytest.mark.parametrize("start, end", [
    ("2025-03-01", "2025-03-31"),  # not yet begun
    ("2025-02-01", "2025-02-28"),  # begun but not yet over
])
def test_evidence_for_a_period_not_yet_over_is_rejected(start: str, end: str) -> None:
    err = _reject(_registered_state(), submitted("E9", "NT1", "1", start, end, "2025-02-15"))
    assert err.field == "period_end"
    assert err.got == end


def test_evidence_in_another_unit_than_the_measure_is_rejected() -> None:
    e = replace(submitted("E9", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-15"),
                unit="hours")
    err = _reject(_registered_state(), e)
    assert err.field == "unit"
    assert "no. people FTE" in err.expected
    ok = replace(e, unit="No. People  FTE")  # case and spacing do not matter
    s, _ = fold(_registered_state(), ok, CATALOGUE)
    assert s.totals_for("NT1").claimed == Decimal(1)


@pytest.mark.parametrize("due", ["2024-12-31", "2026-01-01"])
def test_milestone_due_outside_the_term_is_rejected(due: str) -> None:
    err = _reject(_registered_state(), milestone("NT1-X", "NT1", due, "1"))
    assert err.field == "due"
    assert err.got == due


def test_milestone_above_the_commitment_is_rejected() -> None:
    err = _reject(_registered_state(), milestone("NT1-X", "NT1", "2025-06-30", "10.01"))
    assert err.field == "cumulative_target"


def test_verifying_retracted_evidence_is_rejected() -> None:
    s, _ = apply([submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
                  retracted("E1", "2025-02-06")], _registered_state())
    err = _reject(s, verified("E1", "2025-02-07"))
    assert err.field == "evidence_id"
    assert "retracted" in str(err)
    assert s.totals_for("NT1") == Totals(D(0), D(0))


def test_rejecting_retracted_evidence_is_rejected() -> None:
    s, _ = apply([submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
                  retracted("E1", "2025-02-06")], _registered_state())
    assert _reject(s, rejected("E1", "2025-02-07")).field == "evidence_id"


def test_verifying_rejected_evidence_is_rejected() -> None:
    s, _ = apply([submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
                  rejected("E1", "2025-02-06")], _registered_state())
    err = _reject(s, verified("E1", "2025-02-07"))
    assert err.field == "evidence_id"
    assert "rejected" in str(err)


@pytest.mark.parametrize("event", [
    verified("E404", "2025-02-10"),
    rejected("E404", "2025-02-10"),
    retracted("E404", "2025-02-10"),
], ids=lambda e: type(e).__name__)
def test_decision_on_unknown_evidence_is_rejected(event: ev.ContractEvent) -> None:
    err = _reject(_registered_state(), event)
    assert err.field == "evidence_id"
    assert err.got == "E404"


def test_registration_with_unknown_edition_or_inverted_term_is_rejected() -> None:
    fresh = ContractState("C-001")
    assert _reject(fresh, registered(edition="NT2099")).field == "catalogue_edition"
    assert _reject(fresh, registered(start="2025-12-31", end="2025-01-01")).field == "end"


def test_amended_registration_may_not_strand_a_commitment() -> None:
    amended = registered(edition="TOMS-2017-EXAMPLES", event_id="C-001:registered:v2")
    err = _reject(_registered_state(), amended)
    assert err.field == "catalogue_edition"
    assert "'L-VOL'" in str(err)  # names a measure the new edition lacks


def test_fold_all_skips_rejected_events_and_carries_on() -> None:
    events = [submitted("E0", "NT1", "5", "2025-01-01", "2025-01-31", "2025-02-01"),
              *setup_events(),
              submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
              verified("E404", "2025-02-06"),
              verified("E1", "2025-02-07")]
    states, derived = fold_all(events, CATALOGUE)
    assert states["C-001"].totals_for("NT1") == Totals(D(1), D(1))
    assert set(states["C-001"].evidence) == {"E1"}
    assert derived == []


def test_only_the_system_keeps_time() -> None:
    err = _reject(_registered_state(), replace(tick("2025-05-01"), actor="supplier-S01"))
    assert err.field == "actor"


def test_a_tick_may_not_claim_a_time_after_it_was_written() -> None:
    future = replace(tick("2025-05-01"), at=at("2025-05-01", 1))  # an hour ahead
    assert _reject(_registered_state(), future).field == "at"
    slight = replace(tick("2025-05-01"), at=at("2025-05-01") + timedelta(minutes=4))
    s, _ = fold(_registered_state(), slight, CATALOGUE)  # within the allowed clock skew
    assert s.as_of == slight.at


def test_fold_all_keeps_a_refused_event_refused_when_it_comes_again() -> None:
    too_high = milestone("NT1-BIG", "NT1", "2025-06-30", "50")  # above the target of 10
    raised = committed("NT1", "60", event_id="C-001:commit:NT1:v2")
    states, _ = fold_all([*setup_events(), too_high, raised, too_high], CATALOGUE)
    # on its own, the copy would now fold; the log's decision about its id stands
    assert "NT1-BIG" in fold(states["C-001"], too_high, CATALOGUE)[0].milestones
    assert "NT1-BIG" not in states["C-001"].milestones


def test_an_event_that_came_too_early_fits_when_it_comes_again() -> None:
    """Evidence before its contract's registration is refused as not yet known; that
    refusal does not stick (a relay that lost its broker sends it again, in time)."""
    early = submitted("E0", "NT1", "5", "2025-01-01", "2025-01-31", "2025-02-01")
    with pytest.raises(NotYetKnown):
        fold(ContractState("C-001"), early, CATALOGUE)
    states, _ = fold_all([early, *setup_events(), early], CATALOGUE)
    assert states["C-001"].totals_for("NT1").claimed == D(5)
    verify_first = verified("E0", "2025-02-03")
    states, _ = fold_all([verify_first, *setup_events(), early, verify_first], CATALOGUE)
    assert states["C-001"].totals_for("NT1").verified == D(5)


def test_fold_all_refuses_a_different_event_under_a_used_id() -> None:
    first = submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05")
    imposter = replace(first, evidence_id="E2", quantity=D(50))  # same event id
    states, _ = fold_all([*setup_events(), first, imposter, first], CATALOGUE)
    assert set(states["C-001"].evidence) == {"E1"}
    assert states["C-001"].totals_for("NT1") == Totals(D(2), D(0))


# ---------------------------------------------------------------- idempotence


@pytest.mark.parametrize("index", range(len(whole_year())),
                         ids=[e.event_id for e in whole_year()])
def test_applying_an_event_twice_changes_nothing_the_second_time(index: int) -> None:
    events = whole_year()
    s, _ = apply(events[: index + 1])
    again, derived = fold(s, events[index], CATALOGUE)
    assert again == s
    assert derived == ()


def test_whole_log_delivered_twice_over_gives_the_same_state_and_facts() -> None:
    once, log_once = apply(whole_year())
    doubled = [e for e in whole_year() for _ in (1, 2)]
    states, derived = fold_all(doubled, CATALOGUE)
    assert states["C-001"] == once
    assert derived == all_derived(log_once)


def test_redelivered_old_decision_does_not_undo_a_later_one() -> None:
    s, _ = apply([
        *setup_events(),
        submitted("E1", "L-VOL", "50", "2025-01-01", "2025-01-31", "2025-02-03"),
        verified("E1", "2025-02-04"),
        rejected("E1", "2025-02-20"),
    ])
    again, derived = fold(s, verified("E1", "2025-02-04"), CATALOGUE)
    assert again == s and derived == ()
    assert s.totals_for("L-VOL") == Totals(D(0), D(0))


def test_same_evidence_id_under_a_new_event_id_is_refused_and_counted_once() -> None:
    first = submitted("E1", "L-VOL", "75.5", "2025-01-01", "2025-01-31", "2025-02-03")
    resent = replace(first, event_id="C-001:E1:resent", occurred_at=at("2025-02-04", 10))
    s, log = apply([first], _registered_state())
    err = _reject(s, resent)
    assert err.field == "evidence_id" and first.event_id in err.expected
    states, _ = fold_all([*setup_events(), first, resent], CATALOGUE)
    assert states["C-001"].totals_for("L-VOL") == Totals(D("75.5"), D(0))
    assert states["C-001"].evidence["E1"].event_ids == (first.event_id,)
    assert all_derived(log) == []


def test_stale_or_repeated_tick_is_a_no_op() -> None:
    s, _ = apply([*setup_events(), tick("2025-05-01")])
    version = s.version
    for stale in (tick("2025-05-01", event_id="other-tick"), tick("2025-04-01")):
        again, derived = fold(s, stale, CATALOGUE)
        assert again == s and derived == ()
    assert s.version == version


def test_retracting_rejected_evidence_is_refused_as_the_managers_decision() -> None:
    s, _ = apply([submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
                  rejected("E1", "2025-02-06")], _registered_state())
    with pytest.raises(ManagersDecision) as caught:
        fold(s, retracted("E1", "2025-02-07"), CATALOGUE)
    assert caught.value.field == "evidence_id" and "rejected" in str(caught.value)
    again, derived = fold(s, rejected("E1", "2025-02-06"), CATALOGUE)  # the same event
    assert again == s and derived == ()


# ---------------------------------------------------------------- JSON codec


def test_state_round_trips_through_json() -> None:
    s, _ = apply(whole_year())
    text = json.dumps(state_to_dict(s))
    back = state_from_dict(json.loads(text))
    assert back == s
    assert back.totals_for("L-VOL").verified == D("820.5")
    assert back.evidence["E2"].decided_at == at("2025-03-10", 15)
    assert state_to_dict(back) == state_to_dict(s)


def test_state_round_trip_preserves_decimal_scale_and_open_statuses() -> None:
    s, _ = apply(setup_events() + first_quarter())  # mid-term: at risk, milestones open
    back = state_from_dict(json.loads(json.dumps(state_to_dict(s))))
    assert back == s
    # 80.25 + 120.5 − 80.25 = 120.50: the scale the arithmetic produced is kept
    assert str(back.totals_for("L-VOL").claimed) == str(s.totals_for("L-VOL").claimed)
    assert str(s.totals_for("L-VOL").claimed) == "120.50"
    assert back.at_risk == {"NT1", "L-VOL"}
    assert back.milestones["L-VOL-H1"].status == "scheduled"
    assert back.evidence["E3"].decided_at is None
    # and the round-tripped state folds on exactly as the original does
    assert apply(rest_of_year(), back) == apply(rest_of_year(), s)


def test_empty_state_round_trips() -> None:
    s = ContractState("C-777")
    assert state_from_dict(json.loads(json.dumps(state_to_dict(s)))) == s
