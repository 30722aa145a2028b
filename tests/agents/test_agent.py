"""The fold agent under ``agent.test_context()``: no broker, a real SQLite database.

The state store and the output topics are replaced by in-memory doubles (a started
producer is what the topics would need); everything else is the production code path.
"""

from __future__ import annotations

import asyncio
import json
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from svmon.bootstrap import init_database
from svmon.core import events as ev
from svmon.core.fold import fold_all
from svmon.core.state import ContractState, evolve
from svmon.demo import generate
from svmon.models.repository import Batch, Repository
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.app import build_app
from svmon.streams.pipeline import Pipeline
from svmon.streams.processor import Record


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, ContractState] = {}

    def get(self, contract_id: str) -> ContractState | None:
        return self.data.get(contract_id)

    def put(self, contract_id: str, state: ContractState) -> None:
        self.data[contract_id] = state

    def drop(self, contract_ids: Iterable[str]) -> None:
        for cid in contract_ids:
            self.data.pop(cid, None)


class ListSinks:
    def __init__(self) -> None:
        self.dead: list[dict[str, Any]] = []
        self.notices: list[tuple[str, str]] = []
        self.ticks: list[ev.ClockTicked] = []

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self.dead.append(record)

    async def notice(self, contract_id: str, body: str) -> None:
        self.notices.append((contract_id, body))

    async def tick(self, event: ev.ClockTicked) -> None:
        self.ticks.append(event)


@dataclass
class Harness:
    app: Any
    pipeline: Pipeline
    repo: Repository
    store: DictStore
    sinks: ListSinks


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", data_dir=tmp_path,
                        batch_seconds=0.001, partitions=1)  # as Faust's test context
    repo = init_database(settings)
    store, sinks = DictStore(), ListSinks()
    app, pipeline = build_app(settings, repo, store=store, sinks=sinks,
                              check_ownership=False)  # no consumer group here
    return Harness(app, pipeline, repo, store, sinks)


async def _put(agent: Any, events: list[ev.ContractEvent]) -> None:
    for e in events:
        await agent.put(encode_event(e), key=e.contract_id.encode())


async def _drain(pipeline: Any, want: int, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if pipeline.processed >= want:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"agent processed {pipeline.processed} of {want}")


def test_agent_folds_events_into_store_and_database(harness: Harness) -> None:
    h = harness
    events = generate(seed=1, today=date(2026, 6, 1), contracts=2)

    async def run() -> None:
        async with h.app.svmon_agent.test_context() as agent:
            await _put(agent, events)
            await _drain(h.pipeline, len(events))

    asyncio.run(run())
    assert h.repo.counts()["journal"] == len(events)
    report = h.repo.report()
    for c in report["contracts"]:
        state = h.store.get(c["contract_id"])
        assert state is not None and state.version > 0
        for m in c["measures"]:
            assert Decimal(m["verified"]) == state.totals_for(m["measure"]).verified
    assert h.sinks.dead == []


def test_agent_dead_letters_bad_message_and_keeps_going(harness: Harness) -> None:
    h = harness
    events = generate(seed=1, today=date(2026, 6, 1), contracts=1)
    cid = events[0].contract_id

    async def run() -> None:
        async with h.app.svmon_agent.test_context() as agent:
            await agent.put(encode_event(events[0]), key=cid.encode())
            await agent.put(b'{"schema_version": 7}', key=cid.encode())
            for e in events[1:]:
                await agent.put(encode_event(e), key=cid.encode())
            await _drain(h.pipeline, len(events) + 1)

    asyncio.run(run())
    assert len(h.sinks.dead) == 1
    dl = h.sinks.dead[0]
    assert dl["field"] == "schema_version" and "schema_version" in dl["reason"]
    assert {"topic", "partition", "offset"} <= dl.keys()
    assert h.repo.counts()["journal"] == len(events)
    assert h.repo.counts()["dead_letters"] == 1


