"""The batch writer in a process of its own, beside the worker's Faust side.

On this machine one Python process ran both halves of the worker's work on one core:
Faust's side (fetching, the agent's batching, offsets, acknowledgements) and the
batch's own (decode, event-id gate, fold, the batch's SQL). Threads did not help: the
executor threads and the event loop take turns on the same interpreter lock, so the
live pipeline ran at about a third of a Faust agent doing nothing. :class:`SplitPipeline`
gives each batch's raw records to a second process that runs the very same
:class:`~streams.app.Pipeline` (with its own repository and state cache) and waits for
the batch's commit before the records are acknowledged, as before. What stays in the
worker: offsets and rewinds (``follow_on``), where each partition resumes, the notice
relay, the clock and the SQLite log checkpoint.

Ordering: one process reads one queue, so batches, ``forget`` and ``drop_unowned`` run
in the order they were sent; the last two are sent without waiting for them and are
done before the next batch. Lifetime: the writer is killed when its worker dies
(``PR_SET_PDEATHSIG``), so a transaction in flight rolls back exactly as when a
whole-worker crashed. A writer that dies alone breaks the pool: the next batch raises,
and the worker's crashing supervisor stops the worker, which restarts from the last
committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from models.repository import Batch, Repository
from streams.app import LocalStore, Pipeline, Sinks
from streams.processor import Record
from svmon.core import events as ev
from svmon.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")
PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies


class WriterProcess:
    """One spawned process that runs calls one at a time, in the order they were sent."""

    def __init__(self, settings: Settings, checkpoint_behind: bool) -> None:
        self.pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
            initargs=(settings, checkpoint_behind, os.getpid()))
        self.posted: list[Future[Any]] = []

    def _raise_posted(self) -> None:
        """An error of a call sent without waiting surfaces at the next call."""
        done = [f for f in self.posted if f.done()]
        self.posted = [f for f in self.posted if not f.done()]
        for f in done:
            f.result()

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        self._raise_posted()
        return await asyncio.wrap_future(self.pool.submit(fn, *args))

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise_posted()
        self.posted.append(self.pool.submit(fn, *args))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)


class SplitPipeline(Pipeline):
    """A :class:`Pipeline` whose batches are folded and written by a :class:`WriterProcess`.

    Its own repository serves the worker's side (positions, the notice relay, the
    clock); the writer builds one of its own from the same settings, so ``repo`` must be
    the database ``settings`` names.
    """

    def __init__(self, settings: Settings, repo: Repository, sinks: Sinks) -> None:
        super().__init__(settings, repo, LocalStore(), sinks)  # the cache is the writer's
        self.writer = WriterProcess(settings, repo.checkpoint_behind)

    async def handle(self, records: list[Record]) -> Batch:
        """As :meth:`Pipeline.handle`, but the batch comes back without its states, and
        its journal rows carry only their contract and event ids (what is pickled back
        is what the worker uses)."""
        # plain tuples: pickling a dataclass instance per record cost ten times as much
        batch = await self.writer.call(_handle, [(r.topic, r.partition, r.offset, r.key,
                                                  r.value) for r in records])
        for dl in batch.dead_letters:  # after the commit, as the thread writer does
            await self.sinks.dead_letter(dl)
        self.processed += len(records)
        return batch

    def forget(self) -> None:
        super().forget()
        self.writer.post(_forget)

    def drop_unowned(self, owned: set[int]) -> None:
        self.writer.post(_drop_unowned, owned)

    def close(self) -> None:
        self.writer.close()


# ---- the writer process's side -------------------------------------------------------

class _Handled:
    """The writer's sinks: dead letters go back with the batch; nothing else is sent
    from here (the relay and the clock run in the worker)."""

    async def dead_letter(self, record: dict[str, Any]) -> None:
        pass

    async def notice(self, contract_id: str, body: str) -> None:
        raise RuntimeError("notices are relayed by the worker, not the batch writer")

    async def tick(self, event: ev.ClockTicked) -> None:
        raise RuntimeError("the clock runs in the worker, not the batch writer")


class _InProcess(Pipeline):
    """The pipeline as the writer runs it: with no event loop of Faust's to keep
    responsive, its work runs inline rather than on executor threads."""

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        return fn(*args)


_loop: asyncio.AbstractEventLoop | None = None
_pipeline: Pipeline | None = None


def _die_with(parent_pid: int) -> None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still ends it
        log.warning("the batch writer cannot ask to die with its worker on this system")
    if os.getppid() != parent_pid:  # the worker died before the request was made
        os._exit(1)


def _start(settings: Settings, checkpoint_behind: bool, parent_pid: int) -> None:
    global _loop, _pipeline
    _die_with(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the worker, which stops this
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] "
                               "batch writer %(name)s: %(message)s")
    from svmon.bootstrap import repository

    repo = repository(settings, checkpoint_behind=checkpoint_behind)
    _loop = asyncio.new_event_loop()
    _pipeline = _InProcess(settings, repo, LocalStore(), _Handled())


def _handle(records: list[tuple[str, int, int, bytes | None, bytes]]) -> Batch:
    assert _loop is not None and _pipeline is not None
    batch = _loop.run_until_complete(_pipeline.handle([Record(*r) for r in records]))
    # what the worker needs back (dead letters; what was journalled and derived)
    journal = [{"contract_id": j["contract_id"], "event_id": j["event_id"]}
               for j in batch.journal]
    return replace(batch, journal=journal, states={}, before={}, evidence={},
                   milestones_changed=set())


def _forget() -> None:
    assert _pipeline is not None
    _pipeline.forget()


def _drop_unowned(owned: Iterable[int]) -> None:
    assert _pipeline is not None
    _pipeline.drop_unowned(set(owned))
