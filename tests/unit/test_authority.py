"""Who may assert what (issue #21): the fold checks every event's actor against its type
and the contract, so an event forged straight onto the topic is refused and counts for
nothing, whatever channel it came by (svmon.core.authority)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svmon.api import service
from svmon.core import authority
from svmon.core import events as ev
from svmon.core.errors import NotYetKnown, RejectedEvent
from svmon.core.fold import fold, fold_all
from svmon.core.state import ContractState
from svmon.models.ingest import Principal
from svmon.schemas import SCHEMA_VERSION, decode_event
from tests.unit._builders import (
    CATALOGUE,
    MANAGER,
    SUPPLIER,
    apply,
    at,
    committed,
    milestone,
    registered,
    rejected,
    retracted,
    submitted,
    tick,
    verified,
)

DEPUTY = "mgr-bilal"
OTHER_SUPPLIER = "supplier:S02"
OTHER_MANAGER = "mgr-carys"
# actors that are nobody's: unauthenticated, the system, garbled
NOBODY = ["system", "", "supplier:", "manager:mgr-aoife", "S01", "supplier-S01",
          " mgr-aoife", "mgr-aoife\n", "supplier:S01:x"]


def _contract() -> ContractState:
    """C-001 (manager mgr-aoife, deputy mgr-bilal, supplier S01) committed to 1000 L-VOL,
    with E1 (600, verified) and E2 (400, waiting for a decision)."""
    s, _ = apply([
        replace(registered(), deputy=DEPUTY),
        committed("L-VOL", "1000"),
        milestone("Q1", "L-VOL", "2025-03-31", "250"),
        submitted("E1", "L-VOL", "600", "2025-01-01", "2025-01-31", "2025-02-03"),
        verified("E1", "2025-02-05"),
        submitted("E2", "L-VOL", "400", "2025-02-01", "2025-02-28", "2025-03-03"),
    ])
    return s


# one event of each type, each of which would change C-001; "manager" events need the
# manager or deputy, "supplier" events S01's actor, the tick the system's
PRIVILEGED: dict[str, ev.ContractEvent] = {
    "ContractRegistered": replace(registered(event_id="C-001:amended", end="2026-12-31"),
                                  deputy=DEPUTY),
    # lowering the target to what is verified already would announce TargetMet
    "CommitmentMade": committed("L-VOL", "600", event_id="C-001:lowered"),
    "MilestoneScheduled": milestone("Q2", "L-VOL", "2025-06-30", "500"),
    # verifying E2 brings verified delivery to the target
    "EvidenceVerified": verified("E2", "2025-03-05"),
    "EvidenceRejected": rejected("E2", "2025-03-05"),
    "EvidenceSubmitted": submitted("E3", "L-VOL", "400", "2025-03-01", "2025-03-31",
                                   "2025-04-02"),
    "EvidenceRetracted": retracted("E2", "2025-03-04"),
    "ClockTicked": tick("2025-04-01"),
}
RIGHTFUL = {"ContractRegistered": [MANAGER, DEPUTY], "CommitmentMade": [MANAGER, DEPUTY],
            "MilestoneScheduled": [MANAGER, DEPUTY], "EvidenceVerified": [MANAGER, DEPUTY],
            "EvidenceRejected": [MANAGER, DEPUTY], "EvidenceSubmitted": [SUPPLIER],
            "EvidenceRetracted": [SUPPLIER], "ClockTicked": ["system"]}
WRONG = {  # for each type: the other parties, then nobody's actors
    name: [a for a in [SUPPLIER, OTHER_SUPPLIER, MANAGER, DEPUTY, OTHER_MANAGER, *NOBODY]
           if a not in RIGHTFUL[name]]
    for name in PRIVILEGED
}


def _forged() -> list[tuple[str, str]]:
    return [(name, actor) for name in PRIVILEGED for actor in WRONG[name]]


def _refused(state: ContractState, e: ev.ContractEvent) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as info:
        fold(state, e, CATALOGUE)
    return info.value


def test_the_table_covers_every_event_type_once() -> None:
    assert set(authority.SENDERS) == set(ev.EVENT_TYPES)
    assert {authority.SENDERS[type(e)] for e in PRIVILEGED.values()} == {
        "manager", "supplier", "system"}
    assert set(PRIVILEGED) == {t.__name__ for t in ev.EVENT_TYPES}


@pytest.mark.parametrize(("name", "actor"), _forged())
def test_a_forged_event_is_refused_naming_the_actor_and_what_was_needed(
        name: str, actor: str) -> None:
    s = _contract()
    e = replace(PRIVILEGED[name], actor=actor)
    err = _refused(s, e)
    assert not isinstance(err, NotYetKnown)  # refused for good, not "try again later"
    assert (err.field, err.got, err.contract_id, err.event_id) == (
        "actor", actor, "C-001", e.event_id)
    assert repr(actor) in str(err) and name in str(err)
    kind = authority.SENDERS[type(e)]
    if kind == "supplier":
        assert "supplier" in err.expected
    elif kind == "manager":
        assert "manager" in err.expected
    else:
        assert "'system'" in err.expected


@pytest.mark.parametrize(("name", "actor"), _forged())
def test_a_forged_event_counts_for_nothing(name: str, actor: str) -> None:
    s = _contract()
    forged = replace(PRIVILEGED[name], actor=actor)
    states, derived = fold_all([forged], CATALOGUE, states={"C-001": s})
    assert states["C-001"] is s
    assert derived == []


@pytest.mark.parametrize(("name", "actor"),
                         [(n, a) for n, actors in RIGHTFUL.items() for a in actors])
def test_the_same_event_from_the_rightful_party_is_accepted(name: str, actor: str) -> None:
    s = _contract()
    after, _ = fold(s, replace(PRIVILEGED[name], actor=actor), CATALOGUE)
    assert after.version == s.version + 1


def test_a_lowered_target_from_the_supplier_raises_no_alert_issue_21() -> None:
    """The issue's reproduction, decoded from the wire as the worker decodes it."""
    s, _ = apply([registered("C-011"), committed("NT31", "10", "C-011"),
                  submitted("E1", "NT31", "4", "2025-01-01", "2025-01-31", "2025-02-03",
                            "C-011"),
                  verified("E1", "2025-02-05", "C-011")])
    wire = {"schema_version": SCHEMA_VERSION, "type": "CommitmentMade", "event_id": "forged",
            "contract_id": "C-011", "occurred_at": at("2025-02-06").isoformat(),
            "actor": "supplier:S01", "data": {"measure": "NT31", "target": "1"}}
    forged = decode_event(wire)
    err = _refused(s, forged)
    assert "'supplier:S01'" in str(err) and "manager 'mgr-aoife'" in str(err)
    states, derived = fold_all([forged], CATALOGUE, states={"C-011": s})
    assert states["C-011"].commitments["NT31"].target == 10 and derived == []
    # from the manager, the same change is a variation, and the target is met
    _, derived = fold(s, replace(forged, actor=MANAGER), CATALOGUE)
    assert [d.kind for d in derived] == ["TargetMet"]


