"""Read-only summaries of the projections: row counts, and every contract's totals and
open alerts as plain JSON-ready values (for scripts, ``svmon report`` and tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from svmon.core.rules import canonical
from svmon.models.statements import NOT_RESOLVED, T
from svmon.models.tables import (
    AlertRow,
    ContractRow,
    DeadLetterRow,
    JournalEntry,
    MeasureTotalRow,
    NoticeRow,
)

MEASURE_FIELDS = ("measure", "target", "claimed", "verified", "proxy_gbp", "target_gbp",
                  "claimed_gbp", "verified_gbp", "shortfall", "at_risk", "target_met")


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def counts(self) -> dict[str, int]:
        out = {}
        with self.engine.connect() as conn:
            for name, model in (("journal", JournalEntry), ("contracts", ContractRow),
                                ("dead_letters", DeadLetterRow), ("notices", NoticeRow)):
                out[name] = conn.execute(select(func.count()).select_from(T(model))).scalar_one()
            a = T(AlertRow)
            out["open_alerts"] = conn.execute(select(func.count()).select_from(a)
                                              .where(a.c.status.in_(NOT_RESOLVED))
                                              ).scalar_one()
        return out

    def report(self) -> dict[str, Any]:
        """Every contract's totals per measure and its open alerts (for scripts and tests)."""
        c, t, a = T(ContractRow), T(MeasureTotalRow), T(AlertRow)
        with self.engine.connect() as conn:
            contracts = conn.execute(select(c).order_by(c.c.contract_id)).mappings().all()
            totals = conn.execute(select(t).order_by(t.c.contract_id, t.c.measure)).mappings()
            alerts = conn.execute(select(a).where(a.c.status.in_(NOT_RESOLVED))
                                  .order_by(a.c.contract_id, a.c.raised_at, a.c.alert_id)
                                  ).mappings()
            by_contract: dict[str, dict[str, Any]] = {}
            for r in contracts:
                by_contract[r["contract_id"]] = {
                    "contract_id": r["contract_id"], "title": r["title"],
                    "buyer": r["buyer"], "buyer_department": r["buyer_department"],
                    "supplier_id": r["supplier_id"], "supplier_name": r["supplier_name"],
                    "manager": r["manager"], "start": r["start"].isoformat(),
                    "end": r["end"].isoformat(), "value_gbp": _num(r["value_gbp"]),
                    "catalogue_edition": r["catalogue_edition"],
                    "as_of": r["as_of"].isoformat() if r["as_of"] else None,
                    "measures": [], "open_alerts": [],
                }
            for r in totals:
                by_contract[r["contract_id"]]["measures"].append(
                    {k: _num(r[k]) for k in MEASURE_FIELDS})
            for r in alerts:
                by_contract[r["contract_id"]]["open_alerts"].append({
                    "alert_id": r["alert_id"], "kind": r["kind"], "measure": r["measure"],
                    "severity": r["severity"], "status": r["status"],
                    "subject": r["subject"], "raised_at": r["raised_at"].isoformat(),
                    "detail": json.loads(r["detail"])})
        return {"contracts": list(by_contract.values()),
                "summary": summary(by_contract.values())}


def summary(contracts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over the contracts of a report: contracts, open alerts (by kind), and how
    many contracts have one."""
    cs = list(contracts)
    alerts = [a for c in cs for a in c["open_alerts"]]
    kinds: dict[str, int] = {}
    for a in alerts:
        kinds[a["kind"]] = kinds.get(a["kind"], 0) + 1
    return {"contracts": len(cs), "open_alerts": len(alerts), "open_alerts_by_kind": kinds,
            "contracts_with_open_alerts": sum(1 for c in cs if c["open_alerts"])}


def _num(v: Any) -> Any:
    """Decimals as strings in JSON, without float rounding, trailing zeros or an
    exponent (0.0000006, not 6E-7)."""
    if isinstance(v, Decimal):
        return format(canonical(v), "f")
    return v
