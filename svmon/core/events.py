"""Facts on a contract's log (past tense) and the facts the fold derives from them.

Every contract event carries its own id (the unit of idempotence), the contract id
(the key that orders the log), when it occurred and who asserted it. Wire formats
live in :mod:`svmon.schemas`; these are the core's own types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from svmon.core.copying import fast_pickle


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractEvent:
    event_id: str
    contract_id: str
    occurred_at: datetime
    actor: str = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractRegistered(ContractEvent):
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
    reporting_cadence_days: int = 90
    deputy: str = ""  # escalation recipient when the manager does not acknowledge
    supplier_contact: str = ""  # hears about rejected evidence
    # the contract's own alert thresholds (see svmon.core.rules.POLICY_KEYS), sorted
    policy: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitmentMade(ContractEvent):
    """The supplier commits to deliver ``target`` units of ``measure`` over the term.

    A later commitment for the same measure amends the target (a contract variation).
    """

    measure: str
    target: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestoneScheduled(ContractEvent):
    """By ``due``, cumulative delivery of ``measure`` should reach ``cumulative_target``."""

    milestone_id: str
    measure: str
    due: date
    cumulative_target: Decimal


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    sha256: str
    uri: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceSubmitted(ContractEvent):
    evidence_id: str
    measure: str
    quantity: Decimal
    period_start: date
    period_end: date
    description: str = ""
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    # the unit the supplier meant; when given it must be the measure's unit, which
    # catches hours posted against a £ measure before they are priced
    unit: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceVerified(ContractEvent):
    evidence_id: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceRejected(ContractEvent):
    evidence_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceRetracted(ContractEvent):
    evidence_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTicked(ContractEvent):
    """Time passed: the contract's clock now reads ``at``.

    Putting time on the log makes a replay raise the same time-based alerts as the
    live run did. ``occurred_at`` is when the tick was written; ``at`` is the time
    it asserts (the same for live ticks, earlier for back-filled ones).
    """

    at: datetime


EVENT_TYPES: tuple[type[ContractEvent], ...] = (
    ContractRegistered,
    CommitmentMade,
    MilestoneScheduled,
    EvidenceSubmitted,
    EvidenceVerified,
    EvidenceRejected,
    EvidenceRetracted,
    ClockTicked,
)


# ---------------------------------------------------------------- derived facts


@dataclass(frozen=True, slots=True, kw_only=True)
class Derived:
    """A fact the fold concludes; ``caused_by`` is the event that made it true."""

    contract_id: str
    measure: str
    caused_by: str
    at: datetime

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def derived_id(self) -> str:
        """Stable id: the same log always derives the same ids (replay can compare).

        Event ids are unique within a contract, so the contract id is part of it.
        """
        return f"{self.contract_id}/{self.caused_by}/{self.kind}/{self.measure}{self._suffix()}"

    def _suffix(self) -> str:
        return ""


def delivery_axis(due: date) -> str:
    """The time axis a milestone's figures use, as its facts and alerts name it."""
    return f"delivery time: evidence periods up to {due.isoformat()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestoneMissed(Derived):
    """A due milestone judged short of its target: raised at the first judgement and
    again, with the current figures, whenever a re-judgement changes them.

    ``verified`` and ``claimed`` count evidence for periods up to ``due`` (a period
    spanning it pro rata), as ``axis`` says; ``status`` is "partially met" or "not met".
    """

    milestone_id: str
    due: date
    target: Decimal
    verified: Decimal
    claimed: Decimal
    status: str = "not met"
    axis: str = ""

    def _suffix(self) -> str:
        return f"/{self.milestone_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestoneMet(Derived):
    """A due milestone judged met ("met", or "met late" when only evidence recorded
    after its first judgement reached the target); ``verified`` as in MilestoneMissed."""

    milestone_id: str
    due: date
    target: Decimal
    verified: Decimal
    status: str = "met"
    axis: str = ""

    def _suffix(self) -> str:
        return f"/{self.milestone_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetAtRisk(Derived):
    """The forecast end-of-term delivery is below target × the at-risk threshold."""

    target: Decimal
    forecast: Decimal
    claimed: Decimal
    threshold: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetBackOnTrack(Derived):
    target: Decimal
    forecast: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetMet(Derived):
    target: Decimal
    verified: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetMissed(Derived):
    """The contract's term ended with verified delivery below target."""

    target: Decimal
    verified: Decimal
    claimed: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportingOverdue(Derived):
    """No evidence for longer than the contract's reporting cadence (measure is "")."""

    last_evidence_at: datetime | None
    cadence_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportingResumed(Derived):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceWasRejected(Derived):
    evidence_id: str
    quantity: Decimal
    reason: str
    reviewer: str

    def _suffix(self) -> str:
        return f"/{self.evidence_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RatingChanged(Derived):
    """A KPI's statutory rating moved (verified delivery against the trajectory)."""

    previous: str
    rating: str
    verified: Decimal
    expected: Decimal


DERIVED_TYPES: tuple[type[Derived], ...] = (
    MilestoneMissed,
    MilestoneMet,
    TargetAtRisk,
    TargetBackOnTrack,
    TargetMet,
    TargetMissed,
    ReportingOverdue,
    ReportingResumed,
    EvidenceWasRejected,
    RatingChanged,
)

# pickled as (class, field values) between processes (svmon.core.copying says why)
for _cls in (*EVENT_TYPES, Attachment, *DERIVED_TYPES):
    fast_pickle(_cls)
