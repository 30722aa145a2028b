"""Decisions on evidence follow one table (svmon.core.decisions.RULES, shown in
docs/measurement.md): worked examples of each refusal, then a property over random
sequences of decisions by random actors, with retries."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svmon.core import events as ev
from svmon.core.decisions import OUTCOME, RULES, AlreadyDecided, ManagersDecision
from svmon.core.errors import RejectedEvent
from svmon.core.fold import fold, fold_all
from svmon.core.state import ContractState, Totals
from tests.unit._builders import (
    CATALOGUE,
    apply,
    at,
    committed,
    registered,
    rejected,
    retracted,
    submitted,
    verified,
)

STATUSES = ("submitted", "verified", "rejected", "retracted")


def _state(*decisions: ev.ContractEvent) -> ContractState:
    return apply([registered(), committed("NT1", "10"),
                  submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-03"),
                  *decisions])[0]


def _refused(s: ContractState, e: ev.ContractEvent) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as caught:
        fold(s, e, CATALOGUE)
    return caught.value


# ------------------------------------------------------------ worked examples


def test_retracting_retracted_evidence_again_is_refused_as_already_decided() -> None:
    s = _state(retracted("E1", "2025-02-04"))
    err = _refused(s, retracted("E1", "2025-02-05", event_id="C-001:E1:retracted-again"))
    assert isinstance(err, AlreadyDecided)
    assert err.field == "evidence_id" and "retracted" in str(err)
    assert "C-001:E1:retracted" in err.expected  # the decision on record


def test_a_supplier_cannot_retract_evidence_its_manager_verified() -> None:
    s = _state(verified("E1", "2025-02-04"))
    err = _refused(s, retracted("E1", "2025-02-05"))
    assert isinstance(err, ManagersDecision)
    assert "verified by 'mgr-aoife'" in str(err.got)
    assert s.totals_for("NT1") == Totals(D(2), D(2))  # still counted


def test_verifying_or_rejecting_twice_is_refused_as_already_decided() -> None:
    s = _state(verified("E1", "2025-02-04"))
    assert isinstance(_refused(s, verified("E1", "2025-02-05", event_id="v2")), AlreadyDecided)
    s = _state(rejected("E1", "2025-02-04"))
    assert isinstance(_refused(s, rejected("E1", "2025-02-05", event_id="r2")), AlreadyDecided)


def test_final_statuses_refuse_other_decisions_as_before() -> None:
    for first in (rejected("E1", "2025-02-04"), retracted("E1", "2025-02-04")):
        err = _refused(_state(first), verified("E1", "2025-02-05"))
        assert type(err) is RejectedEvent and err.field == "evidence_id"
        assert err.expected == "evidence that is submitted"
    err = _refused(_state(retracted("E1", "2025-02-04")), rejected("E1", "2025-02-05"))
    assert type(err) is RejectedEvent and err.expected == "evidence that is submitted or verified"


def test_the_manager_may_reject_verified_evidence_on_a_second_look() -> None:
    s = _state(verified("E1", "2025-02-04"), rejected("E1", "2025-03-01"))
    assert s.evidence["E1"].status == "rejected"
    assert s.totals_for("NT1") == Totals(D(0), D(0))


def test_the_same_event_again_changes_nothing_in_every_status() -> None:
    firsts = {"verified": verified("E1", "2025-02-04"), "rejected": rejected("E1", "2025-02-04"),
              "retracted": retracted("E1", "2025-02-04")}
    for status, first in firsts.items():
        s = _state(first)
        assert s.evidence["E1"].status == status
        again, derived = fold(s, first, CATALOGUE)
        assert again == s and derived == ()


def test_a_refused_decision_is_left_out_of_the_log_fold() -> None:
    log = [registered(), committed("NT1", "10"),
           submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-03"),
           verified("E1", "2025-02-04"), retracted("E1", "2025-02-05"),
           retracted("E1", "2025-02-06", event_id="again")]
    states, _ = fold_all(log, CATALOGUE)
    s = states["C-001"]
    assert s.evidence["E1"].status == "verified"
    assert s.evidence["E1"].event_ids[1:] == ("C-001:E1:verified",)


def test_the_table_covers_every_status_and_decision() -> None:
    assert set(RULES) == {(s, d) for s in STATUSES for d in OUTCOME}
    # only a change of status is ever allowed: no decision is recorded twice
    assert all(v != "allowed" or OUTCOME[d] != s for (s, d), v in RULES.items())


# ------------------------------------------------------------------ property

MANAGER, SUPPLIER, OTHER = "mgr-aoife", "supplier:S01", "supplier:S99"
KINDS = {ev.EvidenceVerified: "manager", ev.EvidenceRejected: "manager",
         ev.EvidenceRetracted: "supplier"}


def _decision(kind: type[ev.ContractEvent], actor: str, n: int) -> ev.ContractEvent:
    fields = {"note": ""} if kind is ev.EvidenceVerified else {"reason": "because"}
    return kind(event_id=f"d{n}", contract_id="C-001", occurred_at=at("2025-02-04", 12),
                actor=actor, evidence_id="E1", **fields)


steps = st.lists(st.tuples(st.sampled_from(list(OUTCOME)),
                           st.sampled_from([MANAGER, SUPPLIER, OTHER]),
                           st.booleans()),  # a retry of an event sent before
                 max_size=12)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_every_decision_follows_the_table(plan: list[tuple[type[ev.ContractEvent], str, bool]]
                                         ) -> None:
    s = _state()
    sent: list[ev.ContractEvent] = []
    applied: set[str] = set()
    for n, (kind, actor, retry) in enumerate(plan):
        e = sent[n % len(sent)] if retry and sent else _decision(kind, actor, n)
        sent.append(e)
        before = s
        rec = s.evidence["E1"]
        rightful = (MANAGER if KINDS[type(e)] == "manager" else SUPPLIER) == e.actor
        try:
            s, _ = fold(s, e, CATALOGUE)
        except RejectedEvent as err:
            assert e.event_id not in applied  # a retry of an applied event is never refused
            if not rightful:
                assert err.field == "actor"
            else:
                verdict = RULES[(rec.status, type(e))]
                assert verdict != "allowed" and err.field == "evidence_id"
                want = {"already decided": AlreadyDecided,
                        "the manager's decision": ManagersDecision}.get(verdict, RejectedEvent)
                assert type(err) is want
            continue
        if e.event_id in applied:  # the same event again
            assert s == before
            continue
        assert rightful and RULES[(rec.status, type(e))] == "allowed"
        applied.add(e.event_id)
        new = s.evidence["E1"]
        assert new.status == OUTCOME[type(e)] != rec.status
        assert new.decided_by == e.actor and s.version == before.version + 1
        counted = D(2) if new.status in ("submitted", "verified") else D(0)
        assert s.totals_for("NT1") == Totals(counted, D(2) if new.status == "verified" else D(0))
