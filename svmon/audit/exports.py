"""Open exports: an OCDS release package per contract, and the data of a Procurement Act
2023 contract performance notice.

OCDS: ``contracts[].implementation.milestones`` carry the milestone status codes
(scheduled / met / notMet / partiallyMet); the metrics extension carries targets
(``contracts[].agreedMetrics``) and delivery (``contracts[].implementation.metrics``),
one metric per measure with observations for claimed and verified units and £.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from svmon.audit.axes import delivered_totals, delivery_axis_text, record_axis
from svmon.core.catalogue import Catalogue
from svmon.core.events import delivery_axis
from svmon.core.rules import RatingThresholds, canonical, expected_by, rating_for
from svmon.core.state import ContractState, Milestone

OCID_PREFIX = "ocds-svmon"
METRICS_EXTENSION = ("https://raw.githubusercontent.com/open-contracting-extensions/"
                     "ocds_metrics_extension/master/extension.json")


def _amount(d: Decimal) -> float | int:
    """OCDS amounts are JSON numbers; whole values stay integers."""
    return int(d) if d == d.to_integral_value() else float(d)


_OCDS_MILESTONE_STATUS = {"scheduled": "scheduled", "met": "met", "met late": "met",
                          "partially met": "partiallyMet", "not met": "notMet"}


def _milestone_status(m: Milestone) -> str:
    """The OCDS milestoneStatus code of a milestone's status (svmon.core.rules):

    - "scheduled" (not yet due + reporting lag) -> ``scheduled``;
    - "met" -> ``met``, with ``dateMet`` the due date (delivered by then);
    - "met late" -> ``met``, with ``dateMet`` the day the evidence that reached the
      target was recorded, so later than ``dueDate`` (the codelist has no "met late");
    - "partially met" (verified delivery by the due date > 0 and < target) ->
      ``partiallyMet``;
    - "not met" (nothing verified for periods up to the due date) -> ``notMet``.
    """
    return _OCDS_MILESTONE_STATUS[m.status]


def _date_met(m: Milestone) -> str | None:
    if m.status == "met":
        return _day(m.due)
    if m.status == "met late" and m.met_at is not None:
        return m.met_at.astimezone(UTC).isoformat()
    return None


def _milestone(m: Milestone) -> dict[str, Any]:
    """One OCDS milestone: status, ``dateMet`` when met, and the achieved figure (verified
    delivery in evidence periods up to the due date, a spanning period pro rata)."""
    desc = (f"Cumulative verified delivery of {m.measure} of at least {m.cumulative_target} "
            f"by {m.due.isoformat()}")
    if m.status != "scheduled":
        judged = m.judged_at.astimezone(UTC).isoformat() if m.judged_at else "?"
        desc += (f". Achieved {canonical(m.verified)} verified ({m.status}; "
                 f"{delivery_axis(m.due)}; first judged {judged})")
    out: dict[str, Any] = {
        "id": m.milestone_id, "title": f"{m.measure}: {m.cumulative_target} cumulative",
        "type": "delivery", "dueDate": _day(m.due), "status": _milestone_status(m),
        "description": desc,
    }
    met = _date_met(m)
    if met is not None:
        out["dateMet"] = met
    return out


def _day(d: date) -> str:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).isoformat()


def ocds_release_package(s: ContractState, catalogue: Catalogue,
                         published: datetime) -> dict[str, Any]:
    t = s.terms
    if t is None:
        raise ValueError(f"contract {s.contract_id!r} is not registered")
    edition = t.catalogue_edition
    as_of = (s.as_of or published).astimezone(UTC)
    buyer_id = "buyer-" + "".join(c for c in t.buyer.lower() if c.isalnum())[:40]
    agreed, delivered = [], []
    for code, c in sorted(s.commitments.items()):
        m = catalogue.measure(edition, code)
        unit = {"name": m.unit, "scheme": "svmon-catalogue", "id": f"{edition}:{code}"}
        target: dict[str, Any] = {"id": "target", "measure": _amount(c.target), "unit": unit,
                                  "period": {"startDate": _day(t.start), "endDate": _day(t.end)}}
        if m.proxy_gbp is not None:
            target["value"] = {"amount": _amount(m.value_gbp(c.target)), "currency": "GBP"}
        agreed.append({"id": code, "title": m.title, "description":
                       f"{m.theme} / {m.outcome} ({m.category}); proxy £{m.proxy_gbp} per "
                       f"unit, edition {edition}" if m.proxy_gbp is not None else
                       f"{m.theme} / {m.outcome} ({m.category}); record only",
                       "observations": [target]})
        tot = s.totals_for(code)
        obs = []
        for kind, units in (("verified", tot.verified), ("claimed", tot.claimed)):
            o: dict[str, Any] = {"id": f"{kind}-{as_of.date().isoformat()}",
                                 "measure": _amount(units), "unit": unit,
                                 "period": {"startDate": _day(t.start),
                                            "endDate": as_of.isoformat()},
                                 "notes": f"cumulative {kind} delivery as at {as_of.isoformat()}"}
            if m.proxy_gbp is not None:
                o["value"] = {"amount": _amount(m.value_gbp(units)), "currency": "GBP"}
            obs.append(o)
        delivered.append({"id": code, "title": m.title, "observations": obs})
    milestones = [_milestone(m) for m in sorted(s.milestones.values(),
                                                key=lambda m: (m.due, m.milestone_id))]
    release = {
        "ocid": f"{OCID_PREFIX}-{s.contract_id}",
        "id": f"{s.contract_id}-{as_of.strftime('%Y%m%dT%H%M%SZ')}",
        "date": as_of.isoformat(),
        "tag": ["contract", "implementation"],
        "initiationType": "tender",
        "language": "en",
        "parties": [
            {"id": buyer_id, "name": t.buyer, "roles": ["buyer"]},
            {"id": t.supplier_id, "name": t.supplier_name, "roles": ["supplier"]},
        ],
        "buyer": {"id": buyer_id, "name": t.buyer},
        "awards": [{"id": f"{s.contract_id}-award", "status": "active",
                    "suppliers": [{"id": t.supplier_id, "name": t.supplier_name}],
                    "value": {"amount": _amount(t.value_gbp), "currency": "GBP"}}],
        "contracts": [{
            "id": s.contract_id, "awardID": f"{s.contract_id}-award", "title": t.title,
            "status": "terminated" if s.closed else "active",
            "period": {"startDate": _day(t.start), "endDate": _day(t.end)},
            "value": {"amount": _amount(t.value_gbp), "currency": "GBP"},
            "agreedMetrics": agreed,
            "implementation": {"milestones": milestones, "metrics": delivered},
        }],
    }
    return {"uri": f"urn:svmon:ocds:{s.contract_id}:{as_of.date().isoformat()}",
            "version": "1.1", "publishedDate": published.astimezone(UTC).isoformat(),
            "publisher": {"name": t.buyer}, "extensions": [METRICS_EXTENSION],
            "releases": [release]}


def performance_notice(s: ContractState, catalogue: Catalogue, on: date,
                       thresholds: RatingThresholds = RatingThresholds(), *,
                       known_at: datetime | None = None) -> dict[str, Any]:
    """Each commitment as a KPI with its rating on ``on``, on delivery time.

    Verified delivery counts evidence for periods up to ``on`` (a period spanning it pro
    rata by days, as milestones are judged), with the decisions as ``s`` knows them; it
    is rated against the trajectory's expected delivery by ``on``. Evidence for later
    periods is reported beside it but never rated: an assessment of 30 September cannot
    be earned with October's delivery. ``known_at`` is when ``s`` was rebuilt (the
    record-time axis the notice names); None says every event recorded.
    """
    t = s.terms
    if t is None:
        raise ValueError(f"contract {s.contract_id!r} is not registered")
    kpis = []
    for code, c in sorted(s.commitments.items()):
        points = [(m.due, m.cumulative_target) for m in s.milestones.values()
                  if m.measure == code]
        expected = expected_by(c.target, t.start, t.end, points, on)
        verified = delivered_totals(s, code, on).verified
        later = canonical(s.totals_for(code).verified - verified)
        kpis.append({"kpi": code, "title": catalogue.measure(t.catalogue_edition, code).title,
                     "target": str(c.target), "expected_by_now": str(expected.quantize(
                         Decimal("0.01"))), "verified": f"{verified:f}",
                     "verified_for_later_periods": f"{later:f}",
                     "rating": rating_for(verified, expected, thresholds)})
    return {"contract_id": s.contract_id, "title": t.title, "buyer": t.buyer,
            "supplier": t.supplier_name, "assessment_date": on.isoformat(),
            "time_axes": {"delivery": delivery_axis_text(on), "record": record_axis(known_at)},
            "thresholds": {"good": str(thresholds.good),
                           "approaching target": str(thresholds.approaching),
                           "requires improvement": str(thresholds.requires_improvement)},
            "kpis": kpis, "kpi_count": len(kpis),
            "meets_three_kpi_rule": len(kpis) >= 3 or t.value_gbp <= 5_000_000}
