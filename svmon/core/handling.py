"""What every event handler of the fold shares: its result, refusals and lookups."""

from __future__ import annotations

from typing import Any

from svmon.core import events as ev
from svmon.core.catalogue import Catalogue, Measure
from svmon.core.errors import InvalidInput, NotYetKnown, RejectedEvent
from svmon.core.state import ContractState, EvidenceRecord, Terms, evolve

Result = tuple[ContractState, tuple[ev.Derived, ...]]
NOTHING: tuple[ev.Derived, ...] = ()


def reject(e: ev.ContractEvent, field: str, expected: str, got: Any) -> RejectedEvent:
    return RejectedEvent(field, expected, got, contract_id=e.contract_id, event_id=e.event_id)


def terms_of(s: ContractState, e: ev.ContractEvent) -> Terms:
    if s.terms is None:
        raise NotYetKnown("contract_id", "a registered contract", e.contract_id,
                          contract_id=e.contract_id, event_id=e.event_id)
    return s.terms


def measure_of(cat: Catalogue, terms: Terms, e: ev.ContractEvent, code: str) -> Measure:
    try:
        return cat.measure(terms.catalogue_edition, code)
    except InvalidInput as err:
        raise reject(e, err.field, err.expected, err.got) from err


def evidence_of(s: ContractState, e: ev.ContractEvent, evidence_id: str) -> EvidenceRecord:
    try:
        return s.evidence[evidence_id]
    except KeyError:
        raise NotYetKnown("evidence_id", "evidence submitted on this contract", evidence_id,
                          contract_id=e.contract_id, event_id=e.event_id) from None


def bump(s: ContractState, **changes: Any) -> ContractState:
    """The state after one more applied event."""
    return evolve(s, version=s.version + 1, **changes)