def test_agent_counts_a_redelivered_event_once(harness: Harness) -> None:
    h = harness
    events = generate(seed=4, today=date(2026, 6, 1), contracts=1)
    evidence = next(e for e in events if isinstance(e, ev.EvidenceSubmitted))

    async def run() -> None:
        async with h.app.svmon_agent.test_context() as agent:
            await _put(agent, events)
            for _ in range(2):
                await agent.put(encode_event(evidence), key=evidence.contract_id.encode())
            await _drain(h.pipeline, len(events) + 2)

    asyncio.run(run())
    state = h.store.get(evidence.contract_id)
    assert state is not None and not state.evidence  # the cache keeps no evidence
    # the journal folded again holds every piece: the cached state is that state
    full = fold_all(h.repo.journal_events(evidence.contract_id), h.repo.catalogue)[0][
        evidence.contract_id]
    claimed = sum((r.quantity for r in full.evidence.values()
                   if r.measure == evidence.measure and r.counts_as_claimed), Decimal(0))
    assert claimed > 0 and state.totals_for(evidence.measure).claimed == claimed
    assert evolve(full, evidence={}) == state
    assert h.repo.counts()["journal"] == len(events)


def test_relay_publishes_each_notice_once(harness: Harness) -> None:
    h = harness
    events = generate(seed=3, today=date(2026, 11, 1), contracts=3)

    async def run() -> tuple[int, int]:
        async with h.app.svmon_agent.test_context() as agent:
            await _put(agent, events)
            await _drain(h.pipeline, len(events))
        first = await h.pipeline.relay_notices()
        second = await h.pipeline.relay_notices()
        return first, second

    first, second = asyncio.run(run())
    assert first == h.repo.counts()["notices"] > 0
    assert second == 0
    kinds = {json.loads(body)["kind"] for _, body in h.sinks.notices}
    assert "MilestoneMissed" in kinds


def test_clock_ticks_every_known_contract(harness: Harness) -> None:
    h = harness
    events = generate(seed=3, today=date(2026, 11, 1), contracts=3)

    async def run() -> int:
        async with h.app.svmon_agent.test_context() as agent:
            await _put(agent, events)
            await _drain(h.pipeline, len(events))
        return await h.pipeline.tick()

    assert asyncio.run(run()) == 3
    assert sorted(t.contract_id for t in h.sinks.ticks) == ["C-001", "C-002", "C-003"]
    assert len({t.at for t in h.sinks.ticks}) == 1


# --- following on: what the worker applies after a rebalance ----------------------

def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _recs(h: Harness, partition: int, offsets: range | list[int]) -> list[Record]:
    return [Record(h.pipeline.settings.events_topic, partition, o, b"C-1", b"{}")
            for o in offsets]


def test_a_batch_with_a_hole_is_applied_up_to_the_hole_and_read_again(
        harness: Harness) -> None:
    p = harness.pipeline
    p.next_offset[0] = 10
    keep, rewind = run(p.follow_on(_recs(harness, 0, [10, 11, 14, 15]), {0}))
    assert [r.offset for r in keep] == [10, 11] and rewind == {0: 12}
    p.applied(keep)  # the agent does this once the batch is committed
    # records from beyond the hole still in flight: dropped, no second seek
    keep, rewind = run(p.follow_on(_recs(harness, 0, [16, 17]), {0}))
    assert keep == [] and rewind == {}
    # the hole's records arrive after the seek: applied from there on
    keep, rewind = run(p.follow_on(_recs(harness, 0, range(12, 18)), {0}))
    assert [r.offset for r in keep] == list(range(12, 18)) and rewind == {}


def test_a_partition_first_seen_resumes_where_the_database_says(
        harness: Harness) -> None:
    """With no position for the partition anywhere, only offset 0 follows on."""
    keep, rewind = run(harness.pipeline.follow_on(_recs(harness, 3, [111, 112]), {3}))
    assert keep == [] and rewind == {3: 0}


def test_records_read_again_are_kept_and_revoked_partitions_left(
        harness: Harness) -> None:
    p = harness.pipeline
    p.next_offset.update({0: 10, 1: 5})
    keep, rewind = run(p.follow_on(_recs(harness, 0, [7, 8, 9, 10]) +
                                     _recs(harness, 1, [5, 6]), {0}))
    assert [(r.partition, r.offset) for r in keep] == [(0, 7), (0, 8), (0, 9), (0, 10)]
    assert rewind == {}  # partition 1 is another worker's now: not read, not sought
    p.applied(keep)
    assert p.next_offset[0] == 11


