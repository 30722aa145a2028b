"""The worker's write path writes only what changed, and the projections come out the
same as writing every row of every touched contract (on SQLite and PostgreSQL).

Also: the event-id look-up goes through the unique index, and SQLite's write-ahead log
is checkpointed beside the commits when the worker asks for it.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel

from svmon.bootstrap import init_database
from svmon.catalogue_files import load_catalogue
from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold_all
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState, evolve
from svmon.demo import generate
from svmon.models import keys
from svmon.models.repository import Batch, Repository, changed_measures
from svmon.models.tables import AlertRow, ContractRow, EvidenceRow, MeasureTotalRow, MilestoneRow
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.processor import Record, decode_all, partition_for, process

PROJECTIONS = (ContractRow, MeasureTotalRow, MilestoneRow, EvidenceRow, AlertRow)
VOLATILE = {"created_at", "updated_at"}  # wall-clock times of the write itself


def _feed(repo: Repository, events: list[Any], sizes: list[int], full: bool) -> None:
    """The worker's path minus Kafka; ``full``: forget the states before each batch, so
    every row of every touched contract is written (what the writer did before)."""
    store: dict[str, ContractState] = {}
    i = 0
    for size in sizes:
        chunk = events[i:i + size]
        records = [Record("t", 0, i + k, e.contract_id.encode(), encode_event(e))
                   for k, e in enumerate(chunk)]
        i += size
        decoded = decode_all(records)
        gate = repo.seed_gate([key_of(e) for _, e in decoded if not isinstance(e, InvalidInput)])
        b: Batch = process(decoded, store.get, repo.catalogue, "t", gate=gate)
        if full:
            b.before.clear()
            b.milestones_changed.update(b.states)
        repo.apply_batch(b)
        store.update(b.states)


def _tables(repo: Repository) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with repo.engine.connect() as conn:
        for model in PROJECTIONS:
            t = model.__table__  # type: ignore[attr-defined]
            cols = [c for c in t.c if c.name not in VOLATILE]
            pk = [t.c[c.name] for c in t.primary_key]
            out[t.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*pk))]
    return out


def _fresh(url: str, tmp: Path, name: str) -> Repository:
    """An empty database: a new SQLite file, or the PostgreSQL one emptied (but for the
    catalogue)."""
    if url.startswith("sqlite"):
        return init_database(Settings(data_dir=tmp / name))
    repo = init_database(Settings(database_url=url, data_dir=tmp))
    with repo.engine.begin() as conn:
        for t in reversed(SQLModel.metadata.sorted_tables):
            if t.name != "measure":
                conn.execute(t.delete())
    return repo


@pytest.mark.parametrize("seed", [3, 11])
def test_writing_only_changes_gives_the_same_projections(database_url: str, tmp_path: Path,
                                                          seed: int) -> None:
    events = generate(seed=seed, today=date(2026, 11, 1), contracts=12)
    rng = random.Random(seed)
    sizes = []
    while sum(sizes) < len(events):
        sizes.append(rng.choice((1, 7, 50, 200)))
    repo = _fresh(database_url, tmp_path, "diff")
    _feed(repo, events, sizes, full=False)
    diffed = _tables(repo)
    repo = _fresh(database_url, tmp_path, "full")
    _feed(repo, events, sizes, full=True)
    full = _tables(repo)
    assert {k: len(v) for k, v in diffed.items()} == {k: len(v) for k, v in full.items()}
    assert diffed["contract"] and diffed["measure_total"] and diffed["milestone"]
    for name in full:
        assert diffed[name] == full[name], name


def test_changed_measures_names_what_differs() -> None:
    events = generate(seed=5, today=date(2026, 11, 1), contracts=1)
    cat = load_catalogue(())
    half = len(events) // 2
    before = fold_all(events[:half], cat)[0]["C-001"]
    after = fold_all(events[:half + 1], cat)[0]["C-001"]
    assert changed_measures(None, after) == after.measures()
    assert changed_measures(after, after) == []
    moved = changed_measures(before, after)
    assert set(moved) <= set(after.measures())
    for m in after.measures():
        same = (before.totals_for(m), before.commitments.get(m), m in before.at_risk,
                m in before.met) == (after.totals_for(m), after.commitments.get(m),
                                     m in after.at_risk, m in after.met)
        assert (m in moved) == (not same)


def test_key_lookup_finds_exactly_the_journalled_keys(database_url: str, tmp_path: Path
                                                      ) -> None:
    repo = _fresh(database_url, tmp_path, "keys")
    events = generate(seed=2, today=date(2026, 11, 1), contracts=3)
    _feed(repo, events, [len(events)], full=False)
    known = [(e.contract_id, e.event_id) for e in events[::7]]
    unknown = [(c, e + "-not") for c, e in known] + [("C-999", "x"), ("C-001", "o'brien")]
    with repo.engine.connect() as conn:
        found = keys.journalled(conn, known + unknown)
        assert set(found) == set(known)
        assert all(p.startswith("{") for p in found.values())
        assert keys.journalled(conn, []) == {}
        assert keys.refused(conn, known) == set()
    # the review of each piece of evidence, as the evidence table holds it
    decided = {(e.contract_id, e.evidence_id): e for e in events
               if isinstance(e, ev.EvidenceVerified | ev.EvidenceRejected)}
    submitted = [(e.contract_id, e.evidence_id) for e in events
                 if isinstance(e, ev.EvidenceSubmitted)]
    with repo.engine.connect() as conn:
        reviewed = keys.reviews(conn, [*submitted, ("C-999", "x")])
    assert set(reviewed) == set(submitted)
    for k, e in decided.items():
        r = reviewed[k]
        assert (r["status"], r["decided_by"]) == (
            "verified" if isinstance(e, ev.EvidenceVerified) else "rejected", e.actor)
        assert r["decided_at"] == e.occurred_at  # typed as the table's column, not text
    assert decided and all(r["status"] == "submitted"
                           for k, r in reviewed.items() if k not in decided)


def test_key_lookup_uses_the_index_on_sqlite(tmp_path: Path) -> None:
    repo = _fresh("sqlite", tmp_path, "plan")
    with repo.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.execute(
            text("EXPLAIN QUERY PLAN " + keys.JOURNALLED["sqlite"].text), {"keys": "[]"}))
        reviews = " ".join(str(r) for r in conn.execute(
            text("EXPLAIN QUERY PLAN " + keys.EVIDENCE["sqlite"].element.text), {"keys": "[]"}))
    assert "SEARCH" in plan and "USING INDEX" in plan and "SCAN journal" not in plan
    assert "SEARCH" in reviews and "INDEX" in reviews and "SCAN evidence" not in reviews


def test_wal_is_checkpointed_beside_the_commits(tmp_path: Path) -> None:
    behind = init_database(Settings(data_dir=tmp_path / "behind"), checkpoint_behind=True)
    usual = init_database(Settings(data_dir=tmp_path / "usual"))
    with behind.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with usual.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert behind.checkpoint_behind and not usual.checkpoint_behind
    events = generate(seed=4, today=date(2026, 11, 1), contracts=20)
    _feed(behind, events, [500] * (len(events) // 500 + 1), full=False)

    def frames() -> tuple[int, int]:
        with behind.engine.connect() as conn:
            _, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return log, done

    log, done = frames()
    assert log > 1000 and done == log  # nothing copied on the way; a passive pass copies all
    behind.checkpoint_wal(restart_above=0)  # and lets the log start again
    _feed(behind, generate(seed=9, today=date(2026, 11, 1), contracts=1), [10_000],
          full=False)
    assert frames()[0] < log  # the next writer started the log from its beginning
    Repository(usual.engine, usual.catalogue).checkpoint_wal()  # not asked for: a no-op


class _NoSinks:
    async def dead_letter(self, record: dict[str, Any]) -> None: ...
    async def notice(self, contract_id: str, body: str) -> None: ...
    async def tick(self, event: Any) -> None: ...


def test_a_write_that_committed_but_reported_an_error_is_checked_again(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost connection during COMMIT: the batch is in the database, the worker was told
    it failed and retries it. The retry finds its events journalled (duplicates); the
    cached state must be brought up to the database's, or later events fold onto a
    state that lacks them (found in review: wrong totals, then a worker that cannot
    restart)."""
    import asyncio

    from sqlalchemy.exc import OperationalError

    import svmon.streams.pipeline as app_module
    from svmon.streams.pipeline import LocalStore, Pipeline

    monkeypatch.setattr(app_module, "backoff", lambda attempt: 0.0)
    repo = _fresh(database_url, tmp_path, "ambiguous")
    s = Settings(database_url=repo.engine.url.render_as_string(hide_password=False),
                 data_dir=tmp_path)
    events = generate(seed=3, today=date(2026, 11, 1), contracts=1)
    records = [Record(s.events_topic, partition_for(e.contract_id.encode(), s.partitions), i,
                      e.contract_id.encode(), encode_event(e))
               for i, e in enumerate(events)]
    pipeline = Pipeline(s, repo, LocalStore(), _NoSinks())
    real, failed = repo.apply_batch, []

    def commits_then_fails(batch: Batch) -> None:
        real(batch)
        if not failed:
            failed.append(True)
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    a, b = len(records) // 3, 2 * len(records) // 3

    async def run() -> None:
        await pipeline.handle(records[:a])
        monkeypatch.setattr(repo, "apply_batch", commits_then_fails)
        await pipeline.handle(records[a:b])
        monkeypatch.setattr(repo, "apply_batch", real)
        await pipeline.handle(records[b:])

    asyncio.run(run())
    assert failed
    cid = events[0].contract_id
    truth = fold_all(events, repo.catalogue)[0][cid]
    assert pipeline.store.get(cid) == evolve(truth, evidence={})  # it keeps no evidence
    assert repo.state_versions([cid]) == {cid: truth.version}
    assert repo.counts()["dead_letters"] == 0
    live = {m: (r["claimed"], r["verified"]) for (c, m), r in repo.live_totals().items()}
    assert live == {m: (truth.totals_for(m).claimed, truth.totals_for(m).verified)
                    for m in truth.measures()}
    restarted = Pipeline(s, repo, LocalStore(), _NoSinks())
    asyncio.run(restarted.catch_up([cid]))  # a new worker agrees with the journal
    assert restarted.store.get(cid) == truth


