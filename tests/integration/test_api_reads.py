"""The API's read endpoints for what the command line and dashboards show: a
contract's milestones (status and figures on the delivery-time axis) and its alerts
(managers: everything; suppliers: without the buyer's handling). Worked examples
with dates and numbers, on SQLite and PostgreSQL.

Contract C-A (supplier S01, manager mgr-a) commits 20 FTE on NT1 and holds E1, 2 FTE
delivered in January 2025, submitted and not verified.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from svmon.core import events as ev
from svmon.core.rules import DEFAULT_POLICY
from tests.helpers import feed
from tests.integration.conftest import Api

LAG = DEFAULT_POLICY.reporting_lag_days  # 30


def _evidence(eid: str, qty: str, start: str, end: str) -> dict[str, Any]:
    return {"evidence_id": eid, "measure": "NT1", "quantity": qty, "unit": "no. people FTE",
            "period_start": start, "period_end": end}


def _ok(r: Any, status: int = 202) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def _milestones(api: Api, who: str = "manager-a") -> dict[str, Any]:
    return dict(_ok(api.client.get("/v1/contracts/C-A/milestones",
                                   headers=api.headers(who)), 200))


def _tick(api: Api, at: datetime) -> None:
    feed(api.repo, [ev.ClockTicked(event_id=f"tick:{at.isoformat()}", contract_id="C-A",
                                   occurred_at=at, actor="system", at=at)], store=api.states)


def test_milestones_judged_on_delivery_by_the_due_date_and_re_judged_late(api: Api) -> None:
    """Issue 22's first two defects, read back through the API: 6 FTE delivered in
    October do not meet "5 FTE by 30 June"; 4 FTE for May, recorded after the
    judgement, make it "met late"."""
    _ok(api.post("manager-a", "/v1/contracts/C-A/milestones",
                 {"milestone_id": "NT1-JUN", "measure": "NT1", "due": "2025-06-30",
                  "cumulative_target": "5"}))
    _ok(api.post("supplier-a", "/v1/contracts/C-A/evidence",
                 _evidence("E-OCT", "6", "2025-10-01", "2025-10-31")))
    # a period spanning the due date counts pro rata by days: 2 of 30 days of June-July
    _ok(api.post("supplier-a", "/v1/contracts/C-A/evidence",
                 _evidence("E-SPAN", "3", "2025-06-29", "2025-07-28")))
    api.settle()
    for eid in ("E1", "E-OCT", "E-SPAN"):
        _ok(api.post("manager-a", f"/v1/contracts/C-A/evidence/{eid}/verify", {}))
    api.settle()

    body = _milestones(api)
    assert (body["contract_id"], body["time_axis"], body["reporting_lag_days"]) == \
        ("C-A", "delivery", LAG)
    [m] = body["milestones"]
    # not judged yet: its figures so far, E1's 2 and E-SPAN's 3 x 2/30 = 0.2
    assert (m["milestone_id"], m["measure"], m["due"], m["status"], m["judged_on"]) == \
        ("NT1-JUN", "NT1", "2025-06-30", "scheduled", "2025-07-30")
    assert (Decimal(m["verified"]), Decimal(m["claimed"]), Decimal(m["shortfall"])) == \
        (Decimal("2.2"), Decimal("2.2"), Decimal("2.8"))
    assert m["judged_at"] is None and m["time_axis"] == ev.delivery_axis(date(2025, 6, 30))

    _tick(api, datetime(2025, 8, 1, tzinfo=UTC))
    [m] = _milestones(api)["milestones"]
    assert m["status"] == "partially met" and m["judged_at"] is not None
    assert (Decimal(m["verified"]), Decimal(m["verified_on_time"])) == \
        (Decimal("2.2"), Decimal("2.2"))

    # May's delivery, reported and verified after the judgement
    _ok(api.post("supplier-a", "/v1/contracts/C-A/evidence",
                 _evidence("E-MAY", "4", "2025-05-01", "2025-05-31")))
    api.settle()
    [m] = _milestones(api)["milestones"]
    assert m["status"] == "partially met"  # claimed, not verified: still short
    assert (Decimal(m["verified"]), Decimal(m["claimed"])) == (Decimal("2.2"), Decimal("6.2"))
    _ok(api.post("manager-a", "/v1/contracts/C-A/evidence/E-MAY/verify", {}))
    api.settle()
    [m] = _milestones(api, "supplier-a")["milestones"]  # the supplier sees the same
    assert m["status"] == "met late" and m["met_at"] is not None
    assert (Decimal(m["verified"]), Decimal(m["verified_on_time"]), Decimal(m["shortfall"])) \
        == (Decimal("6.2"), Decimal("2.2"), Decimal(0))


def test_other_parties_cannot_read_milestones_or_alerts(api: Api) -> None:
    for url in ("/v1/contracts/C-A/milestones", "/v1/contracts/C-A/alerts"):
        for who, status in (("supplier-b", 403), ("manager-b", 403), ("nobody", 401),
                            ("revoked", 401)):
            r = api.client.get(url, headers=api.headers(who))
            assert r.status_code == status, (url, who, r.text)
            assert r.json()["message"]
        r = api.client.get(url.replace("C-A", "C-NONE"), headers=api.headers("manager-a"))
        assert r.status_code == 404, r.text
    r = api.client.get("/v1/contracts/C-A/alerts?status=lost", headers=api.headers("manager-a"))
    assert r.status_code == 422 and r.json()["field"] == "status"


def test_alerts_follow_the_milestone_and_suppliers_see_no_internal_fields(api: Api) -> None:
    """A milestone judged "not met" on 1 August raises one MilestoneMissed alert; the
    manager acknowledges it; late evidence meeting the target resolves it."""
    _ok(api.post("manager-a", "/v1/contracts/C-A/milestones",
                 {"milestone_id": "NT1-MAR", "measure": "NT1", "due": "2025-03-31",
                  "cumulative_target": "5"}))
    api.settle()
    _tick(api, datetime(2025, 5, 1, tzinfo=UTC))  # judged: E1 not verified, 0 of 5
    [m] = _milestones(api)["milestones"]
    assert (m["status"], Decimal(m["verified"])) == ("not met", Decimal(0))

    alerts = _ok(api.client.get("/v1/contracts/C-A/alerts?status=unresolved",
                                headers=api.headers("manager-a")), 200)
    missed = [a for a in alerts if a["kind"] == "MilestoneMissed"]
    assert len(missed) == 1 and missed[0]["status"] == "open"
    alert_id = missed[0]["alert_id"]
    assert missed[0]["detail"]["milestone_id"] == "NT1-MAR"
    assert api.repo.acknowledge(alert_id, "mgr-a")["changed"]

    manager = {a["alert_id"]: a for a in _ok(api.client.get(
        "/v1/contracts/C-A/alerts", headers=api.headers("manager-a")), 200)}
    supplier = {a["alert_id"]: a for a in _ok(api.client.get(
        "/v1/contracts/C-A/alerts", headers=api.headers("supplier-a")), 200)}
    assert set(manager) == set(supplier) and alert_id in manager
    assert manager[alert_id]["acknowledged_by"] == "mgr-a"
    assert manager[alert_id]["status"] == supplier[alert_id]["status"] == "acknowledged"
    internal = {"acknowledged_by", "acknowledged_at", "resolved_by", "resolved_manually",
                "escalated_at", "delivered_at", "created_at", "raise_count", "raised_by"}
    assert internal <= set(manager[alert_id])
    assert not internal & set(supplier[alert_id])
    assert supplier[alert_id]["detail"] == manager[alert_id]["detail"]

    # 6 FTE for February, reported and verified late: met late, the alert resolves
    _ok(api.post("supplier-a", "/v1/contracts/C-A/evidence",
                 _evidence("E-FEB", "6", "2025-02-01", "2025-02-28")))
    api.settle()
    _ok(api.post("manager-a", "/v1/contracts/C-A/evidence/E-FEB/verify", {}))
    api.settle()
    [m] = _milestones(api)["milestones"]
    assert (m["status"], Decimal(m["verified"])) == ("met late", Decimal(6))
    resolved = _ok(api.client.get("/v1/contracts/C-A/alerts?status=resolved",
                                  headers=api.headers("supplier-a")), 200)
    assert alert_id in {a["alert_id"] for a in resolved}
    assert not [a for a in _ok(api.client.get(
        "/v1/contracts/C-A/alerts?status=unresolved", headers=api.headers("manager-a")), 200)
        if a["kind"] == "MilestoneMissed"]
    # C-B's alerts are not in C-A's list, and the limit holds
    one = _ok(api.client.get("/v1/contracts/C-A/alerts?limit=1",
                             headers=api.headers("manager-a")), 200)
    assert len(one) == 1 and one[0]["contract_id"] == "C-A"
