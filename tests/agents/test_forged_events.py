"""Events forged straight onto the contract-events topic (issue #21): the worker's fold
refuses an actor that may not send the event, the refusal is dead-lettered with its
reason, and nothing of it is counted."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from svmon.bootstrap import init_database
from svmon.core import events as ev
from svmon.core.fold import fold_all
from svmon.demo import generate
from svmon.settings import Settings
from svmon.streams.app import build_app
from tests.agents.test_agent import DictStore, Harness, ListSinks, _drain, _put


def _harness(folder: Path) -> Harness:
    folder.mkdir()
    settings = Settings(database_url=f"sqlite:///{folder / 'f.db'}", data_dir=folder,
                        batch_seconds=0.001, partitions=1)  # as Faust's test context
    repo = init_database(settings)
    store, sinks = DictStore(), ListSinks()
    app, p = build_app(settings, repo, store=store, sinks=sinks, check_ownership=False)
    return Harness(app, p, repo, store, sinks)


def _run(h: Harness, events: list[ev.ContractEvent]) -> None:
    async def run() -> None:
        async with h.app.svmon_agent.test_context() as agent:
            await _put(agent, events)
            await _drain(h.pipeline, len(events))

    asyncio.run(run())


def test_forged_events_are_dead_lettered_and_count_for_nothing(tmp_path: Path) -> None:
    h, clean = _harness(tmp_path / "forged"), _harness(tmp_path / "clean")
    events = generate(seed=1, today=date(2026, 6, 1), contracts=1)
    reg = next(e for e in events if isinstance(e, ev.ContractRegistered))
    cid, supplier = reg.contract_id, f"supplier:{reg.supplier_id}"
    commit = next(e for e in events if isinstance(e, ev.CommitmentMade))
    evidence = next(e for e in events if isinstance(e, ev.EvidenceSubmitted))
    pending = replace(evidence, event_id="pending", evidence_id="pending")  # undecided
    legit = [*events, pending]
    forged = [
        # the supplier lowers its own target to nothing
        replace(commit, event_id="forged-commit", actor=supplier, target=Decimal("0.01")),
        # and verifies its own evidence
        ev.EvidenceVerified(event_id="forged-verify", contract_id=cid,
                            occurred_at=pending.occurred_at, actor=supplier,
                            evidence_id="pending"),
        # another supplier claims delivery on this contract
        replace(evidence, event_id="forged-claim", evidence_id="forged-claim",
                actor="supplier:S99"),
        # nobody in particular
        replace(commit, event_id="forged-system", actor="system"),
    ]

    _run(h, [*legit, *forged])
    _run(clean, legit)  # the same worker, without the forged events
    dead = {d["event_id"]: d for d in h.sinks.dead}
    assert set(dead) == {e.event_id for e in forged}
    for e in forged:
        d = dead[e.event_id]
        assert d["field"] == "actor" and repr(e.actor) in d["reason"], d
        assert type(e).__name__ in d["reason"], d
    assert h.repo.counts()["dead_letters"] == len(forged)
    assert h.repo.counts()["journal"] == len(legit)
    # the worker's state, totals and alerts are the legitimate log's, nothing more
    state = h.store.get(cid)
    assert state is not None and state == clean.store.get(cid)
    assert state.commitments[commit.measure].target == commit.target
    t = fold_all(legit, h.repo.catalogue)[0][cid].totals_for(evidence.measure)
    assert state.totals_for(evidence.measure) == t and t.claimed > t.verified  # pending
    assert h.repo.live_totals() == clean.repo.live_totals()
    assert h.repo.counts()["notices"] == clean.repo.counts()["notices"]
    assert h.sinks.dead and clean.sinks.dead == []
