"""Contract states as the projections hold them: contract rows, totals per measure in
units and £, milestones and evidence; and what a batch reads before its fold.

Rows are written as absolute values from the fold's state, never as increments, and
only those that changed since the state before the batch (a contract new to the worker,
or folded again, has every row written). £ comes from
:func:`svmon.core.valuation.value_measures`, the same function a replay compares with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.engine import Connection

from svmon.core.catalogue import Catalogue
from svmon.core.idempotence import EventGate
from svmon.core.state import ContractState, EvidenceRecord
from svmon.core.valuation import value_measures
from svmon.models import keys as keys_lookup
from svmon.models.batch import Batch
from svmon.models.statements import T, Writes
from svmon.models.tables import (
    ContractRow,
    EvidenceRow,
    MeasureRow,
    MeasureTotalRow,
    MilestoneRow,
)
from svmon.schemas import decode_event


class StateStore:
    def __init__(self, engine: Engine, writes: Writes, catalogue: Catalogue) -> None:
        self.engine = engine
        self.catalogue = catalogue  # prices the totals rows
        self._writes = writes

    def save_catalogue(self) -> None:
        rows = [dict(edition=m.edition, code=m.code, set_name=m.set_name, theme=m.theme,
                     outcome=m.outcome, category=m.category, title=m.title, unit=m.unit,
                     proxy_gbp=m.proxy_gbp, illustrative=m.illustrative, source=m.source)
                for m in self.catalogue]
        with self.engine.begin() as conn:
            self._writes.upsert(conn, T(MeasureRow), rows, ("edition", "code"))

    # ----------------------------------------------------------------- writes

    def write(self, conn: Connection, b: Batch) -> None:
        """The batch's contracts, totals, milestones and evidence rows that changed."""
        contracts, moved, totals, evidence = [], [], [], []
        milestones: list[dict[str, Any]] = []
        for cid, s in b.states.items():
            if s.terms is None:
                continue
            t = s.terms
            prev = b.before.get(cid)
            if prev is not None and prev.terms == t:  # the row is there: only time moved
                moved.append(dict(b_id=cid, b_as_of=s.as_of,
                                  b_last_evidence_at=s.last_evidence_at,
                                  b_state_version=s.version))
            else:
                contracts.append(dict(
                    contract_id=cid, title=t.title, buyer=t.buyer,
                    buyer_department=t.buyer_department, supplier_id=t.supplier_id,
                    supplier_name=t.supplier_name, start=t.start, end=t.end,
                    value_gbp=t.value_gbp, catalogue_edition=t.catalogue_edition,
                    manager=t.manager, deputy=t.deputy, supplier_contact=t.supplier_contact,
                    reporting_cadence_days=t.reporting_cadence_days, as_of=s.as_of,
                    last_evidence_at=s.last_evidence_at, state_version=s.version))
            totals.extend(self.total_rows(s, changed_measures(prev, s)))
            if cid in b.milestones_changed:  # most events leave the milestones alone
                old = prev.milestones if prev is not None else {}
                milestones.extend(dict(contract_id=cid, milestone_id=m.milestone_id,
                                       measure=m.measure, due=m.due,
                                       cumulative_target=m.cumulative_target,
                                       status=m.status)
                                  for m in s.milestones.values()
                                  if old.get(m.milestone_id) != m)
            for eid in sorted(b.evidence.get(cid, ())):
                r = s.evidence[eid]
                evidence.append(dict(
                    contract_id=cid, evidence_id=eid, measure=r.measure, quantity=r.quantity,
                    period_start=r.period_start, period_end=r.period_end, status=r.status,
                    submitted_by=r.submitted_by, submitted_at=r.submitted_at,
                    submitted_event_id=r.event_ids[0] or None,
                    decided_by=r.decided_by, decided_at=r.decided_at, reason=r.reason))
        w = self._writes
        w.upsert(conn, T(ContractRow), contracts, ("contract_id",))
        c = T(ContractRow)
        w.execute(conn, ("contract-moved",), lambda: update(c).where(
            c.c.contract_id == bindparam("b_id")).values(
            as_of=bindparam("b_as_of"), last_evidence_at=bindparam("b_last_evidence_at"),
            state_version=bindparam("b_state_version")), moved)
        w.upsert(conn, T(MeasureTotalRow), totals, ("contract_id", "measure"))
        w.upsert(conn, T(MilestoneRow), milestones, ("contract_id", "milestone_id"))
        w.upsert(conn, T(EvidenceRow), evidence, ("contract_id", "evidence_id"))

    def total_rows(self, s: ContractState, measures: Iterable[str] | None = None
                   ) -> list[dict[str, Any]]:
        """Totals rows per measure in units and £ (units × the edition's proxy value); of
        ``measures`` only when given."""
        return [dict(contract_id=v.contract_id, measure=v.measure, target=v.target,
                     claimed=v.claimed, verified=v.verified, proxy_gbp=v.proxy_gbp,
                     target_gbp=v.target_gbp, claimed_gbp=v.claimed_gbp,
                     verified_gbp=v.verified_gbp, shortfall=v.shortfall,
                     at_risk=v.at_risk, target_met=v.target_met)
                for v in value_measures(s, self.catalogue, measures)]

    # ------------------------------------------------------------------ reads

    def before_batch(self, keys: Iterable[tuple[str, str]],
                     evidence_keys: Iterable[tuple[str, str]]
                     ) -> tuple[EventGate, dict[str, dict[str, EvidenceRecord]]]:
        """What a batch reads before its fold, on one connection: the event-id gate of
        ``keys`` (which were journalled, with their events, or refused by the fold
        before) and the evidence ``evidence_keys`` name, by contract, as the fold holds
        it. An evidence record's event ids are the submitting event's alone: the
        decisions' are in the journal, and the gate recognises every journalled event
        before the fold would look."""
        gate = EventGate()
        wanted = sorted(set(keys))
        named = sorted(set(evidence_keys))
        if not wanted and not named:
            return gate, {}
        with self.engine.connect() as conn:
            if wanted:
                for payload in keys_lookup.journalled(conn, wanted).values():
                    gate.seed_accepted(decode_event(payload))
                for c, e, actor in keys_lookup.refused_by(conn, wanted):
                    gate.seed_refused((c, e), actor)
            return gate, _records(keys_lookup.evidence(conn, named)) if named else {}

    def state_versions(self, contract_ids: Iterable[str]) -> dict[str, int]:
        ids = list(contract_ids)
        if not ids:
            return {}
        c = T(ContractRow)
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.c.contract_id, c.c.state_version)
                                .where(c.c.contract_id.in_(ids)))
            return {r.contract_id: r.state_version for r in rows}

    def contract_ids(self) -> list[str]:
        c = T(ContractRow)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(c.c.contract_id).order_by(c.c.contract_id))]

    def live_totals(self) -> dict[tuple[str, str], dict[str, Any]]:
        t = T(MeasureTotalRow)
        with self.engine.connect() as conn:
            return {(r["contract_id"], r["measure"]): dict(r)
                    for r in conn.execute(select(t)).mappings()}

    def expected_totals(self, states: Iterable[ContractState]
                        ) -> dict[tuple[str, str], dict[str, Any]]:
        """The totals rows these states would write (what a replay compares with live)."""
        return {(r["contract_id"], r["measure"]): r
                for s in states if s.terms is not None for r in self.total_rows(s)}


