"""The batch writer process (``svmon.streams.writer``) writes what the one-process worker
writes, follows rebalances, and lives and dies with its worker (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from svmon.bootstrap import repository
from svmon.core.fold import fold_all
from svmon.demo import generate
from svmon.models.repository import Batch, Repository
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.pipeline import LocalStore, Pipeline
from svmon.streams.processor import Record
from svmon.streams.writer import SplitPipeline, WriterDied
from tests.integration.test_write_path import _DeadLetters, _fresh, _tables

ROOT = Path(__file__).resolve().parents[2]


def _settings(repo: Repository, tmp: Path) -> Settings:
    # the records are put on partitions 0 and 1 by contract index, not by the key's hash
    # (the tests need both partitions), so the worker's partition check is off here
    return Settings(database_url=repo.engine.url.render_as_string(hide_password=False),
                    data_dir=tmp, check_partitions=False)


def _records(settings: Settings, events: list[Any]) -> list[Record]:
    """The events on two partitions (by contract), with a poison record and a duplicate
    (an event sent again later) on partition 0."""
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {0: [], 1: []}
    cids = sorted({e.contract_id for e in events})
    for e in events:
        by_partition[cids.index(e.contract_id) % 2].append(
            (e.contract_id.encode(), encode_event(e)))
    zero = by_partition[0]
    zero.insert(len(zero) // 3, (b"C-001", b"{not json"))
    zero.insert(2 * len(zero) // 3, zero[len(zero) // 4])
    out = [Record(settings.events_topic, p, i, k, v)
           for p, rs in by_partition.items() for i, (k, v) in enumerate(rs)]
    return sorted(out, key=lambda r: (r.offset, r.partition))  # the partitions interleaved


def _chunks(records: list[Record], size: int) -> list[list[Record]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


async def _feed(pipeline: Pipeline, records: list[Record], size: int) -> list[Batch]:
    return [await pipeline.handle(chunk) for chunk in _chunks(records, size)]


def _dead(sinks: _DeadLetters) -> list[tuple[Any, ...]]:
    return [(d["partition"], d["offset"], d["reason"]) for d in sinks.dead]


def test_the_writer_process_writes_what_the_thread_writer_writes(database_url: str,
                                                                  tmp_path: Path) -> None:
    events = generate(seed=3, today=date(2026, 11, 1), contracts=6)

    repo = _fresh(database_url, tmp_path, "thread")
    settings = _settings(repo, tmp_path)
    records = _records(settings, events)
    thread_sinks = _DeadLetters()
    thread = asyncio.run(_feed(Pipeline(settings, repo, LocalStore(), thread_sinks),
                               records, 97))
    expected = _tables(repo)

    repo = _fresh(database_url, tmp_path, "process")
    settings = _settings(repo, tmp_path)
    process_sinks = _DeadLetters()
    split = SplitPipeline(settings, repo, process_sinks, repository)
    try:
        batches = asyncio.run(_feed(split, records, 97))
    finally:
        split.close()
    assert split.processed == len(records)
    assert _tables(repo) == expected
    assert expected["contract"] and expected["measure_total"] and expected["evidence"]
    # what comes back from the writer: the journal, the derived facts, the dead letters
    assert [[r["event_id"] for r in b.journal] for b in batches] == \
        [[r["event_id"] for r in b.journal] for b in thread]
    assert [[type(d).__name__ for d in b.derived] for b in batches] == \
        [[type(d).__name__ for d in b.derived] for b in thread]
    assert all(not b.states for b in batches)  # the states stay in the writer
    assert _dead(process_sinks) == _dead(thread_sinks)
    assert [d for d, *_ in _dead(process_sinks)] == [0]  # the poison record, published once
    assert repo.counts()["dead_letters"] == 1


def test_a_rebalance_reaches_the_writer_before_its_next_batch(database_url: str,
                                                              tmp_path: Path) -> None:
    """The writer loses partition 1 to another worker, which folds a third of it, and
    gets it back: it must fold those contracts again from the journal, not from its
    cache (which would lack the other worker's events)."""
    events = generate(seed=7, today=date(2026, 11, 1), contracts=6)

    repo = _fresh(database_url, tmp_path, "one")
    settings = _settings(repo, tmp_path)
    records = _records(settings, events)
    asyncio.run(_feed(Pipeline(settings, repo, LocalStore(), _DeadLetters()), records, 120))
    expected = _tables(repo)

    repo = _fresh(database_url, tmp_path, "moved")
    settings = _settings(repo, tmp_path)
    ones = [r for r in records if r.partition == 1]
    zeros = [r for r in records if r.partition == 0]
    a, b = len(ones) // 3, 2 * len(ones) // 3
    sinks, other_sinks = _DeadLetters(), _DeadLetters()
    split = SplitPipeline(settings, repo, sinks, repository)
    other = Pipeline(settings, repo, LocalStore(), other_sinks)

    async def run() -> None:
        await _feed(split, sorted(zeros[:len(zeros) // 2] + ones[:a],
                                  key=lambda r: r.offset), 120)
        split.forget()  # partition 1 goes to the other worker
        split.drop_unowned({0})
        await _feed(other, ones[a:b], 120)
        split.forget()  # and comes back
        split.drop_unowned({0, 1})
        await _feed(split, sorted(zeros[len(zeros) // 2:] + ones[b:],
                                  key=lambda r: r.offset), 120)

    try:
        asyncio.run(run())
    finally:
        split.close()
    assert _tables(repo) == expected
    assert len(sinks.dead) == 1 and not other_sinks.dead  # only the poison record
    truth = fold_all(events, repo.catalogue)[0]
    assert repo.state_versions(list(truth)) == {c: s.version for c, s in truth.items()}


def test_a_writer_that_dies_alone_fails_the_next_batch(tmp_path: Path) -> None:
    """The worker's crashing supervisor then stops the worker: nothing is acknowledged."""
    repo = _fresh("sqlite://", tmp_path, "alone")
    settings = _settings(repo, tmp_path)
    records = _records(settings, generate(seed=3, today=date(2026, 11, 1), contracts=2))
    split = SplitPipeline(settings, repo, _DeadLetters(), repository)

    journalled = []

    async def run() -> None:
        journalled.extend((await split.handle(records[:50])).journal)
        os.kill(await split.writer.call(os.getpid), signal.SIGKILL)
        with pytest.raises(WriterDied):
            await split.handle(records[50:100])
        with pytest.raises(WriterDied):  # and every call after it
            await split.handle(records[50:100])

    try:
        asyncio.run(run())
    finally:
        split.close()
    assert len(journalled) > 40 and repo.counts()["journal"] == len(journalled)


def _fail_next_batch() -> None:
    """Run in the writer: its next batch fails (once), as a bug in the fold would."""
    import svmon.streams.writer as w

    assert w._pipeline is not None
    pipeline, handle = w._pipeline, w._pipeline.handle

    async def failing(records: list[Record]) -> Batch:
        pipeline.handle = handle  # type: ignore[method-assign]
        raise RuntimeError("injected failure")

    pipeline.handle = failing  # type: ignore[method-assign]


def test_a_batch_sent_after_one_that_failed_is_not_written(tmp_path: Path) -> None:
    """The agent sends a batch before the one before it has committed; when that one
    fails, the worker stops and the later one must not be written ahead of it."""
    repo = _fresh("sqlite://", tmp_path, "refused")
    settings = _settings(repo, tmp_path)
    records = _records(settings, generate(seed=3, today=date(2026, 11, 1), contracts=2))
    split = SplitPipeline(settings, repo, _DeadLetters(), repository)

    async def run() -> list[Any]:
        journalled = (await split.handle(records[:50])).journal
        await split.writer.call(_fail_next_batch)
        failing = split.submit(records[50:100])
        following = split.submit(records[100:150])  # sent before the failure is known
        with pytest.raises(RuntimeError, match="injected failure"):
            await failing
        with pytest.raises(RuntimeError, match="an earlier one failed"):
            await following
        return journalled

    try:
        journalled = asyncio.run(run())
    finally:
        split.close()
    assert len(journalled) > 40 and repo.counts()["journal"] == len(journalled)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_writer_dies_with_its_worker(tmp_path: Path) -> None:
    """A worker killed mid-run takes its writer with it (a transaction in flight rolls
    back, as when a one-process worker dies)."""
    script = textwrap.dedent("""
        import asyncio, os, signal, sys, time
        from pathlib import Path
        from svmon.streams.writer import SplitPipeline
        from svmon.bootstrap import init_database, repository
        from svmon.settings import Settings
        from tests.integration.test_write_path import _DeadLetters

        settings = Settings(data_dir=Path(sys.argv[1]))
        split = SplitPipeline(settings, init_database(settings), _DeadLetters(),
                              repository)

        async def main():
            pid = await split.writer.call(os.getpid)
            split.writer.post(time.sleep, 60)  # a batch that takes a minute, in flight
            print(os.getpid(), pid, flush=True)
            await asyncio.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    worker, writer = (int(p) for p in proc.stdout.split())
    assert writer != worker
    deadline = time.time() + 15
    while not _gone(writer) and time.time() < deadline:
        time.sleep(0.1)
    assert _gone(writer), f"the writer {writer} outlived its worker"
