"""The dashboards' queries: plain functions over the repository, no widgets.

The notebooks in ``notebooks/`` call these and only lay out what they return; the
tests call the same functions and compare with what the browser shows. Amounts are
``Decimal`` (units and £, as the projections hold them); dates are ISO strings.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from svmon.core.rules import Policy
from svmon.models.repository import NOT_RESOLVED, Repository, T
from svmon.models.tables import AlertRow, ContractRow, EvidenceRow, MeasureTotalRow

ZERO = Decimal(0)
RED_KINDS = {"MilestoneMissed", "TargetMissed"}
AMBER_KINDS = {"TargetAtRisk", "ReportingOverdue"}


@dataclass(frozen=True)
class Filters:
    department: str | None = None
    supplier: str | None = None  # supplier id
    theme: str | None = None
    since: date | None = None  # the period: delivery whose evidence period ended in it
    until: date | None = None

    def keeps_contract(self, c: dict[str, Any]) -> bool:
        return (not self.department or c["buyer_department"] == self.department) and \
            (not self.supplier or c["supplier_id"] == self.supplier)


def options(repo: Repository) -> dict[str, list[tuple[str, str]]]:
    """Values for the filter widgets, as (label, value) pairs."""
    c = T(ContractRow)
    with repo.engine.connect() as conn:
        rows = conn.execute(select(c.c.buyer_department, c.c.supplier_id,
                                   c.c.supplier_name)).all()
    themes = sorted({m.theme for m in repo.catalogue})
    return {
        "departments": [(d or "(none)", d) for d in sorted({r[0] for r in rows})],
        "suppliers": sorted({(f"{r[2]} ({r[1]})", r[1]) for r in rows}),
        "themes": [(t, t) for t in themes],
    }


def _contracts(repo: Repository) -> dict[str, dict[str, Any]]:
    c = T(ContractRow)
    with repo.engine.connect() as conn:
        return {r["contract_id"]: dict(r) for r in conn.execute(
            select(c).order_by(c.c.contract_id)).mappings()}


SUMMARY = ("contract_id", "measure", "target", "claimed", "verified", "target_gbp",
           "claimed_gbp", "verified_gbp", "at_risk")


def _totals(repo: Repository, contracts: dict[str, dict[str, Any]], theme: str | None,
            columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Totals rows of ``contracts`` (contract rows by id) with their measure's theme,
    outcome, title and unit; ``columns`` limits what is read (every amount is an exact
    decimal to convert)."""
    t = T(MeasureTotalRow)
    cols = [t.c[c] for c in columns] if columns else [t]
    q = select(*cols).order_by(t.c.contract_id, t.c.measure)
    if len(contracts) == 1:
        q = q.where(t.c.contract_id == next(iter(contracts)))
    with repo.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings() if r["contract_id"] in contracts]
    out = []
    for r in rows:
        m = repo.catalogue.measure(contracts[r["contract_id"]]["catalogue_edition"],
                                   r["measure"])
        if theme and m.theme != theme:
            continue
        out.append({**r, "theme": m.theme, "outcome": m.outcome, "title": m.title,
                    "unit": m.unit})
    return out


# the amber band: a milestone missed by less than this share of its target is amber
AMBER_BAND = Decimal(1) - Policy().at_risk_threshold  # 10%
NEAR_MISS = "MilestoneMissed:near"  # an open MilestoneMissed within the amber band


def _open_alert_kinds(repo: Repository) -> dict[str, set[str]]:
    """Open alert kinds per contract; a missed milestone whose verified delivery is
    within the amber band of its target also adds ``NEAR_MISS`` (only those)."""
    a = T(AlertRow)
    out: dict[str, set[str]] = defaultdict(set)
    far: set[str] = set()
    with repo.engine.connect() as conn:
        for cid, kind, detail in conn.execute(
                select(a.c.contract_id, a.c.kind, a.c.detail)
                .where(a.c.status.in_(NOT_RESOLVED))):
            out[cid].add(kind)
            if kind == "MilestoneMissed":
                d = json.loads(detail)
                target, done = Decimal(d.get("target", 0)), Decimal(d.get("verified", 0))
                if done < target * (1 - AMBER_BAND):
                    far.add(cid)
    for cid, kinds in out.items():
        if "MilestoneMissed" in kinds and cid not in far:
            kinds.add(NEAR_MISS)
    return out