def _records(rows: Iterable[Any]) -> dict[str, dict[str, EvidenceRecord]]:
    out: dict[str, dict[str, EvidenceRecord]] = {}
    for r in rows:
        out.setdefault(r.contract_id, {})[r.evidence_id] = EvidenceRecord(
            evidence_id=r.evidence_id, measure=r.measure, quantity=r.quantity,
            period_start=r.period_start, period_end=r.period_end, status=r.status,
            submitted_by=r.submitted_by, submitted_at=r.submitted_at,
            # "" for a submitting event not recorded (a row written by a release before
            # revision 0003 after the migration ran): never an event's id, so a decision
            # folded onto the record cannot be taken for the submission
            event_ids=(r.submitted_event_id or "",),
            decided_by=r.decided_by, decided_at=r.decided_at, reason=r.reason)
    return out


def changed_measures(before: ContractState | None, after: ContractState) -> list[str]:
    """The measures whose total row differs between two states of a contract (all of
    them when there is no earlier state, or its terms or catalogue edition differ)."""
    if before is None or before.terms is None or after.terms is None \
            or before.terms.catalogue_edition != after.terms.catalogue_edition:
        return after.measures()

    def row(s: ContractState, m: str) -> tuple[Any, ...]:
        # whether the measure is in the state at all is part of its row: one that enters
        # and is back at zero within a batch still has a row (the replay expects one)
        return (m in s.totals or m in s.commitments, s.commitments.get(m), s.totals_for(m),
                m in s.at_risk, m in s.met)

    return [m for m in after.measures() if row(before, m) != row(after, m)]