def test_resume_points_take_the_earlier_of_broker_and_database(
        harness: Harness) -> None:
    from faust.types import TP

    p, topic = harness.pipeline, harness.pipeline.settings.events_topic
    harness.repo.apply_batch(Batch(consumer=p.settings.app_id,
                                   positions={(topic, 0): 41, (topic, 1): 9}))
    got = run(p.resume_points({TP(topic, 0): 50, TP(topic, 1): 3, TP(topic, 2): 7,
                                 TP(topic, 3): None, TP("other", 0): 5}))
    assert got == {TP(topic, 0): 42, TP(topic, 1): 3, TP(topic, 2): 0, TP(topic, 3): 0}


def test_a_rebalance_that_never_finishes_ends_the_worker(harness: Harness,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The watchdog: a worker whose rebalance has not finished after
    ``stuck_rebalance_seconds`` exits with STUCK_EXIT (for its supervisor to restart),
    and one whose rebalance finished, or never began, goes on."""
    import svmon.streams.app as app_module

    exits: list[int] = []
    monkeypatch.setattr(app_module.os, "_exit", exits.append)
    p, s = harness.pipeline, harness.pipeline.settings
    app_module.exit_if_stuck(p, s, now=1000.0)
    assert exits == []  # no rebalance under way
    p.revoked_at = 1000.0
    app_module.exit_if_stuck(p, s, now=1000.0 + s.stuck_rebalance_seconds - 1)
    assert exits == []  # not yet
    app_module.exit_if_stuck(p, s, now=1000.0 + s.stuck_rebalance_seconds + 1)
    assert exits == [app_module.STUCK_EXIT]
    asyncio.run(p.resume_points({}))  # an assignment ends the rebalance
    assert p.revoked_at is None


ARENAS = """
import ctypes, sys, threading
from svmon.streams.app import fewer_malloc_arenas
if sys.argv[1] == "cap":
    fewer_malloc_arenas(2)
keep = []
together = threading.Barrier(8)
def work():  # lists of 1,000 items: their arrays come from malloc, in the thread's arena
    together.wait()  # all alive at once: an exited thread's arena would be reused
    keep.extend([0] * 1000 for _ in range(500))
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
out = ctypes.c_void_p(libc.fopen(sys.argv[2].encode(), b"w"))
libc.malloc_info(0, out)
libc.fclose(out)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_the_worker_caps_glibc_malloc_arenas(tmp_path: Path) -> None:
    def heaps(mode: str) -> int:
        report = tmp_path / f"{mode}.xml"
        subprocess.run([sys.executable, "-c", ARENAS, mode, str(report)], check=True,
                       cwd=Path(__file__).resolve().parents[2])
        return report.read_text().count("<heap nr=")

    assert heaps("default") > 2  # eight threads that allocate get arenas of their own
    assert heaps("cap") <= 2


def test_faust_keeps_its_files_under_the_data_directory(tmp_path: Path) -> None:
    from svmon.streams.app import faust_app

    # Faust's default, "<app id>-data" in the working directory, littered wherever a
    # worker, a benchmark or a test was started
    app = faust_app(Settings(data_dir=tmp_path / "data", app_id="here"))
    assert Path(app.conf.tabledir).is_relative_to(tmp_path / "data")


def test_one_poll_hands_the_agent_at_most_two_batches(tmp_path: Path) -> None:
    # Without a cap aiokafka returns every record it has fetched from one poll, and
    # Faust polls again only once it has fed them all to the agent: a slow stretch
    # (a restarted worker folding its contracts again) outlasted max_poll_interval
    # and the worker left its group.
    from svmon.streams.app import faust_app

    app = faust_app(Settings(data_dir=tmp_path, batch_size=300))
    assert app.conf.broker_max_poll_records == 600  # Faust's driver gives it to aiokafka