def rag(measures: list[dict[str, Any]], open_kinds: set[str]) -> str:
    """Red: the term's target missed, or a milestone missed by more than the amber band
    (10% of its target), and not resolved. Amber: milestones missed only within the
    band, a target forecast to fall short (below 90%), or reporting overdue. Green
    otherwise."""
    if "TargetMissed" in open_kinds or (
            "MilestoneMissed" in open_kinds and NEAR_MISS not in open_kinds):
        return "red"
    if open_kinds & (AMBER_KINDS | {NEAR_MISS}) or any(m["at_risk"] for m in measures):
        return "amber"
    return "green"


def portfolio(repo: Repository, f: Filters = Filters()) -> dict[str, Any]:
    """Committed vs delivered by theme and outcome, RAG counts, the contracts most at
    risk and verified £ by month, for the contracts and theme the filters keep."""
    every = _contracts(repo)
    contracts = {cid: c for cid, c in every.items() if f.keeps_contract(c)}
    totals = _totals(repo, contracts, f.theme, SUMMARY)
    kinds = _open_alert_kinds(repo)
    by_contract: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in totals:
        by_contract[t["contract_id"]].append(t)

    def sums(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
        return {"committed_gbp": sum((r["target_gbp"] or ZERO for r in rows), ZERO),
                "claimed_gbp": sum((r["claimed_gbp"] for r in rows), ZERO),
                "verified_gbp": sum((r["verified_gbp"] for r in rows), ZERO)}

    themes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outcomes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in totals:
        themes[t["theme"]].append(t)
        outcomes[(t["theme"], t["outcome"])].append(t)
    rags = {cid: rag(by_contract.get(cid, []), kinds.get(cid, set())) for cid in contracts}
    risk = []
    for cid, c in contracts.items():
        rows = by_contract.get(cid, [])
        gap = sum(((r["target_gbp"] or ZERO) - r["verified_gbp"] for r in rows
                   if r["target_gbp"] is not None and r["verified_gbp"] < r["target_gbp"]),
                  ZERO)
        if rags[cid] != "green":
            risk.append({"contract_id": cid, "title": c["title"],
                         "supplier": c["supplier_name"], "rag": rags[cid],
                         "shortfall_gbp": gap,
                         "open_alerts": sorted(kinds.get(cid, set()) - {NEAR_MISS})})
    risk.sort(key=lambda r: (r["rag"] != "red", -r["shortfall_gbp"], r["contract_id"]))
    return {
        "contracts": len(contracts),
        "totals": sums(totals),
        "by_theme": {k: sums(v) for k, v in sorted(themes.items())},
        "by_outcome": {f"{k[0]}: {k[1]}": sums(v) for k, v in sorted(outcomes.items())},
        "by_measure": by_measure(totals),
        "rag": {k: sum(1 for v in rags.values() if v == k) for k in ("red", "amber", "green")},
        "most_at_risk": risk[:10],
        "trend": verified_by_month(repo, None if len(contracts) == len(every)
                                   else set(contracts), f.theme, f.since, f.until),
        "ratings": ratings(repo, set(contracts)),
    }


def by_measure(totals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Units (which add up only within a measure) and £ per measure code."""
    out: dict[str, dict[str, Any]] = {}
    for t in totals:
        r = out.setdefault(t["measure"], {
            "measure": t["measure"], "title": t["title"], "unit": t["unit"],
            "theme": t["theme"], "target": ZERO, "claimed": ZERO, "verified": ZERO,
            "target_gbp": ZERO, "verified_gbp": ZERO})
        for k in ("target", "claimed", "verified", "target_gbp", "verified_gbp"):
            r[k] += t[k] or ZERO
    return [out[k] for k in sorted(out)]


RATINGS = ("good", "approaching target", "requires improvement", "inadequate", "other")


def ratings(repo: Repository, contract_ids: set[str]) -> dict[str, int]:
    """Statutory KPI ratings (Procurement Act 2023) now: the latest rating per contract
    and measure, from the fold's RatingChanged notices; KPIs not rated yet are left out."""
    from svmon.models.tables import NoticeRow

    n = T(NoticeRow)
    rated = n.c.kind == "RatingChanged"
    last = (select(n.c.contract_id, n.c.measure, func.max(n.c.at).label("at"))
            .where(rated).group_by(n.c.contract_id, n.c.measure).subquery())
    latest: dict[tuple[str, str], str] = {}
    with repo.engine.connect() as conn:
        for cid, measure, body in conn.execute(
                select(n.c.contract_id, n.c.measure, n.c.body)
                .join(last, (last.c.contract_id == n.c.contract_id)
                      & (last.c.measure == n.c.measure) & (last.c.at == n.c.at))
                .where(rated).order_by(n.c.derived_id)):
            if cid in contract_ids:
                latest[(cid, measure)] = json.loads(body)["rating"]
    return {r: sum(1 for v in latest.values() if v == r) for r in RATINGS}


def periods(today: date) -> list[tuple[str, tuple[date | None, date | None]]]:
    """Choices for the period filter: UK financial years run from 1 April."""
    fy = today.year if today >= date(today.year, 4, 1) else today.year - 1
    return [("All time", (None, None)),
            ("Last 12 months", (today - timedelta(days=365), today)),
            (f"{fy}-{(fy + 1) % 100:02d} (this financial year)",
             (date(fy, 4, 1), date(fy + 1, 3, 31))),
            (f"{fy - 1}-{fy % 100:02d}", (date(fy - 1, 4, 1), date(fy, 3, 31)))]


def verified_by_month(repo: Repository, contract_ids: set[str] | None,
                      theme: str | None = None,
                      since: date | None = None, until: date | None = None
                      ) -> list[tuple[str, Decimal]]:
    """Verified £ by the month its evidence period ended (cumulative is the caller's),
    over ``contract_ids`` (None: every contract).

    Summed in the database by edition, measure and month, then priced here: a million
    evidence rows come back as a few hundred. (On SQLite the sums of units are floats;
    this feeds a chart, the exact totals come from ``measure_total``.)
    """
    e, c = T(EvidenceRow), T(ContractRow)
    month = func.strftime("%Y-%m", e.c.period_end) if repo.engine.dialect.name == "sqlite" \
        else func.to_char(e.c.period_end, "YYYY-MM")
    q = (select(c.c.catalogue_edition, e.c.measure, month.label("month"),
                func.sum(e.c.quantity).label("units"))
         .join(c, c.c.contract_id == e.c.contract_id).where(e.c.status == "verified")
         .group_by(c.c.catalogue_edition, e.c.measure, month))
    if since is not None:
        q = q.where(e.c.period_end >= since)
    if until is not None:
        q = q.where(e.c.period_end <= until)
    if contract_ids is not None:
        q = q.where(e.c.contract_id.in_(sorted(contract_ids)))
    months: dict[str, Decimal] = defaultdict(lambda: ZERO)
    with repo.engine.connect() as conn:
        for edition, measure, m, units in conn.execute(q):
            item = repo.catalogue.measure(edition, measure)
            if theme and item.theme != theme:
                continue
            months[m] += item.value_gbp(Decimal(str(units)))
    return sorted(months.items())


def contract_ids(repo: Repository) -> list[str]:
    return list(_contracts(repo))


def contract_choices(repo: Repository) -> list[tuple[str, str]]:
    """(``C-004 · title``, ``C-004``) for a contract picker, by contract id."""
    c = T(ContractRow)
    with repo.engine.connect() as conn:
        return [(f"{cid} · {title}", cid) for cid, title in conn.execute(
            select(c.c.contract_id, c.c.title).order_by(c.c.contract_id))]


def awaiting_review(repo: Repository) -> int:
    """How many pieces of evidence are submitted and not yet verified or rejected."""
    e = T(EvidenceRow)
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(e)
                                .where(e.c.status == "submitted")).scalar_one())


