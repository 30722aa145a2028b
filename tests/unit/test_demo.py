"""The demo generator: deterministic, realistic in shape, valid, and it raises alerts."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold, fold_all
from svmon.core.state import ContractState
from svmon.demo import BUSY_MANAGERS, EDITION, generate
from svmon.schemas import decode_event, encode_event
from tests.unit._builders import CATALOGUE

TODAY = date(2025, 6, 15)


@pytest.fixture(scope="module")
def log() -> list[ev.ContractEvent]:
    return generate(7, today=TODAY)


def test_same_seed_gives_identical_bytes(log: list[ev.ContractEvent]) -> None:
    again = generate(7, today=TODAY)
    assert [encode_event(e) for e in again] == [encode_event(e) for e in log]


def test_different_seed_or_date_gives_a_different_log(log: list[ev.ContractEvent]) -> None:
    encoded = [encode_event(e) for e in log]
    assert [encode_event(e) for e in generate(8, today=TODAY)] != encoded
    assert [encode_event(e) for e in generate(7, today=date(2025, 9, 15))] != encoded


def test_fifty_contracts_with_ten_suppliers(log: list[ev.ContractEvent]) -> None:
    regs = [e for e in log if isinstance(e, ev.ContractRegistered)]
    assert len(regs) == 50
    assert len({r.contract_id for r in regs}) == 50
    assert len({r.supplier_id for r in regs}) == 10
    assert all(r.catalogue_edition == EDITION for r in regs)
    assert all(r.start <= TODAY < r.end for r in regs)  # all live on the reference date
    commitments = Counter(e.contract_id for e in log if isinstance(e, ev.CommitmentMade))
    assert set(commitments) == {r.contract_id for r in regs}
    assert all(3 <= n <= 5 for n in commitments.values())


def test_contract_count_is_a_parameter() -> None:
    small = generate(3, today=TODAY, contracts=4)
    assert sorted({e.contract_id for e in small}) == ["C-001", "C-002", "C-003", "C-004"]


def test_most_contracts_have_a_year_of_evidence(log: list[ev.ContractEvent]) -> None:
    months: dict[str, set[date]] = defaultdict(set)
    for e in log:
        if isinstance(e, ev.EvidenceSubmitted):
            months[e.contract_id].add(e.period_start)
    assert len(months) == 50
    with_a_year = [cid for cid, m in months.items() if len(m) >= 12]
    assert len(with_a_year) >= 45
    assert all(e.period_end < TODAY for e in log if isinstance(e, ev.EvidenceSubmitted))


def test_decisions_are_mostly_verifications(log: list[ev.ContractEvent]) -> None:
    kinds = Counter(type(e).__name__ for e in log)
    assert kinds["EvidenceVerified"] > 10 * kinds["EvidenceRejected"] > 0
    assert kinds["EvidenceVerified"] + kinds["EvidenceRejected"] <= kinds["EvidenceSubmitted"]
    assert kinds["ClockTicked"] >= 50 * 12


def test_log_is_time_ordered_and_ids_unique(log: list[ev.ContractEvent]) -> None:
    assert [e.occurred_at for e in log] == sorted(e.occurred_at for e in log)
    assert len({e.event_id for e in log}) == len(log)
    assert all(e.occurred_at.date() <= TODAY for e in log)


def test_every_event_survives_the_wire(log: list[ev.ContractEvent]) -> None:
    for e in log:
        assert decode_event(encode_event(e)) == e


def test_every_event_folds_without_rejection(log: list[ev.ContractEvent]) -> None:
    states: dict[str, ContractState] = {}
    rejected: list[str] = []
    for e in log:
        s = states.get(e.contract_id, ContractState(e.contract_id))
        try:
            states[e.contract_id], _ = fold(s, e, CATALOGUE)
        except InvalidInput as err:
            rejected.append(f"{e.event_id}: {err}")
    assert rejected == []
    assert len(states) == 50
    assert all(s.as_of is not None and s.as_of.date() <= TODAY for s in states.values())


def test_folding_the_demo_raises_alerts(log: list[ev.ContractEvent]) -> None:
    states, derived = fold_all(log, CATALOGUE)
    kinds = Counter(d.kind for d in derived)
    assert kinds["MilestoneMissed"] >= 1
    assert kinds["TargetAtRisk"] >= 1
    assert kinds["MilestoneMet"] >= 1  # and good news as well
    behind = {d.contract_id for d in derived if isinstance(d, ev.TargetAtRisk)}
    assert 5 <= len(behind) < 50  # some contracts fall behind, not all
    verified = sum((t.verified for s in states.values() for t in s.totals.values()),
                   Decimal(0))
    assert verified > 0


def test_two_managers_have_a_review_backlog(log: list[ev.ContractEvent]) -> None:
    decided = {e.evidence_id for e in log
               if isinstance(e, ev.EvidenceVerified | ev.EvidenceRejected)}
    pending = [e for e in log if isinstance(e, ev.EvidenceSubmitted)
               and e.evidence_id not in decided]
    managers = {e.contract_id: e.manager for e in log if isinstance(e, ev.ContractRegistered)}
    backlog = Counter(managers[e.contract_id] for e in pending
                      if e.occurred_at.date() < TODAY - timedelta(days=14))
    assert set(backlog) == set(BUSY_MANAGERS)  # the others decide within two weeks
    assert all(n >= 10 for n in backlog.values())


def test_suppliers_late_with_their_reports_raise_reporting_overdue(
        log: list[ev.ContractEvent]) -> None:
    _, derived = fold_all(log, CATALOGUE)
    late = {d.contract_id for d in derived if isinstance(d, ev.ReportingOverdue)}
    assert 3 <= len(late) <= 10


def test_the_portfolio_has_red_amber_and_green_contracts() -> None:
    """By the dashboards' RAG rule (svmon.dashboards.queries.rag): some contracts are
    amber (a milestone missed by less than the amber band, at risk, or late), not only
    red and green."""
    from svmon.alerts.lifecycle import open_alerts
    from svmon.dashboards.queries import AMBER_BAND, NEAR_MISS, rag

    states, derived = fold_all(generate(7, today=date(2026, 11, 1)), CATALOGUE)
    last = {(d.contract_id, d.measure): d for d in derived
            if isinstance(d, ev.MilestoneMissed)}
    kinds: dict[str, set[str]] = defaultdict(set)
    far: set[str] = set()
    for cid, measure, kind, _ in open_alerts(derived):
        kinds[cid].add(kind)
        m = last.get((cid, measure))
        if kind == "MilestoneMissed" and m and m.verified < m.target * (1 - AMBER_BAND):
            far.add(cid)
    for cid, k in kinds.items():
        if "MilestoneMissed" in k and cid not in far:
            k.add(NEAR_MISS)
    counts = Counter(rag([{"at_risk": m in s.at_risk} for m in s.commitments],
                         kinds.get(cid, set())) for cid, s in states.items())
    assert counts["amber"] >= 4 and counts["green"] >= 10 and counts["red"] >= 5
    assert counts["red"] < 30  # a council in trouble, not in collapse