class _DeadLetters(_NoSinks):
    def __init__(self) -> None:
        self.dead: list[dict[str, Any]] = []

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self.dead.append(record)


def test_the_worker_decides_evidence_it_no_longer_holds_as_the_journal_would(
        database_url: str, tmp_path: Path) -> None:
    """The worker keeps no evidence between batches: a decision on evidence submitted in
    an earlier batch, and a submission reusing an earlier evidence id, are folded with
    the evidence table's row. Everything it derives and writes is what a fold of the
    whole log makes, down to how each amount is written."""
    import asyncio
    from dataclasses import replace

    from svmon.schemas import derived_to_dict
    from svmon.streams.pipeline import LocalStore, Pipeline

    repo = _fresh(database_url, tmp_path, "paged")
    s = Settings(database_url=repo.engine.url.render_as_string(hide_password=False),
                 data_dir=tmp_path)
    events = generate(seed=8, today=date(2026, 11, 1), contracts=2)
    first = next(e for e in events if isinstance(e, ev.EvidenceSubmitted))
    later = max(e.occurred_at for e in events if e.contract_id == first.contract_id)
    # written with trailing zeros, rejected later; then its id used again
    odd = replace(first, event_id="odd", evidence_id="odd", quantity=Decimal("2.50"))
    reused = replace(first, event_id="reused", quantity=Decimal("3"))
    manager = next(e.manager for e in events if isinstance(e, ev.ContractRegistered)
                   and e.contract_id == first.contract_id)  # who may reject (not the supplier)
    rejected = ev.EvidenceRejected(event_id="odd:rejected", contract_id=first.contract_id,
                                   occurred_at=later, actor=manager, evidence_id="odd",
                                   reason="no payroll record")
    log = [*events, odd, reused, rejected]
    records = [Record(s.events_topic, partition_for(e.contract_id.encode(), s.partitions), i,
                      e.contract_id.encode(), encode_event(e))
               for i, e in enumerate(log)]
    sinks = _DeadLetters()
    pipeline = Pipeline(s, repo, LocalStore(), sinks)
    derived: list[ev.Derived] = []

    async def run() -> None:
        cuts = [*range(0, len(events), 5), len(events), len(events) + 1, len(events) + 2]
        for lo, hi in pairwise([*cuts, len(log)]):  # the last three one by one
            batch = await pipeline.handle(records[lo:hi])
            derived.extend(batch.derived)
            assert not any(st.evidence for st in pipeline.store.states.values())

    asyncio.run(run())
    submitted_at = {e.evidence_id: i for i, e in enumerate(events)
                    if isinstance(e, ev.EvidenceSubmitted)}
    decided_later = [e for i, e in enumerate(events)
                     if isinstance(e, ev.EvidenceVerified | ev.EvidenceRejected)
                     and i // 5 > submitted_at[e.evidence_id] // 5]
    assert len(decided_later) > 10  # most decisions met their evidence from the table

    truth, truth_derived = fold_all(log, repo.catalogue)
    assert {c: evolve(st, evidence={}) for c, st in truth.items()} == pipeline.store.states
    assert [derived_to_dict(d) for d in derived] == [derived_to_dict(d) for d in truth_derived]
    assert any(d.kind == "EvidenceWasRejected" and str(d.quantity) == "2.5" for d in derived)
    (dead,) = sinks.dead
    assert dead["event_id"] == "reused"
    assert f"event {first.event_id!r} submitted it" in dead["reason"]
    live = {(c, m): (r["claimed"], r["verified"]) for (c, m), r in repo.live_totals().items()}
    assert live == {(c, m): (st.totals_for(m).claimed, st.totals_for(m).verified)
                    for c, st in truth.items() for m in st.measures()}
    with repo.engine.connect() as conn:
        rows = conn.execute(select(EvidenceRow.__table__)).all()  # type: ignore[attr-defined]
    assert {(r.contract_id, r.evidence_id): (r.status, r.quantity, r.submitted_event_id)
            for r in rows} == {
        (c, rec.evidence_id): (rec.status, rec.quantity, rec.event_ids[0])
        for c, st in truth.items() for rec in st.evidence.values()}


def test_evidence_rows_without_their_submitting_event_and_lost_rows(
        database_url: str, tmp_path: Path) -> None:
    """A row written before revision 0003 without its submitting event keeps none when a
    decision is folded onto it (the decision is not taken for the submission), and a
    reuse of its id is still refused; an evidence row the database lost is written
    again when a restarted worker folds the contract again from the journal."""
    import asyncio
    from dataclasses import replace

    from svmon.streams.pipeline import LocalStore, Pipeline

    repo = _fresh(database_url, tmp_path, "unrecorded")
    s = Settings(database_url=repo.engine.url.render_as_string(hide_password=False),
                 data_dir=tmp_path)
    events = generate(seed=8, today=date(2026, 11, 1), contracts=1)
    first = next(e for e in events if isinstance(e, ev.EvidenceSubmitted))
    old, lost = (replace(first, event_id=f"x{i}", evidence_id=f"x{i}") for i in (1, 2))
    events += [old, lost]  # still waiting for a decision
    cid = old.contract_id
    manager = next(e.manager for e in events if isinstance(e, ev.ContractRegistered)
                   and e.contract_id == cid)  # who may verify

    def verify(e: ev.EvidenceSubmitted) -> ev.EvidenceVerified:
        return ev.EvidenceVerified(event_id=f"v-{e.evidence_id}", contract_id=cid,
                                   occurred_at=later, actor=manager, evidence_id=e.evidence_id)

    later = max(e.occurred_at for e in events)
    t = EvidenceRow.__table__  # type: ignore[attr-defined]

    def record(i: int, e: ev.ContractEvent) -> Record:
        return Record(s.events_topic, partition_for(e.contract_id.encode(), s.partitions), i,
                      e.contract_id.encode(), encode_event(e))

    def rows() -> dict[str, Any]:
        with repo.engine.connect() as conn:
            return {r.evidence_id: r for r in conn.execute(t.select())}

    sinks = _DeadLetters()
    worker = Pipeline(s, repo, LocalStore(), sinks)
    n = len(events)
    asyncio.run(worker.handle([record(i, e) for i, e in enumerate(events)]))
    with repo.engine.begin() as conn:
        conn.execute(t.update().where(t.c.evidence_id == old.evidence_id)
                     .values(submitted_event_id=None))
    asyncio.run(worker.handle([record(n, verify(old))]))
    asyncio.run(worker.handle([record(n + 1, replace(old, event_id="again"))]))
    assert rows()[old.evidence_id].status == "verified"
    assert rows()[old.evidence_id].submitted_event_id is None  # not "v-x1"
    (dead,) = sinks.dead
    assert dead["event_id"] == "again" and "submitted before" in dead["reason"]

    with repo.engine.begin() as conn:
        conn.execute(t.delete().where(t.c.evidence_id == lost.evidence_id))
    restarted = Pipeline(s, repo, LocalStore(), sinks)  # folds the journal again
    asyncio.run(restarted.handle([record(n + 2, verify(lost))]))
    after = rows()
    assert after[lost.evidence_id].status == "verified"  # the lost row, written again
    # and the rebuilt state knew the submission the old row had not recorded
    assert after[old.evidence_id].submitted_event_id == old.event_id