def alert(repo: Repository, alert_id: str) -> dict[str, Any] | None:
    """One alert row by id (a deep link's ``?alert=``), or None."""
    a = T(AlertRow)
    with repo.engine.connect() as conn:
        row = conn.execute(select(a).where(a.c.alert_id == alert_id)).mappings().first()
    return dict(row) if row is not None else None


def contract(repo: Repository, contract_id: str) -> dict[str, Any]:
    """One contract: terms, per-measure totals, milestones, evidence and alerts."""
    from svmon.models.tables import MilestoneRow

    c = _contracts(repo).get(contract_id)
    if c is None:
        raise LookupError(f"no contract {contract_id!r}")
    ms, e, a = T(MilestoneRow), T(EvidenceRow), T(AlertRow)
    with repo.engine.connect() as conn:
        milestones = [dict(r) for r in conn.execute(
            select(ms).where(ms.c.contract_id == contract_id).order_by(ms.c.due)).mappings()]
        evidence = [dict(r) for r in conn.execute(
            select(e).where(e.c.contract_id == contract_id)
            .order_by(e.c.period_end, e.c.evidence_id)).mappings()]
        alerts = [dict(r) for r in conn.execute(
            select(a).where(a.c.contract_id == contract_id)
            .order_by(a.c.raised_at.desc())).mappings()]
    for al in alerts:
        al["detail"] = json.loads(al["detail"])
    return {"contract": c, "measures": _totals(repo, {contract_id: c}, None),
            "milestones": milestones, "evidence": evidence, "alerts": alerts}


