"""What one batch of the stream produced, ready to be written in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from svmon.core import events as ev
from svmon.core.state import ContractState


@dataclass
class Batch:
    """What one batch of the stream produced, ready to be written."""

    consumer: str
    journal: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, ContractState] = field(default_factory=dict)
    evidence: dict[str, set[str]] = field(default_factory=dict)  # contract -> evidence ids
    milestones_changed: set[str] = field(default_factory=set)  # contracts to rewrite
    # each contract's state before the batch (None: new to the worker): only what
    # changed since is written; a contract missing here has every row written
    before: dict[str, ContractState | None] = field(default_factory=dict)
    derived: list[ev.Derived] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    # (contract, event id, outcome, reason[, actor]) of every event decided: settles
    # the inbox row of that id sent by that actor (any actor's without one)
    settled: list[tuple[str, ...]] = field(default_factory=list)

    def rewrite(self, contract_id: str) -> None:
        """Write every row of this contract, not only what changed since ``before``
        (its evidence rows: those its state in this batch holds)."""
        self.before[contract_id] = None
        self.milestones_changed.add(contract_id)
        state = self.states.get(contract_id)
        if state is not None and state.evidence:
            self.evidence.setdefault(contract_id, set()).update(state.evidence)

    def touch_evidence(self, contract_id: str, evidence_id: str) -> None:
        self.evidence.setdefault(contract_id, set()).add(evidence_id)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset > self.positions.get(key, -1):
            self.positions[key] = offset