def test_a_supplier_cannot_verify_its_own_evidence_issue_21() -> None:
    s = _contract()
    err = _refused(s, replace(verified("E2", "2025-03-05"), actor=SUPPLIER))
    assert "EvidenceVerified" in str(err) and "'supplier:S01'" in str(err)
    assert s.totals_for("L-VOL").verified == 600


def test_a_new_contract_is_registered_only_by_the_manager_or_deputy_it_names() -> None:
    new = ContractState("C-002")
    e = replace(registered("C-002"), deputy=DEPUTY)
    for actor in (SUPPLIER, OTHER_MANAGER, "system"):
        err = _refused(new, replace(e, actor=actor))
        assert "new contract" in err.expected or "manager" in err.expected
    for actor in (MANAGER, DEPUTY):
        assert fold(new, replace(e, actor=actor), CATALOGUE)[0].terms is not None


def test_an_amendment_needs_the_current_manager_not_the_one_it_names() -> None:
    s = _contract()
    takeover = replace(registered(event_id="C-001:takeover"), actor=OTHER_MANAGER,
                       manager=OTHER_MANAGER)
    assert "manager 'mgr-aoife' or deputy 'mgr-bilal'" in _refused(s, takeover).expected
    handed, _ = fold(s, replace(takeover, actor=MANAGER), CATALOGUE)
    assert handed.terms is not None and handed.terms.manager == OTHER_MANAGER
    # the new manager reviews from now on; the old one (no longer deputy either) may not
    fold(handed, replace(verified("E2", "2025-03-05"), actor=OTHER_MANAGER), CATALOGUE)
    _refused(handed, verified("E2", "2025-03-05"))
    # and an event applied before the hand-over, delivered again, is still a no-op
    again = verified("E1", "2025-02-05")
    assert fold(handed, again, CATALOGUE) == (handed, ())