def cumulative(evidence: list[dict[str, Any]], measure: str, status: tuple[str, ...]
               ) -> list[tuple[str, Decimal]]:
    """Cumulative units of ``measure`` by period end, counting evidence in ``status``."""
    out: list[tuple[str, Decimal]] = []
    total = ZERO
    for r in sorted((r for r in evidence if r["measure"] == measure and r["status"] in status),
                    key=lambda r: r["period_end"]):
        total += r["quantity"]
        out.append((r["period_end"].isoformat(), total))
    return out


def suppliers(repo: Repository, f: Filters = Filters()) -> list[dict[str, Any]]:
    """The league table: per supplier, contracts, committed and verified £, the share
    delivered, open alerts and red contracts; best delivery first."""
    contracts = {cid: c for cid, c in _contracts(repo).items() if f.keeps_contract(c)}
    totals = _totals(repo, contracts, f.theme, SUMMARY)
    kinds = _open_alert_kinds(repo)
    rows: dict[str, dict[str, Any]] = {}
    per_contract: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in totals:
        per_contract[t["contract_id"]].append(t)
    for cid, c in contracts.items():
        r = rows.setdefault(c["supplier_id"], {
            "supplier_id": c["supplier_id"], "supplier": c["supplier_name"], "contracts": 0,
            "committed_gbp": ZERO, "verified_gbp": ZERO, "open_alerts": 0, "red": 0})
        r["contracts"] += 1
        for t in per_contract.get(cid, []):
            r["committed_gbp"] += t["target_gbp"] or ZERO
            r["verified_gbp"] += t["verified_gbp"]
        r["open_alerts"] += len(kinds.get(cid, set()) - {NEAR_MISS})
        r["red"] += rag(per_contract.get(cid, []), kinds.get(cid, set())) == "red"
    for r in rows.values():
        r["delivered_pct"] = (r["verified_gbp"] / r["committed_gbp"] * 100).quantize(
            Decimal("0.1")) if r["committed_gbp"] else None
    return sorted(rows.values(), key=lambda r: (-(r["delivered_pct"] or 0), r["supplier"]))


def supplier_contracts(repo: Repository, supplier_id: str) -> list[dict[str, Any]]:
    """One supplier's contracts with committed and verified £ and RAG."""
    contracts = {cid: c for cid, c in _contracts(repo).items() if c["supplier_id"] == supplier_id}
    totals = _totals(repo, contracts, None, SUMMARY)
    kinds = _open_alert_kinds(repo)
    out = []
    for cid, c in contracts.items():
        rows = [t for t in totals if t["contract_id"] == cid]
        committed = sum((t["target_gbp"] or ZERO for t in rows), ZERO)
        verified = sum((t["verified_gbp"] for t in rows), ZERO)
        out.append({"contract_id": cid, "title": c["title"], "buyer": c["buyer"],
                    "committed_gbp": committed, "verified_gbp": verified,
                    "delivered_pct": (verified / committed * 100).quantize(Decimal("0.1"))
                    if committed else None,
                    "rag": rag(rows, kinds.get(cid, set()))})
    return out


def audit(repo: Repository, contract_id: str, as_of: Any = None) -> dict[str, Any]:
    """A contract rebuilt from its journal as it stood at ``as_of`` (a datetime, or now),
    its hash chain checked in full, and the last entries of its journal."""
    from svmon.audit.chain import verify_chains
    from svmon.audit.replay import rebuild

    rebuilt = rebuild(repo.journal_events(contract_id=contract_id, until=as_of),
                      repo.catalogue)
    state = rebuilt.states.get(contract_id)
    totals = repo.total_rows(state) if state is not None and state.terms is not None else []
    heads = {k: v for k, v in repo.chain_heads().items() if k == contract_id}
    breaks = verify_chains(repo.chain_rows(contract_id), heads)
    journal = repo.journal_rows(contract_id=contract_id, last=50)
    return {"events": rebuilt.events, "totals": totals,
            "open_alerts": sorted(rebuilt.open_alerts()),
            "breaks": [str(b) for b in breaks], "length": heads.get(contract_id, (0, ""))[0],
            "journal": journal[::-1]}
