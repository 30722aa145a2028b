"""The batch writer in a process of its own, beside the worker's Faust side.

On this machine one Python process ran both halves of the worker's work on one core:
Faust's side (fetching, the agent's batching, offsets, acknowledgements) and the
batch's own (decode, event-id gate, fold, the batch's SQL). Threads did not help: the
executor threads and the event loop take turns on the same interpreter lock, so the
live pipeline ran at about a third of a Faust agent doing nothing. :class:`SplitPipeline`
gives each batch's raw records to a second process that runs the very same
:class:`~svmon.streams.pipeline.Pipeline` (with its own repository and state cache) and waits for
the batch's commit before the records are acknowledged, as before. What stays in the
worker: offsets and rewinds (``follow_on``), where each partition resumes, the notice
relay, the clock and the SQLite log checkpoint.

Ordering: one process reads one pipe, so batches, ``forget`` and ``drop_unowned`` run
in the order they were sent; the last two are sent without waiting for them and are
done before the next batch. Lifetime: the writer is killed when its worker dies
(``PR_SET_PDEATHSIG``), so a transaction in flight rolls back exactly as when a
one-process worker crashed. A writer that dies alone fails the batch it had and every
later call (:class:`WriterDied`): the worker's crashing supervisor stops the worker,
which restarts from the last committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import pickle
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any, Protocol, TypeVar

from svmon.core import events as ev
from svmon.models.repository import Batch, Repository
from svmon.settings import Settings
from svmon.streams.pipeline import LocalStore, Pipeline, Sinks
from svmon.streams.processor import Record
from svmon.streams.runtime import collect_garbage_seldom

log = logging.getLogger(__name__)
R = TypeVar("R")

class OpenRepository(Protocol):
    """How the writer's process opens its repository: a module-level function, so that
    it crosses to the spawned process by name (``svmon.bootstrap.repository``)."""

    def __call__(self, settings: Settings, *, checkpoint_behind: bool) -> Repository: ...


PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies


class WriterDied(RuntimeError):
    """The batch writer process ended (killed, or crashed) with calls still to answer."""


class WriterProcess:
    """One spawned process that runs calls one at a time, in the order they were sent.

    Requests and answers cross one pipe, written and read on the event loop's own thread
    (the answer through ``loop.add_reader``). A process pool did the same with two
    helper threads in the worker, each of which had to win the interpreter lock from
    the busy Faust loop: a batch's round trip cost about 21 ms on top of the writer's
    own time (80 batches of 500: 6.6 s against 4.9 s in the writer), and 10 ms this way
    (6.5 s against 5.7 s, 6.4 against 5.6).
    """

    def __init__(self, settings: Settings, checkpoint_behind: bool,
                 open_repository: OpenRepository) -> None:
        self._args = (settings, checkpoint_behind, open_repository)
        self.process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()  # answers due, in order
        self._posted: list[asyncio.Future[Any]] = []
        self._dead: WriterDied | None = None

    def _connect(self) -> Connection:
        """The pipe to the writer, started on first use, read by the running loop."""
        loop = asyncio.get_running_loop()
        if self._conn is None:
            ctx = multiprocessing.get_context("spawn")  # nothing of Faust's is inherited
            ours, theirs = ctx.Pipe(duplex=True)
            self.process = ctx.Process(target=_serve, name="svmon-batch-writer", daemon=True,
                                       args=(theirs, *self._args, os.getpid()))
            self.process.start()
            theirs.close()
            self._conn = ours
        if loop is not self._loop:  # first use, or a new loop (tests run several)
            if self._waiting:
                raise RuntimeError("the batch writer still owes answers to another loop")
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._conn.fileno())
            loop.add_reader(self._conn.fileno(), self._answered)
            self._loop = loop
        return self._conn

    def _answered(self) -> None:
        assert self._conn is not None
        try:
            ok, value = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as err:
            self._died(err)
            return
        fut = self._waiting.popleft()
        if fut.cancelled():  # the caller stopped waiting; the order is kept all the same
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def _died(self, err: BaseException) -> None:
        assert self._conn is not None and self._loop is not None
        self._loop.remove_reader(self._conn.fileno())
        code = self.process.exitcode if self.process is not None else None
        self._dead = WriterDied(f"the batch writer process ended (exit code {code}: {err!r})")
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(self._dead)

    def _send(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        # an error of a call sent without waiting surfaces at the next call
        done = [f for f in self._posted if f.done()]
        self._posted = [f for f in self._posted if not f.done()]
        for f in done:
            f.result()
        conn = self._connect()
        if self._dead is not None:
            raise self._dead
        assert self._loop is not None
        fut = self._loop.create_future()
        self._waiting.append(fut)
        try:
            conn.send_bytes(pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as err:
            self._died(err)
            raise WriterDied(str(self._dead)) from err
        return fut

    def send(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Send a call now; the future is its answer."""
        return self._send(fn, args)

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        result: R = await self._send(fn, args)
        return result

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Send a call without waiting for it (its error is raised by the next call)."""
        self._posted.append(self._send(fn, args))

    def close(self, timeout: float = 30.0) -> None:
        """Let the writer finish what it was sent, then end it."""
        if self._conn is None or self.process is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._conn.fileno())
        with contextlib.suppress(OSError):
            self._conn.send_bytes(pickle.dumps((None, ())))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


class SplitPipeline(Pipeline):
    """A :class:`Pipeline` whose batches are folded and written by a :class:`WriterProcess`.

    Its own repository serves the worker's side (positions, the notice relay, the
    clock); the writer builds one of its own from the same settings with
    ``open_repository`` (the composition root's factory, handed down: the writer's
    process imports nothing above this layer), so ``repo`` must be the database
    ``settings`` names.
    """

    overlap = True  # one process takes the batches one at a time, in the order sent

    def __init__(self, settings: Settings, repo: Repository, sinks: Sinks,
                 open_repository: OpenRepository) -> None:
        super().__init__(settings, repo, LocalStore(), sinks)  # the cache is the writer's
        self.writer = WriterProcess(settings, repo.checkpoint_behind, open_repository)

    async def handle(self, records: list[Record]) -> Batch:
        """As :meth:`Pipeline.handle`, but the batch comes back without its states, and
        its journal rows carry only their contract and event ids (what is pickled back
        is what the worker uses)."""
        return await self.submit(records)

    def submit(self, records: list[Record]) -> asyncio.Future[Batch]:
        """The records go to the writer now, before this returns."""
        # plain tuples: pickling a dataclass instance per record cost ten times as much
        answer = self.writer.send(_handle, [(r.topic, r.partition, r.offset, r.key,
                                             r.value) for r in records])
        return asyncio.ensure_future(self._committed(answer, len(records)))

    async def _committed(self, answer: asyncio.Future[Batch], n: int) -> Batch:
        batch = await answer
        for dl in batch.dead_letters:  # after the commit, as the thread writer does
            await self.sinks.dead_letter(dl)
        self.processed += n
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
# A batch that failed: the worker stops on it, and the batches it sent after it (see
# SplitPipeline.overlap) are refused, so none is written out of order.
_failed: str | None = None


def _die_with(parent_pid: int) -> None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError):  # not Linux: the pipe's end still ends it, but only
        # once the call in hand is done
        log.warning("the batch writer cannot ask to die with its worker on this system")
    if os.getppid() != parent_pid:  # the worker died before the request was made
        os._exit(1)


def _start(settings: Settings, checkpoint_behind: bool, open_repository: OpenRepository,
           parent_pid: int) -> None:
    global _loop, _pipeline
    _die_with(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the worker, which stops this
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] "
                               "batch writer %(name)s: %(message)s")
    repo = open_repository(settings, checkpoint_behind=checkpoint_behind)
    _loop = asyncio.new_event_loop()
    _pipeline = _InProcess(settings, repo, LocalStore(), _Handled())
    collect_garbage_seldom()


def _serve(conn: Connection, settings: Settings, checkpoint_behind: bool,
           open_repository: OpenRepository, parent_pid: int) -> None:
    """The writer's loop: answer each call, in order, until told to stop or the worker
    is gone."""
    _start(settings, checkpoint_behind, open_repository, parent_pid)
    while True:
        try:
            fn, args = pickle.loads(conn.recv_bytes())
        except EOFError:  # the worker closed its end
            return
        if fn is None:
            return
        try:
            answer: tuple[bool, Any] = (True, fn(*args))
        except Exception as err:
            log.error("%s failed in the batch writer", fn.__name__, exc_info=True)
            answer = (False, err)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # an answer that cannot be pickled still gets one
            data = pickle.dumps((False, RuntimeError(
                f"{fn.__name__} in the batch writer: {answer[1]!r} (not picklable: {err})")))
        conn.send_bytes(data)


def _handle(records: list[tuple[str, int, int, bytes | None, bytes]]) -> Batch:
    global _failed
    assert _loop is not None and _pipeline is not None
    if _failed is not None:  # sent before the worker saw the failure: not in order now
        raise RuntimeError(f"batch not written: an earlier one failed ({_failed})")
    try:
        batch = _loop.run_until_complete(_pipeline.handle([Record(*r) for r in records]))
    except BaseException as err:
        _failed = f"{type(err).__name__}: {err}"
        raise
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
