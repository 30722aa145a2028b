"""The Faust app: one agent folds contract events, two timers keep time and relay alerts.

Built by :func:`build_app` from settings, a repository and a catalogue; nothing here
connects at import time. The agent reads batches and acknowledges them only after the
batch's database transaction commits, so a crash means redelivery, never loss. Per
batch it asks the database which event ids were accepted or refused before and reads
the evidence the batch's events name, brings each contract's state up to the
database's version when it first meets it, folds, writes the batch, then keeps the new
states, without their evidence, in memory (``LocalStore``). By default all of that runs
in a batch writer process beside this one (:mod:`svmon.streams.writer`); this process keeps
the offsets, the acknowledgements, the notice relay and the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import faust
import mode
from faust.types import TP

from svmon.core import events as ev
from svmon.models.engine import TRANSIENT
from svmon.models.repository import Batch, Repository
from svmon.schemas import encode_event, to_jsonable
from svmon.settings import BATCH_WRITERS, Settings
from svmon.streams.batching import lingering_batches
from svmon.streams.handoff import hand_over_directly
from svmon.streams.pipeline import REWIND_AGAIN, LocalStore, Pipeline, Sinks, StateStore
from svmon.streams.processor import Record
from svmon.streams.tuning import (
    fewer_malloc_arenas,
    resume_paused_partitions_promptly,
    shorten_fetch_wait,
)

if TYPE_CHECKING:
    from svmon.streams.writer import OpenRepository

log = logging.getLogger(__name__)
R = TypeVar("R")
# records one poll hands to the agent, in batches (see faust_app)
MAX_POLL_BATCHES = 2
STUCK_EXIT = 70  # the worker's exit status when a rebalance never finished (restart it)


class _TopicSinks:
    def __init__(self, dlq: Any, alerts: Any, events: Any) -> None:
        self.dlq, self.alerts, self.events = dlq, alerts, events

    async def dead_letter(self, record: dict[str, Any]) -> None:
        body = {k: to_jsonable(v) for k, v in record.items()}
        await self.dlq.send(key=record.get("key"), value=json.dumps(body).encode())

    async def notice(self, contract_id: str, body: str) -> None:
        delivery = await self.alerts.send(key=contract_id, value=body.encode())
        await delivery  # the broker acknowledged it

    async def tick(self, event: ev.ClockTicked) -> None:
        await self.events.send(key=event.contract_id, value=encode_event(event))


def exit_if_stuck(pipeline: Pipeline, settings: Settings, now: float) -> None:
    """End the process when a rebalance begun longer than
    ``settings.stuck_rebalance_seconds`` ago has not finished (see the watchdog timer)."""
    since = pipeline.revoked_at
    if since is not None and now - since > settings.stuck_rebalance_seconds:
        log.critical("the rebalance begun %.0f s ago has not finished; exiting so the worker "
                     "is started again", now - since)
        for handler in logging.getLogger().handlers:  # the reason reaches the log
            handler.flush()
        os._exit(STUCK_EXIT)


async def read_again(app: faust.App, settings: Settings, rewind: dict[int, int]) -> None:
    """Seek partitions of the events topic, in the consumer's own thread (aiokafka is
    not thread-safe: a seek from another thread can leave its fetcher asleep)."""
    if not rewind:
        return
    try:
        await app.consumer.seek_wait({TP(settings.events_topic, p): offset
                                      for p, offset in rewind.items()})
    except Exception as err:  # revoked meanwhile: its new owner resumes it
        log.warning("could not read partitions %s again: %s", sorted(rewind), err)


def release_dropped(app: faust.App, events: list[Any]) -> None:
    """Records dropped by ``follow_on`` will come again (or belong to another worker):
    take them out of Faust's unacknowledged set, which a rebalance waits to empty."""
    unacked = getattr(app.consumer, "_unacked_messages", None)
    if unacked is not None:
        for e in events:
            unacked.discard(e.message)


def resume_from_applied(app: faust.App, pipeline: Pipeline) -> None:
    """After every rebalance, read each events partition from where the database says
    it was applied (:meth:`Pipeline.resume_points`), not only from the broker's
    committed offset. Faust seeks through ``seek_to_committed`` once table recovery is
    done; this wraps it and seeks again where the two disagree."""
    consumer = app.consumer
    # Faust's Consumer has it; the ConsumerT that app.consumer is typed as does not
    real = consumer.seek_to_committed  # type: ignore[attr-defined]

    async def seek_to_applied() -> Any:
        committed = dict(await real())
        moves = {}
        for tp, offset in (await pipeline.resume_points(committed)).items():
            if offset != committed.get(tp):
                say = log.info if committed.get(tp) is not None else log.debug
                say("resuming %s/%s at %s (committed %s)", tp.topic, tp.partition, offset,
                    committed.get(tp))
                moves[tp] = committed[tp] = offset
        if moves:
            await consumer.seek_wait(moves)
        return committed

    consumer.seek_to_committed = seek_to_applied  # type: ignore[attr-defined]


