"""A realistic demo council, deterministic from a seed and a reference date.

Fifty contracts with ten suppliers, commitments from the demo catalogue, quarterly
milestones, monthly evidence for 13-20 months, most of it verified, some rejected, and
a monthly clock tick on each contract's log. Like a real council's portfolio: most
contracts ahead or on track, some slipping a little (amber: milestones missed by less
than 10%), a fifth well behind (red); two managers with a review backlog (their last
month's evidence awaits review, so claimed exceeds verified); a few suppliers late
with their reports (reporting overdue). All names are fictional.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from svmon.core import events as ev

BUYER = "Borsetshire County Council"
DEPARTMENTS = ("Adult Social Care", "Highways", "Waste and Recycling", "Digital and ICT",
               "Property and Facilities", "Children's Services", "Public Health")
SUPPLIERS = (
    ("S01", "Northgate Facilities Ltd"), ("S02", "Amberline Construction plc"),
    ("S03", "Greenway Waste Services Ltd"), ("S04", "Brightpath Care Partnership"),
    ("S05", "Castlebrook Digital Ltd"), ("S06", "Meadowfield Highways Ltd"),
    ("S07", "Riverside Catering Co-operative"), ("S08", "Oakridge Consulting LLP"),
    ("S09", "Harbourline Transport Ltd"), ("S10", "Kestrel Energy Services Ltd"),
)
MANAGERS = ("mgr-aoife", "mgr-bilal", "mgr-carys", "mgr-dev", "mgr-elin")

# measure -> (low, high) target over a 3-year term, for a £1m contract (scaled by value)
TARGETS: dict[str, tuple[int, int]] = {
    "NT1": (3, 12), "D-DIS": (1, 3), "D-APP": (100, 400), "D-TRN": (60, 250),
    "D-MENT": (200, 900), "D-SCH": (10, 40), "D-SME": (80_000, 250_000),
    "D-VCSE": (20_000, 80_000), "NT31": (20, 150), "D-WASTE": (15, 120), "D-CLIM": (100, 500),
    "D-INNOV": (5_000, 30_000), "D-HEALTH": (20, 120), "L-DIGI-SKILLS": (300, 1_500),
    "L-DIGI-INCL": (40, 250), "L-CARE-INT": (5, 25), "L-VOL": (400, 2_000),
    "L-ICT-LIFE": (50, 400),
}
WHOLE_UNITS = {"NT1", "D-DIS", "D-SCH", "L-DIGI-INCL", "L-CARE-INT", "L-ICT-LIFE", "D-HEALTH"}
# share of the pro-rata trajectory a contract delivers: ahead, on track, slipping, behind
PROFILES = ((Decimal("1.35"), 16), (Decimal("1.2"), 16), (Decimal("0.93"), 8),
            (Decimal("0.55"), 6), (Decimal("0.25"), 4))
# Managers with a review backlog: their suppliers' evidence of the last ~2 months awaits
# review, so claimed and verified differ on their contracts (the review queue's work).
BUSY_MANAGERS = ("mgr-carys", "mgr-elin")
BACKLOG = timedelta(days=40)
REJECT_REASONS = ("Payroll evidence does not show local postcodes",
                  "Attendance register missing signatures",
                  "Invoice dates fall outside the reporting period",
                  "Duplicate of evidence already submitted for this period")
EDITION = "DEMO-2025"


@dataclass(frozen=True)
class DemoContract:
    contract_id: str
    supplier_id: str
    start: date
    end: date
    profile: Decimal
    manager: str = MANAGERS[0]  # registers, commits, schedules and reviews its evidence


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    return date(d.year + y, m + 1, 1)


def _at(d: date, hour: int = 0) -> datetime:
    return datetime.combine(d, time(hour), tzinfo=UTC)


def _quantity(rng: random.Random, amount: Decimal, measure: str) -> Decimal:
    amount = amount * Decimal(str(round(rng.uniform(0.85, 1.15), 3)))
    if measure in WHOLE_UNITS:  # stochastic rounding keeps small monthly rates honest
        whole = int(amount)
        return Decimal(whole + (1 if rng.random() < float(amount - whole) else 0))
    return amount.quantize(Decimal("0.01"))


def generate(seed: int = 7, today: date | None = None,
             contracts: int = 50) -> list[ev.ContractEvent]:
    """The whole demo log, ordered by time (each contract's events in order)."""
    today = today or datetime.now(UTC).date()
    rng = random.Random(seed)
    profiles = [p for p, n in PROFILES for _ in range(n)]
    out: list[ev.ContractEvent] = []
    for i in range(contracts):
        cid = f"C-{i + 1:03d}"
        supplier_id, supplier_name = SUPPLIERS[i % len(SUPPLIERS)]
        start = _add_months(_month_start(today), -rng.randint(13, 20))
        years = rng.choice((2, 3, 3, 4))
        end = _add_months(start, 12 * years) - timedelta(days=1)
        value = Decimal(rng.randrange(400, 12_000) * 1000)
        profile = profiles[i % len(profiles)]
        manager = MANAGERS[i % len(MANAGERS)]
        c = DemoContract(cid, supplier_id, start, end, profile, manager)
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        t0 = _at(start, 9)
        out.append(ev.ContractRegistered(
            event_id=f"{cid}:registered", contract_id=cid, occurred_at=t0, actor=manager,
            title=f"{dept}: {rng.choice(('services', 'works', 'framework call-off', 'support'))}"
                  f" {start.year}-{end.year}",
            buyer=BUYER, buyer_department=dept, supplier_id=supplier_id,
            supplier_name=supplier_name, start=start, end=end, value_gbp=value,
            catalogue_edition=EDITION, manager=manager))
        measures = rng.sample(sorted(TARGETS), rng.randint(3, 5))
        scale = Decimal(years) / 3 * (value / 1_000_000) ** Decimal("0.5")
        for m in measures:
            lo, hi = TARGETS[m]
            target = _quantity(rng, Decimal(rng.randint(lo, hi)) * scale, m) or Decimal(1)
            out.extend(_commitment(c, m, target, t0))
            # a few suppliers stopped reporting five months ago, a few more two months
            # ago (late, though still ahead of their milestones): reporting overdue
            stop = (_add_months(_month_start(today), -5) if i % 17 == 5 else
                    _add_months(_month_start(today), -2) if i % 10 == 6 else today)
            out.extend(_evidence(rng, c, m, target, stop))
        tick = _add_months(start, 1)
        while tick <= today:
            out.append(ev.ClockTicked(event_id=f"{cid}:tick:{tick.isoformat()}",
                                      contract_id=cid, occurred_at=_at(tick), at=_at(tick)))
            tick = _add_months(tick, 1)
    out.sort(key=lambda e: e.occurred_at)  # stable: a contract's same-instant order holds
    return out


def _commitment(c: DemoContract, m: str, target: Decimal,
                t0: datetime) -> list[ev.ContractEvent]:
    out: list[ev.ContractEvent] = [ev.CommitmentMade(
        event_id=f"{c.contract_id}:commit:{m}", contract_id=c.contract_id, occurred_at=t0,
        actor=c.manager, measure=m, target=target)]
    term = (c.end - c.start).days + 1
    due = _add_months(c.start, 3) - timedelta(days=1)
    n = 1
    while due < c.end:
        share = Decimal((due - c.start).days + 1) / term
        cumulative = (target * share).quantize(Decimal("0.01"))
        if cumulative > 0:
            out.append(ev.MilestoneScheduled(
                event_id=f"{c.contract_id}:milestone:{m}:Q{n}", contract_id=c.contract_id,
                occurred_at=t0, actor=c.manager, milestone_id=f"{m}-Q{n}", measure=m,
                due=due, cumulative_target=cumulative))
        n += 1
        due = _add_months(due + timedelta(days=1), 3) - timedelta(days=1)
    return out


def _evidence(rng: random.Random, c: DemoContract, m: str, target: Decimal,
              today: date) -> list[ev.ContractEvent]:
    out: list[ev.ContractEvent] = []
    months = ((c.end.year - c.start.year) * 12 + c.end.month - c.start.month + 1)
    monthly = target / months * c.profile
    month = c.start
    while _add_months(month, 1) <= today and month <= c.end:
        period_end = _add_months(month, 1) - timedelta(days=1)
        submitted = period_end + timedelta(days=rng.randint(3, 12))
        if submitted >= today:
            break
        q = _quantity(rng, monthly, m)
        if q > 0:
            eid = f"{c.contract_id}:evidence:{m}:{month:%Y-%m}"
            who = f"supplier:{c.supplier_id}"  # as the API writes a supplier's actor
            out.append(ev.EvidenceSubmitted(
                event_id=eid, contract_id=c.contract_id, occurred_at=_at(submitted, 10),
                actor=who, evidence_id=eid, measure=m, quantity=q, period_start=month,
                period_end=period_end, description=f"{m} delivered in {month:%B %Y}",
                attachments=(ev.Attachment(f"{m}-{month:%Y-%m}.pdf",
                                           f"{rng.getrandbits(256):064x}"),)))
            decided = submitted + timedelta(days=rng.randint(2, 9))
            roll = rng.random()
            if c.manager in BUSY_MANAGERS and submitted >= today - BACKLOG:
                pass  # awaiting review
            elif decided < today and roll < 0.95:
                out.append(ev.EvidenceVerified(
                    event_id=f"{eid}:verified", contract_id=c.contract_id,
                    occurred_at=_at(decided, 15), actor=c.manager, evidence_id=eid))
            elif decided < today:
                out.append(ev.EvidenceRejected(
                    event_id=f"{eid}:rejected", contract_id=c.contract_id,
                    occurred_at=_at(decided, 15), actor=c.manager, evidence_id=eid,
                    reason=rng.choice(REJECT_REASONS)))
        month = _add_months(month, 1)
    return out