def test_before_registration_the_kind_is_judged_and_the_party_waits() -> None:
    """Which supplier or manager may act is known once the registration is: until
    then the event waits (NotYetKnown, redelivered); the wrong kind is refused now."""
    empty = ContractState("C-001")
    early = submitted("E1", "L-VOL", "1", "2025-01-01", "2025-01-31", "2025-02-03")
    with pytest.raises(NotYetKnown):
        fold(empty, early, CATALOGUE)
    with pytest.raises(NotYetKnown):
        fold(empty, replace(early, actor=OTHER_SUPPLIER), CATALOGUE)
    for wrong in (MANAGER, "system"):
        err = _refused(empty, replace(early, actor=wrong))
        assert not isinstance(err, NotYetKnown)
    s, _ = apply([registered(), committed("L-VOL", "10")])
    _refused(s, replace(early, actor=OTHER_SUPPLIER))  # once known, refused


def test_a_forged_refusal_binds_its_actor_not_the_rightful_partys_event_id() -> None:
    # issue 21: a forger who reuses the id of the manager's decision must not get the
    # manager's own event under that id refused; the forger's copies stay refused
    s = _contract()
    forged = replace(PRIVILEGED["EvidenceVerified"], actor=SUPPLIER)
    states, derived = fold_all([forged, forged, replace(forged, actor=MANAGER)], CATALOGUE,
                               states={"C-001": s})
    assert states["C-001"].evidence["E2"].status == "verified"
    assert states["C-001"].version == s.version + 1 and derived
    again, _ = fold_all([forged, replace(forged, occurred_at=forged.occurred_at
                                         + timedelta(minutes=1))],
                        CATALOGUE, states={"C-001": s})
    assert again["C-001"] is s  # the same actor's later copy: still refused


def test_actors_parse_as_the_api_writes_them() -> None:
    for kind, party in (("manager", "mgr-aoife"), ("supplier", "S01"),
                        ("manager", "jane.doe@council.gov.uk")):
        actor = Principal(kind, party).actor
        assert authority.actor_for(kind, party) == actor
        assert authority.parse_actor(actor) == (kind, party)
    assert authority.parse_actor("system") == ("system", "")
    for garbled in ("", "supplier:", "manager:x", " x", "x\t"):
        assert authority.parse_actor(garbled)[0] == "unknown"


def test_the_api_sends_by_the_same_table() -> None:
    assert {t: k for t, k in authority.SENDERS.items() if k != "system"} == service.SENDERS
    assert ev.ClockTicked not in service.SENDERS


# ------------------------------------------------------------------- property

actors = st.one_of(
    st.sampled_from([SUPPLIER, OTHER_SUPPLIER, MANAGER, DEPUTY, OTHER_MANAGER, *NOBODY]),
    st.text(max_size=12),
    st.text(max_size=8).map(lambda s: f"supplier:{s}"),
    st.sampled_from([MANAGER, DEPUTY, "S01", SUPPLIER]).flatmap(
        lambda a: st.sampled_from([a.upper(), a + " ", a + ":", "supplier:" + a])),
)


@settings(max_examples=300, deadline=None, database=None)
@given(name=st.sampled_from(sorted(PRIVILEGED)), actor=actors,
       later=st.integers(0, 30))
def test_random_actors_change_nothing_unless_they_are_the_rightful_party(
        name: str, actor: str, later: int) -> None:
    s = _contract()
    e = PRIVILEGED[name]
    e = replace(e, actor=actor, occurred_at=e.occurred_at + timedelta(minutes=later))
    states, derived = fold_all([e], CATALOGUE, states={"C-001": s})
    if actor in RIGHTFUL[name]:
        assert states["C-001"].version == s.version + 1
    else:
        assert states["C-001"] is s and derived == []
        assert _refused(s, e).field == "actor"