def faust_app(settings: Settings, *, tuned: bool = True, **overrides: Any) -> faust.App:
    """The Faust app every worker runs, with this project's fixes to Faust's consumer and
    the cap on malloc arenas (``tuned=False``: Faust as it comes, with the same settings;
    the benchmarks' stock anchors). The fixes change classes and the C library's
    settings, so they hold for the whole process."""
    if tuned:
        fewer_malloc_arenas()
        shorten_fetch_wait(settings.fetch_max_wait_ms)
        resume_paused_partitions_promptly()
        hand_over_directly()
    return faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        # Faust makes its data directory even with an in-memory store: under the data
        # directory, not "<app id>-data" in whatever directory the worker started in
        datadir=settings.data_dir / "faust",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        # aiokafka leaves the group when no poll has ended for max_poll_interval. Faust
        # feeds one poll's records to the agent before it polls again, and without a
        # cap one poll returned everything fetched (thousands of records): while a
        # restarted worker folded its contracts again from the journal, feeding them
        # took longer than the interval, the worker left the group mid-catch-up and the
        # rejoin never finished (bench/memory.py: three restarts in one run).
        broker_max_poll_interval=60.0,
        broker_max_poll_records=MAX_POLL_BATCHES * settings.batch_size,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        web_enabled=False,
        **overrides,
    )


class _Sent:
    """A batch handed to the pipeline, and the stream events to acknowledge once it is
    committed."""

    def __init__(self, task: asyncio.Future[Batch], keep: list[Record],
                 events: list[Any]) -> None:
        self.task, self.keep, self.events = task, keep, events

    async def settle(self, stream: Any, pipeline: Pipeline,
                     on_batch: Callable[[Batch], Awaitable[None]] | None) -> int:
        """Wait for the commit, then acknowledge; the batch's error ends the agent."""
        try:
            batch = await self.task
        except Exception:
            log.critical("batch of %d not processed; it will be redelivered",
                         len(self.keep), exc_info=True)
            raise
        pipeline.applied(self.keep)
        for e in self.events:
            await stream.ack(e)
        if on_batch is not None:
            await on_batch(batch)
        return len(self.keep)


