"""A forged event must not block the rightful party's event under the same id (issue 21).

Someone who can write the contract-events topic (the ACLs are the first defence; the
fold's authority check the second) forges an event under an id the rightful party
uses or is about to use. The fold refuses the forgery; that refusal binds the forger's
actor only: the event-id gate seeded from the dead letters, and the inbox's settlement,
key a refusal on (contract, event id, actor), so the rightful event under that id is
still received, published and counted. The real write path minus Kafka (processor,
gate, repository), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from svmon.core import events as ev
from tests.helpers import feed
from tests.integration.conftest import Api

T = datetime(2026, 3, 1, tzinfo=UTC)


def _forged_commitment(event_id: str, actor: str = "supplier:S01") -> ev.CommitmentMade:
    return ev.CommitmentMade(event_id=event_id, contract_id="C-A", occurred_at=T,
                             actor=actor, measure="NT1", target=Decimal("1"))


def test_a_forged_refusal_does_not_refuse_the_rightful_event_under_its_id(api: Api) -> None:
    # the forger goes first, under the id the manager will use
    feed(api.repo, [_forged_commitment("C-A:lower-NT1")], store=api.states)
    [dl] = [d for d in api.store.rejections(["C-A"]) if d["event_id"] == "C-A:lower-NT1"]
    assert dl["field"] == "actor", dl
    assert api.states["C-A"].commitments["NT1"].target == Decimal(20)  # nothing counted
    # the manager's own event under that id: received, then accepted by the worker
    r = api.post("manager-a", "/v1/contracts/C-A/commitments",
                 {"event_id": "C-A:lower-NT1", "measure": "NT1", "target": "15"})
    assert r.status_code == 202, r.text
    assert api.settle() == 1
    receipt = api.store.receipt("C-A", "C-A:lower-NT1")
    assert receipt is not None and receipt["status"] == "accepted", receipt
    assert api.states["C-A"].commitments["NT1"].target == Decimal(15)
    # the forger's copy delivered again stays refused and changes nothing
    feed(api.repo, [_forged_commitment("C-A:lower-NT1")], store=api.states)
    assert api.states["C-A"].commitments["NT1"].target == Decimal(15)


def test_a_forgery_does_not_settle_the_rightful_pending_event_as_refused(api: Api) -> None:
    # the manager's event is received (pending in the inbox, not yet published) ...
    r = api.post("manager-a", "/v1/contracts/C-A/commitments",
                 {"event_id": "C-A:raise-NT1", "measure": "NT1", "target": "30"})
    assert r.status_code == 202, r.text
    # ... when a forgery under its id reaches the worker first
    forged = _forged_commitment("C-A:raise-NT1")
    feed(api.repo, [forged, replace(forged, actor="mgr-b")], store=api.states)
    receipt = api.store.receipt("C-A", "C-A:raise-NT1")
    assert receipt is not None and receipt["status"] == "pending", receipt
    assert api.states["C-A"].commitments["NT1"].target == Decimal(20)
    assert api.settle() == 1
    receipt = api.store.receipt("C-A", "C-A:raise-NT1")
    assert receipt is not None and receipt["status"] == "accepted", receipt
    assert api.states["C-A"].commitments["NT1"].target == Decimal(30)
    assert api.totals("C-A")  # the projections were written from the accepted state


def test_a_party_cannot_take_the_id_the_other_partys_next_event_will_get(api: Api) -> None:
    # the supplier's evidence under the id the API gives the manager's verification of
    # E1 (the only id the manager's client may not even choose) is refused at the door
    body = {"evidence_id": "E7", "measure": "NT1", "quantity": "1", "unit": "no. people FTE",
            "period_start": "2025-02-01", "period_end": "2025-02-28", "event_id": "verify:E1"}
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", body)
    assert r.status_code in (409, 422), r.text  # a rule the API document cannot state
    err = r.json()
    assert err["field"] == "event_id" and err["got"] == "'verify:E1'", err
    assert "EvidenceVerified" in err["expected"]
    assert api.store.receipt("C-A", "verify:E1") is None  # nothing stored
    # so the manager's verification gets its id, and counts
    r = api.post("manager-a", "/v1/contracts/C-A/evidence/E1/verify", {})
    assert r.status_code == 202, r.text
    assert r.json()["event_id"] == "verify:E1"
    assert api.settle() == 1
    assert api.totals("C-A")["NT1"] == (Decimal(2), Decimal(2))
    # an id of the same type's form is the client's own to choose
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", {**body, "event_id": "evidence:E7"})
    assert r.status_code == 202, r.text
