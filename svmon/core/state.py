"""A contract's state: what the fold knows after the events applied so far.

Immutable values; the fold returns a new state that shares what did not change.
The state remembers which event ids it applied, kept where they take effect
(the evidence record, the commitment, the milestone), so a redelivered event is
recognised without a global set of every id ever seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from svmon.core.copying import fast_pickle, replacer
from svmon.core.rules import ZERO

EvidenceStatus = Literal["submitted", "verified", "rejected", "retracted"]
# "scheduled" until judged (due date + the reporting lag), then one of the judgements
# of svmon.core.rules.milestone_judgement, re-made whenever its delivery changes
MilestoneStatus = Literal["scheduled", "met", "met late", "partially met", "not met"]


@dataclass(frozen=True, slots=True)
class Terms:
    title: str
    buyer: str
    buyer_department: str
    supplier_id: str
    supplier_name: str
    start: date
    end: date
    value_gbp: Decimal
    catalogue_edition: str
    manager: str
    reporting_cadence_days: int
    event_ids: tuple[str, ...]
    deputy: str = ""
    supplier_contact: str = ""
    policy: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class Commitment:
    measure: str
    target: Decimal
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Milestone:
    milestone_id: str
    measure: str
    due: date
    cumulative_target: Decimal
    status: MilestoneStatus
    event_ids: tuple[str, ...]
    verified_when_judged: Decimal | None = None  # delivered towards it at the last judgement
    # Delivery towards the milestone on the delivery-time axis: verified (and claimed)
    # evidence for periods up to the due date, a period spanning it pro rata by days
    # (svmon.core.rules.delivered_by, applied to each period's sum). Summed from
    # ContractState.by_period at the first judgement, then kept current event by event
    # (0 while scheduled: nothing reads them before).
    verified: Decimal = ZERO
    claimed: Decimal = ZERO
    # Record time of the first judgement, and the part of ``verified`` verified before it
    # (evidence verified later makes it "met late", never "met").
    judged_at: datetime | None = None
    on_time: Decimal = ZERO
    met_at: datetime | None = None  # when late evidence made it "met late" (record time)


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    evidence_id: str
    measure: str
    quantity: Decimal
    period_start: date
    period_end: date
    status: EvidenceStatus
    submitted_by: str
    submitted_at: datetime
    event_ids: tuple[str, ...]
    decided_by: str = ""
    decided_at: datetime | None = None
    reason: str = ""

    @property
    def counts_as_claimed(self) -> bool:
        return self.status in ("submitted", "verified")


@dataclass(frozen=True, slots=True)
class Totals:
    """Units delivered for one measure: claimed (not rejected or retracted) and verified."""

    claimed: Decimal = ZERO
    verified: Decimal = ZERO

    def add(self, claimed: Decimal = ZERO, verified: Decimal = ZERO) -> Totals:
        return Totals(self.claimed + claimed, self.verified + verified)


@dataclass(frozen=True, slots=True)
class ContractState:
    contract_id: str
    terms: Terms | None = None
    commitments: Mapping[str, Commitment] = field(default_factory=dict)
    milestones: Mapping[str, Milestone] = field(default_factory=dict)
    evidence: Mapping[str, EvidenceRecord] = field(default_factory=dict)
    totals: Mapping[str, Totals] = field(default_factory=dict)
    as_of: datetime | None = None
    at_risk: frozenset[str] = frozenset()
    met: frozenset[str] = frozenset()
    closed: bool = False
    version: int = 0  # events applied (duplicates and no-op ticks excluded)
    last_evidence_at: datetime | None = None
    overdue: bool = False  # reporting overdue has been announced
    ratings: Mapping[str, str] = field(default_factory=dict)  # measure -> KPI rating
    # measure at risk -> the claimed total its latest TargetAtRisk announced: when
    # delivery changes it, the next tick announces the new forecast (the alert follows)
    risk_claimed: Mapping[str, Decimal] = field(default_factory=dict)
    # measure -> (period_start, period_end) -> (claimed, verified) units of the evidence
    # for that period: what milestones are judged on (delivery time), kept without the
    # evidence records, which the live worker does not hold
    by_period: Mapping[str, Mapping[tuple[date, date], tuple[Decimal, Decimal]]] = field(
        default_factory=dict)

    def totals_for(self, measure: str) -> Totals:
        return self.totals.get(measure, NO_TOTALS)

    def measures(self) -> list[str]:
        """Committed measures first (sorted), then any delivered without a commitment."""
        committed = sorted(self.commitments)
        extra = sorted(set(self.totals) - set(self.commitments))
        return committed + extra


# pickled as (class, field values) between processes (svmon.core.copying says why)
for _cls in (Terms, Commitment, Milestone, EvidenceRecord, Totals, ContractState):
    fast_pickle(_cls)

NO_TOTALS = Totals()

T = TypeVar("T")


def evolve(obj: T, **changes: Any) -> T:
    """A copy of one of the state's frozen dataclasses with some fields changed: what
    ``dataclasses.replace`` gives (:mod:`svmon.core.copying` says why it is not that)."""
    return replacer(type(obj))(obj, **changes)


# ------------------------------------------------------------------ JSON codec
# A portable form of the state for tools and tests: plain JSON, never pickle (the
# worker keeps states in memory and rebuilds them from the journal, not from this).


def _enc(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_enc(v) for v in value]
    return value


def _record(obj: Any) -> dict[str, Any]:
    return {f.name: _enc(getattr(obj, f.name)) for f in fields(obj)}


def state_to_dict(s: ContractState) -> dict[str, Any]:
    return {
        "contract_id": s.contract_id,
        "terms": _record(s.terms) if s.terms else None,
        "commitments": [_record(c) for c in s.commitments.values()],
        "milestones": [_record(m) for m in s.milestones.values()],
        "evidence": [_record(e) for e in s.evidence.values()],
        "totals": {k: [str(t.claimed), str(t.verified)] for k, t in s.totals.items()},
        "as_of": _enc(s.as_of),
        "at_risk": sorted(s.at_risk),
        "met": sorted(s.met),
        "closed": s.closed,
        "version": s.version,
        "last_evidence_at": _enc(s.last_evidence_at),
        "overdue": s.overdue,
        "ratings": dict(s.ratings),
        "risk_claimed": {k: str(v) for k, v in s.risk_claimed.items()},
        "by_period": {m: [[a.isoformat(), b.isoformat(), str(c), str(v)]
                          for (a, b), (c, v) in p.items()] for m, p in s.by_period.items()},
    }


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def state_from_dict(d: Mapping[str, Any]) -> ContractState:
    t = d["terms"]
    terms = None
    if t:
        terms = Terms(
            **{
                **t,
                "start": date.fromisoformat(t["start"]),
                "end": date.fromisoformat(t["end"]),
                "value_gbp": Decimal(t["value_gbp"]),
                "event_ids": tuple(t["event_ids"]),
                "policy": tuple((k, Decimal(v)) for k, v in t.get("policy", ())),
            }
        )
    commitments = {
        c["measure"]: Commitment(c["measure"], Decimal(c["target"]), tuple(c["event_ids"]))
        for c in d["commitments"]
    }
    milestones = {
        m["milestone_id"]: Milestone(
            m["milestone_id"],
            m["measure"],
            date.fromisoformat(m["due"]),
            Decimal(m["cumulative_target"]),
            m["status"],
            tuple(m["event_ids"]),
            Decimal(m["verified_when_judged"]) if m.get("verified_when_judged") else None,
            Decimal(m.get("verified", "0")),
            Decimal(m.get("claimed", "0")),
            _dt(m.get("judged_at")),
            Decimal(m.get("on_time", "0")),
            _dt(m.get("met_at")),
        )
        for m in d["milestones"]
    }
    evidence = {
        e["evidence_id"]: EvidenceRecord(
            evidence_id=e["evidence_id"],
            measure=e["measure"],
            quantity=Decimal(e["quantity"]),
            period_start=date.fromisoformat(e["period_start"]),
            period_end=date.fromisoformat(e["period_end"]),
            status=e["status"],
            submitted_by=e["submitted_by"],
            submitted_at=datetime.fromisoformat(e["submitted_at"]),
            event_ids=tuple(e["event_ids"]),
            decided_by=e["decided_by"],
            decided_at=_dt(e["decided_at"]),
            reason=e["reason"],
        )
        for e in d["evidence"]
    }
    totals = {k: Totals(Decimal(c), Decimal(v)) for k, (c, v) in d["totals"].items()}
    return ContractState(
        contract_id=d["contract_id"],
        terms=terms,
        commitments=commitments,
        milestones=milestones,
        evidence=evidence,
        totals=totals,
        as_of=_dt(d["as_of"]),
        at_risk=frozenset(d["at_risk"]),
        met=frozenset(d["met"]),
        closed=d["closed"],
        version=d["version"],
        last_evidence_at=_dt(d["last_evidence_at"]),
        overdue=d.get("overdue", False),
        ratings=dict(d.get("ratings", {})),
        risk_claimed={k: Decimal(v) for k, v in d.get("risk_claimed", {}).items()},
        by_period={m: {(date.fromisoformat(a), date.fromisoformat(b)): (Decimal(c), Decimal(v))
                       for a, b, c, v in p} for m, p in d.get("by_period", {}).items()},
    )
