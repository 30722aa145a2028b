"""The API's read models of a contract's milestones and alerts.

Both are read through :meth:`IngestService.visible_contract`, so a party sees only
the contracts it supplies or manages (another party's: the same refusal as for the
contract itself). Milestone figures come from the contract's state as the API folds
it (journal plus events received and not yet settled), on the delivery-time axis:
what was delivered by the due date, by what is known now. Alerts come from the alert
inbox; a supplier gets them without the buyer's internal handling (who acknowledged
or resolved them, escalation, deliveries to people).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from svmon.api.service import IngestService
from svmon.core import events as ev
from svmon.core.judgement import delivery
from svmon.models.ingest import Principal

ALERT_STATUSES = ("open", "acknowledged", "resolved", "unresolved", "all")
# what every party sees of an alert; managers (and deputies) also see the rest
SUPPLIER_ALERT_FIELDS = ("alert_id", "contract_id", "measure", "kind", "severity",
                         "subject", "status", "raised_at", "last_raised_at", "resolved_at",
                         "detail")
MANAGER_ALERT_FIELDS = (*SUPPLIER_ALERT_FIELDS, "raised_by", "created_at", "raise_count",
                        "delivered_at", "acknowledged_at", "acknowledged_by",
                        "escalated_at", "resolved_by", "resolved_manually")
TIME_AXIS = "delivery"


def milestones(service: IngestService, p: Principal, contract_id: str) -> dict[str, Any]:
    """The contract's milestones, due date first, each with its status and figures."""
    state = service.visible_contract(p, contract_id)
    assert state.terms is not None  # visible_contract refuses a contract not registered
    lag = service.views.policy.with_overrides(state.terms.policy).reporting_lag_days
    out = []
    for m in sorted(state.milestones.values(), key=lambda m: (m.due, m.milestone_id)):
        judged = m.status != "scheduled"
        # while scheduled the state keeps no figures (nothing reads them): delivery so
        # far is summed here the way the first judgement will sum it
        claimed, verified = (m.claimed, m.verified) if judged else delivery(state, m)
        out.append({
            "milestone_id": m.milestone_id, "measure": m.measure, "due": m.due,
            "cumulative_target": m.cumulative_target, "status": m.status,
            "judged_on": m.due + timedelta(days=lag), "judged_at": m.judged_at,
            "verified": verified, "claimed": claimed,
            "verified_on_time": m.on_time if judged else Decimal(0),
            "shortfall": max(m.cumulative_target - verified, Decimal(0)),
            "met_at": m.met_at, "time_axis": ev.delivery_axis(m.due)})
    return {"contract_id": contract_id, "time_axis": TIME_AXIS,
            "reporting_lag_days": lag, "milestones": out}


def alerts(service: IngestService, p: Principal, contract_id: str, status: str | None,
           limit: int) -> list[dict[str, Any]]:
    """The contract's alerts, newest first (``status`` one of ``ALERT_STATUSES``)."""
    service.visible_contract(p, contract_id)
    keep = SUPPLIER_ALERT_FIELDS if p.kind == "supplier" else MANAGER_ALERT_FIELDS
    rows = service.store.repo.alerts(status=status, contract_id=contract_id, limit=limit)
    out = []
    for row in rows:
        item = {k: row[k] for k in keep}
        detail = json.loads(row["detail"]) if row["detail"] else {}
        item["detail"] = detail if isinstance(detail, dict) else {"value": detail}
        out.append(item)
    return out
