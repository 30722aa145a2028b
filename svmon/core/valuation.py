"""What a contract's totals are worth: units and £ per measure.

Pure arithmetic on a folded state and its catalogue edition: £ is units × the measure's
proxy value (none for a "record only" measure), and the shortfall is what the target
still asks for. The totals table stores these figures as they are; a replay computes
them again with this same function and compares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from svmon.core.catalogue import Catalogue
from svmon.core.rules import shortfall
from svmon.core.state import ContractState


@dataclass(frozen=True, slots=True)
class Valuation:
    """One measure of one contract: its target, delivery and their worth."""

    contract_id: str
    measure: str
    target: Decimal | None  # None: delivered without a commitment
    claimed: Decimal
    verified: Decimal
    proxy_gbp: Decimal | None  # None: a record-only measure
    target_gbp: Decimal | None
    claimed_gbp: Decimal
    verified_gbp: Decimal
    shortfall: Decimal | None
    at_risk: bool
    target_met: bool


def value_measures(state: ContractState, catalogue: Catalogue,
                   measures: Iterable[str] | None = None) -> list[Valuation]:
    """The valuation of each of ``measures`` (every measure of the state when None),
    priced with the contract's catalogue edition. The state must be registered."""
    if state.terms is None:
        raise ValueError(f"contract {state.contract_id!r} is not registered: "
                         "no catalogue edition to value it with")
    edition = state.terms.catalogue_edition
    out = []
    for code in state.measures() if measures is None else measures:
        measure = catalogue.measure(edition, code)
        totals = state.totals_for(code)
        commitment = state.commitments.get(code)
        out.append(Valuation(
            contract_id=state.contract_id, measure=code,
            target=commitment.target if commitment else None,
            claimed=totals.claimed, verified=totals.verified,
            proxy_gbp=measure.proxy_gbp,
            target_gbp=measure.value_gbp(commitment.target) if commitment else None,
            claimed_gbp=measure.value_gbp(totals.claimed),
            verified_gbp=measure.value_gbp(totals.verified),
            shortfall=shortfall(commitment.target, totals.verified) if commitment else None,
            at_risk=code in state.at_risk, target_met=code in state.met))
    return out