def build_app(settings: Settings, repo: Repository, *, store: StateStore | None = None,
              sinks: Sinks | None = None,
              on_batch: Callable[[Batch], Awaitable[None]] | None = None,
              check_ownership: bool = True, writer: str = "thread",
              open_repository: OpenRepository | None = None,
              **overrides: Any) -> tuple[faust.App, Pipeline]:
    """The worker's Faust app and the pipeline its agent drives.

    ``writer`` says where batches are folded and written: ``"thread"`` on executor
    threads of this process (with ``store`` as the state cache; what tests that wrap the
    repository or the store need), ``"process"`` in a process of its own
    (:mod:`svmon.streams.writer`: 1.4-2 × the throughput on two cores; it builds its own
    repository from ``settings``, so ``repo`` must be the database they name).
    """
    if writer not in BATCH_WRITERS:
        raise ValueError(f"writer must be one of {BATCH_WRITERS}, not {writer!r}")
    if writer == "process" and store is not None:
        raise ValueError("the process writer keeps its own state cache: pass no store")
    if writer == "process" and open_repository is None:
        raise ValueError("the process writer opens its own repository: pass "
                         "open_repository (svmon.bootstrap.repository)")
    app = faust_app(settings, **overrides)
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions)
    alerts_topic = app.topic(settings.alerts_topic, key_serializer="raw",
                             value_serializer="raw", partitions=settings.partitions)
    dlq_topic = app.topic(settings.dead_letter_topic, key_serializer="raw",
                          value_serializer="raw", partitions=1)
    sinks = sinks or _TopicSinks(dlq_topic, alerts_topic, events_topic)
    pipeline: Pipeline
    if writer == "process":
        from svmon.streams.writer import SplitPipeline

        assert open_repository is not None
        pipeline = SplitPipeline(settings, repo, sinks, open_repository)
    else:
        pipeline = Pipeline(settings, repo, store or LocalStore(), sinks)

    # A batch that fails after its retries must not be skipped: the crashing supervisor
    # stops the worker, which restarts from the last committed offset.
    @app.agent(events_topic, name="fold-contract-events",
               supervisor_strategy=mode.CrashingSupervisor)
    async def fold_contract_events(stream: Any) -> Any:
        # Events are acknowledged here, after the batch is committed; an exception or a
        # shutdown mid-batch acknowledges nothing, so it is redelivered. A batch goes
        # when full or when its oldest event has waited ``batch_seconds``.
        #
        # With ``pipeline.overlap`` (the writer process) the next batch is sent while
        # the one before it is still being written, and the earlier one is acknowledged
        # after that: the writer takes them in order and starts the next at once, not
        # after this side has acknowledged, collected and sent it (the writer sat idle
        # 10-12% of a catch-up so). At most one batch waits to be acknowledged; when no
        # next batch comes, it is acknowledged as soon as it is committed.
        batches = lingering_batches(stream, settings.batch_size, settings.batch_seconds)
        upcoming = asyncio.ensure_future(anext(batches))
        sent: _Sent | None = None
        following: _Sent | None = None
        try:
            while True:
                if sent is not None and not upcoming.done():
                    await asyncio.wait((upcoming, sent.task),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not upcoming.done():  # committed, and nothing more to send yet
                        yield await sent.settle(stream, pipeline, on_batch)
                        sent = None
                        continue
                try:
                    batch_events = await upcoming
                except StopAsyncIteration:
                    break
                upcoming = asyncio.ensure_future(anext(batches))
                records = [Record(e.message.topic, e.message.partition, e.message.offset,
                                  e.message.key, e.message.value) for e in batch_events]
                owned = None if not check_ownership else {
                    tp.partition for tp in app.consumer.assignment()
                    if tp.topic == settings.events_topic}
                keep, rewind = await pipeline.follow_on(records, owned)
                await read_again(app, settings, rewind)
                kept = {(r.partition, r.offset) for r in keep}
                release_dropped(app, [e for e in batch_events
                                      if (e.message.partition, e.message.offset) not in kept])
                if not keep:
                    continue
                following = _Sent(pipeline.submit(keep), keep,
                                  [e for e in batch_events
                                   if (e.message.partition, e.message.offset) in kept])
                if pipeline.overlap:
                    # the next batch's records follow on from these (follow_on), which
                    # are not committed yet; if they fail, the worker stops, and the
                    # writer refuses every batch sent after them
                    pipeline.applied(keep)
                if sent is not None:
                    yield await sent.settle(stream, pipeline, on_batch)
                sent = following
                if not pipeline.overlap:
                    yield await sent.settle(stream, pipeline, on_batch)
                    sent = None
            if sent is not None:  # the stream ended: acknowledge what was committed
                yield await sent.settle(stream, pipeline, on_batch)
                sent = None
        finally:
            upcoming.cancel()
            for unsettled in (sent, following):  # not acknowledged: redelivered
                if unsettled is not None and not unsettled.task.done():
                    unsettled.task.cancel()

    # A rewind whose first record has not come (Faust drops records below a read offset
    # that in-flight records raised; a fetcher that missed the seek) is sought again.
    @app.timer(interval=REWIND_AGAIN / 2)
    async def rewind_watchdog() -> None:
        now = asyncio.get_running_loop().time()
        stale = {p: at for p, (at, since) in pipeline.rewinding.items()
                 if now - since > REWIND_AGAIN}
        if stale:
            log.warning("partitions %s: still waiting for %s; reading again", sorted(stale),
                        stale)
            for p in stale:
                pipeline.rewinding[p] = (stale[p], now)
            await read_again(app, settings, stale)

    # SQLite's log is copied into the database file beside the commits, not inside one
    # (``Repository.checkpoint_wal``; nothing to do elsewhere).
    if repo.checkpoint_behind:
        @app.timer(interval=0.25)
        async def checkpoint() -> None:
            try:
                await pipeline._run(repo.checkpoint_wal)
            except TRANSIENT as err:
                log.warning("could not checkpoint the database's log (%s)", err)

    # The timers run again on their own: a database outage only has to be waited out,
    # never allowed to crash the app (which would stop the agent with it).
    @app.timer(interval=settings.relay_seconds, on_leader=True)
    async def relay() -> None:
        try:
            await pipeline.relay_notices()
        except TRANSIENT as err:
            log.warning("database unavailable (%s); the notice relay tries again in %.0fs",
                        err, settings.relay_seconds)

    @app.timer(interval=settings.tick_seconds, on_leader=True)
    async def clock() -> None:
        try:
            await pipeline.tick()
        except TRANSIENT as err:
            log.warning("database unavailable (%s); the clock ticks again in %.0fs",
                        err, settings.tick_seconds)

    @app.on_partitions_revoked.connect
    async def _revoked(*_: Any, **__: Any) -> None:
        pipeline.forget()
        pipeline.revoked_at = asyncio.get_running_loop().time()

    @app.on_partitions_assigned.connect
    async def _assigned(*_: Any, **__: Any) -> None:
        pipeline.revoked_at = None  # the rebalance finished (with or without partitions)

    # Under sustained load on the embedded broker a worker was seen to lose its group
    # membership (UnknownMemberIdError) and never finish rejoining, every thread idle
    # (known in aiokafka and Faust). A rebalance that has not finished after
    # ``settings.stuck_rebalance_seconds`` ends the process, as a crash would (nothing is
    # lost: journal and positions are in the database); its supervisor starts it again.
    @app.timer(interval=5.0)
    async def rebalance_watchdog() -> None:
        exit_if_stuck(pipeline, settings, asyncio.get_running_loop().time())

    resume_from_applied(app, pipeline)
    app.svmon_agent = fold_contract_events  # type: ignore[attr-defined]
    return app, pipeline
