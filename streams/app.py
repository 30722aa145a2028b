"""The Faust app: one agent folds contract events, two timers keep time and relay alerts.

Built by :func:`build_app` from settings, a repository and a catalogue; nothing here
connects at import time. The agent reads batches and acknowledges them only after the
batch's database transaction commits, so a crash means redelivery, never loss. Per
batch it asks the database which event ids were accepted or refused before and reads
the evidence the batch's events name, brings each contract's state up to the
database's version when it first meets it, folds, writes the batch, then keeps the new
states, without their evidence, in memory (``LocalStore``). By default all of that runs
in a batch writer process beside this one (:mod:`streams.writer`); this process keeps
the offsets, the acknowledgements, the notice relay and the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import faust
import mode
from faust.types import TP
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from models.repository import Batch, Repository
from streams.batching import lingering_batches
from streams.handoff import hand_over_directly
from streams.processor import Decoded, Record, dead_letter, decode_all, process
from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold_all
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState, EvidenceRecord, evolve
from svmon.schemas import encode_event, now_utc, to_jsonable
from svmon.settings import BATCH_WRITERS, Settings

log = logging.getLogger(__name__)
R = TypeVar("R")
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError)
# records one poll hands to the agent, in batches (see faust_app)
MAX_POLL_BATCHES = 2
# the events that name a piece of evidence (the fold reads it, or checks its id is new)
EVIDENCE_EVENTS = (ev.EvidenceSubmitted, ev.EvidenceVerified, ev.EvidenceRejected,
                   ev.EvidenceRetracted)
def backoff(attempt: int) -> float:
    """Seconds to wait before retrying the database: 0.4 s doubling, at most 30 s."""
    return min(30.0, 0.2 * 2 ** attempt)


REWIND_AGAIN = 10.0  # seconds before a rewind whose first record has not come is repeated
STUCK_EXIT = 70  # the worker's exit status when a rebalance never finished (restart it)


class StateStore(Protocol):
    def get(self, contract_id: str) -> ContractState | None: ...
    def put(self, contract_id: str, state: ContractState) -> None: ...
    def drop(self, contract_ids: Iterable[str]) -> None: ...


class Sinks(Protocol):
    async def dead_letter(self, record: dict[str, Any]) -> None: ...
    async def notice(self, contract_id: str, body: str) -> None: ...
    async def tick(self, event: ev.ClockTicked) -> None: ...


class LocalStore:
    """The folded state of the contracts this worker owns, in its own memory, without
    their evidence (:meth:`Pipeline.handle` reads what a batch needs of it).

    A cache of the journal's fold, never the record: the first time a contract is met
    after an assignment its version is compared with the database's, and its journal is
    folded again when the database is ahead (:meth:`Pipeline.catch_up`); the states of
    partitions that moved to another worker are dropped. A Faust table with a changelog
    did this job before; it wrote every touched contract's whole state (all of its
    evidence) to the broker once a batch, which cost as much CPU as the batch's SQL, and
    on a broker without compaction (the embedded one) grew for ever.
    """

    def __init__(self) -> None:
        self.states: dict[str, ContractState] = {}

    def get(self, contract_id: str) -> ContractState | None:
        return self.states.get(contract_id)

    def put(self, contract_id: str, state: ContractState) -> None:
        self.states[contract_id] = state

    def drop(self, contract_ids: Iterable[str]) -> None:
        for cid in contract_ids:
            self.states.pop(cid, None)


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


class Pipeline:
    """The agent's work, separated from Faust wiring so tests can drive it directly."""

    # May the agent send the next batch before this one is committed? Only where
    # batches are done one at a time in the order sent (the writer process); here a
    # second ``handle`` would run beside the first.
    overlap = False

    def __init__(self, settings: Settings, repo: Repository, store: StateStore,
                 sinks: Sinks) -> None:
        self.settings, self.repo, self.store, self.sinks = settings, repo, store, sinks
        self.checked: set[str] = set()  # contracts compared with the database since assignment
        self.partition_of: dict[str, int] = {}  # contract -> the partition its events come on
        self.rebuilt: set[str] = set()  # folded again from the journal: write all their rows
        self.processed = 0
        self.next_offset: dict[int, int] = {}  # events partition -> next offset to apply
        self.rewinding: dict[int, tuple[int, float]] = {}  # partition -> (from, when)
        self.revoked_at: float | None = None  # loop time of a rebalance not finished yet

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    async def _retrying(self, fn: Callable[..., R], *args: Any) -> R:
        """A read that waits out a database outage (with backoff) instead of failing."""
        attempt = 0
        while True:
            try:
                return await self._run(fn, *args)
            except TRANSIENT as err:
                attempt += 1
                delay = backoff(attempt)
                log.warning("database unavailable (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)

    def forget(self) -> None:
        """After a rebalance, check each contract against the database again, and learn
        again where each partition stands."""
        self.checked.clear()
        self.next_offset.clear()
        self.rewinding.clear()

    async def resume_points(self, committed: dict[Any, int | None]) -> dict[Any, int]:
        """Where each newly assigned partition of the events topic must be read from.

        The broker's committed offset alone is not safe to resume from:
        - aiokafka seeks only to a committed offset above 0; a partition with none
          keeps the fetch position it had, and the records Faust had buffered but not
          processed are dropped at the rebalance, so a worker that gets such a
          partition back would skip them;
        - Faust can commit past records it never delivered (gaps in its ack list).
        The database knows what was applied (``position``). So: from the start of the
        log when either side knows nothing (a new partition, or a broker that lost
        its memory and restarted its offsets), else from the earlier of the two. Reading
        again is harmless: the event-id gate drops what is already journalled.
        """
        applied = await self._retrying(self.repo.positions, self.settings.app_id,
                                       self.settings.events_topic)
        self.drop_unowned({tp.partition for tp in committed
                           if tp.topic == self.settings.events_topic})
        self.revoked_at = None  # assigned again: the rebalance finished
        out: dict[Any, int] = {}
        for tp, offset in committed.items():
            if tp.topic != self.settings.events_topic:
                continue
            done = applied.get(tp.partition)
            out[tp] = 0 if done is None or offset is None or offset < 0 \
                else min(offset, done + 1)
            self.next_offset[tp.partition] = out[tp]
        return out

    def drop_unowned(self, owned: set[int]) -> None:
        """Forget the contracts of partitions this worker no longer owns: another worker
        folds them now."""
        gone = [c for c, p in self.partition_of.items() if p not in owned]
        self.store.drop(gone)
        self.checked.difference_update(gone)
        for c in gone:
            del self.partition_of[c]

    async def follow_on(self, records: list[Record], owned: set[int] | None
                        ) -> tuple[list[Record], dict[int, int]]:
        """The records of a batch that may be applied, and the partitions to read again.

        A partition's records must start at the next offset this worker has to apply
        and run without holes. Faust can deliver a batch that does not: records it had
        buffered are dropped at a rebalance while the fetch position moves on, and
        records of partitions already revoked can still arrive. Such records are not
        applied and not acknowledged; a partition with a hole is read again from the
        hole (so a skipped record is never lost). ``owned`` is this worker's current
        assignment (None: do not check ownership).

        After a rewind, records still in flight from beyond the hole are dropped
        without seeking again, until the hole's record arrives or ``REWIND_AGAIN``
        seconds pass. A hole is never skipped: the events topic keeps its whole history
        (``retention.ms=-1``), so a record that does not come is one to wait for.
        """
        by_partition: dict[int, list[Record]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(r)
        unknown = [p for p in by_partition if p not in self.next_offset]
        if unknown:
            applied = await self._retrying(self.repo.positions, self.settings.app_id,
                                           self.settings.events_topic)
            for p in unknown:
                self.next_offset[p] = applied.get(p, -1) + 1
        keep: list[Record] = []
        rewind: dict[int, int] = {}
        now = asyncio.get_running_loop().time()
        for p, rs in by_partition.items():
            if owned is not None and p not in owned:
                log.info("skipping %d records of partition %s, no longer assigned here",
                         len(rs), p)
                continue
            expected = self.next_offset[p]
            run = []
            for r in sorted(rs, key=lambda r: r.offset):
                if r.offset > expected:
                    break
                run.append(r)
                expected = max(expected, r.offset + 1)
            keep.extend(run)
            if len(run) == len(rs):
                self.rewinding.pop(p, None)
                continue
            since = self.rewinding.get(p)
            if since is not None and since[0] == expected and not run \
                    and now - since[1] < REWIND_AGAIN:
                continue  # records from before the rewind, still arriving: drop them
            log.warning("partition %s: offset %s is next but %s came; reading again from %s",
                        p, expected, min(r.offset for r in rs if r.offset > expected),
                        expected)
            self.rewinding[p] = (expected, now)
            rewind[p] = expected
        return keep, rewind

    def applied(self, records: list[Record]) -> None:
        """Note the records a committed batch held (the next offsets to expect)."""
        for r in records:
            if r.offset + 1 > self.next_offset.get(r.partition, 0):
                self.next_offset[r.partition] = r.offset + 1

    async def catch_up(self, contract_ids: Iterable[str]) -> None:
        """Make the cached state at least as new as the database's for these contracts.

        The cache is empty after a restart and can be stale after a rebalance (another
        worker folded the contract meanwhile); the journal in the database is then
        folded again with the same fold.
        """
        unchecked = [c for c in contract_ids if c not in self.checked]
        if not unchecked:
            return
        versions = await self._run(self.repo.state_versions, unchecked)
        for cid in unchecked:
            have = self.store.get(cid)
            want = versions.get(cid, 0)
            if want != (have.version if have else 0):  # behind, or ahead of a restored DB
                states, _ = await self._run(self._rebuild, cid)
                got = states[cid].version
                if got != want:  # the fold and the database disagree: stop, loudly
                    raise RuntimeError(f"rebuilding {cid} from the journal reached version "
                                       f"{got}, but the database says {want}")
                self.store.put(cid, states[cid])
                self.rebuilt.add(cid)
                log.info("rebuilt %s from the journal (version %s)", cid, got)
            self.checked.add(cid)

    def _with_evidence(self, evidence: dict[str, dict[str, EvidenceRecord]],
                       contract_id: str) -> ContractState | None:
        """A contract's cached state with the evidence its batch names, as the database
        holds it.

        The cache keeps no evidence: each piece stayed in memory for the contract's
        life (about 260 bytes; a worker grew by 15.7 MB a minute at 1,000 events/s), and
        the fold only needs the pieces its events name. The database's rows are as new
        as the state: both are written by one transaction, and :meth:`catch_up` has
        brought the state to the database's version. A state folded again from the
        journal has all of its evidence, and its batch writes every row of it again
        (:meth:`Batch.rewrite`), so a row the database lost is restored.
        """
        state = self.store.get(contract_id)
        named = evidence.get(contract_id)
        if state is None or not named:
            return state
        return evolve(state, evidence={**named, **state.evidence})

    def _rebuild(self, contract_id: str) -> tuple[dict[str, ContractState], list[ev.Derived]]:
        return fold_all(self.repo.journal_events(contract_id), self.repo.catalogue)

    def submit(self, records: list[Record]) -> asyncio.Future[Batch]:
        """:meth:`handle` as a task (the agent's way in: see ``overlap``)."""
        return asyncio.ensure_future(self.handle(records))

    async def handle(self, records: list[Record]) -> Batch:
        """Process and durably write one batch; returns only once it is committed.

        A database that is unreachable is retried with backoff (nothing is acknowledged
        meanwhile); a batch the database refuses is applied record by record, and a
        record it still refuses is dead-lettered.
        """
        # decode and fold in the executor, like the database work: a batch of CPU work on
        # the event loop made Faust's own timers (commits, fetching) run seconds late
        decoded = await self._run(decode_all, records)
        for r, e in decoded:
            if not isinstance(e, InvalidInput):
                self.partition_of[e.contract_id] = r.partition
        attempt = 0
        while True:
            try:
                batch = await self._handle_once(decoded)
                break
            except TRANSIENT as err:
                attempt += 1
                delay = backoff(attempt)
                log.warning("database unavailable (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
            except SQLAlchemyError:
                log.exception("the database refused a batch; applying it record by record")
                batch = await self._handle_singly(decoded)
                break
        self.processed += len(records)
        return batch

    async def _handle_once(self, decoded: list[Decoded]) -> Batch:
        keys = [key_of(e) for _, e in decoded if not isinstance(e, InvalidInput)]
        contracts = {k[0] for k in keys}
        named = [(e.contract_id, e.evidence_id) for _, e in decoded
                 if isinstance(e, EVIDENCE_EVENTS)]
        try:
            gate, evidence = await self._run(self.repo.before_batch, keys, named)
            # An event journalled already may be one this cache never folded (a write
            # that committed but reported an error; another worker that had the
            # partition): compare those contracts with the database again.
            self.checked.difference_update(c for c, _ in gate.known())
            await self.catch_up(contracts)
            batch = await self._run(partial(process, decoded,
                                            partial(self._with_evidence, evidence),
                                            self.repo.catalogue, self.settings.app_id,
                                            gate=gate))
            for cid in self.rebuilt & batch.states.keys():
                batch.rewrite(cid)  # every row from the rebuilt state (heals a lost row)
            await self._run(self.repo.apply_batch, batch)
        except BaseException:
            # whether the transaction committed is not known: check these contracts
            # against the database before folding any of them again
            self.checked.difference_update(contracts)
            raise
        self.rebuilt.difference_update(batch.states)
        for cid in contracts:  # folded, or folded again from the journal by catch_up
            state = batch.states.get(cid) or self.store.get(cid)
            if state is not None:
                self.store.put(cid, evolve(state, evidence={}) if state.evidence else state)
        for dl in batch.dead_letters:
            log.warning("dead letter %s/%s@%s: %s", dl["topic"], dl["partition"], dl["offset"],
                        dl["reason"])
            await self.sinks.dead_letter(dl)
        return batch

    async def _handle_singly(self, decoded: list[Decoded]) -> Batch:
        merged = Batch(consumer=self.settings.app_id)
        for r, e in decoded:
            while True:
                try:
                    b = await self._handle_once([(r, e)])
                    break
                except TRANSIENT as err:
                    log.warning("database unavailable (%s); retrying", err)
                    await asyncio.sleep(1.0)
                except SQLAlchemyError as err:
                    bad = InvalidInput("message", "an event the database can store", str(err),
                                       contract_id=getattr(e, "contract_id", None),
                                       event_id=getattr(e, "event_id", None))
                    b = Batch(consumer=self.settings.app_id,
                              dead_letters=[dead_letter(r, bad, now_utc())])
                    if bad.contract_id and bad.event_id:
                        b.settled.append((bad.contract_id, bad.event_id, "refused", str(bad)))
                    b.advance(r.topic, r.partition, r.offset)
                    await self._run(self.repo.apply_batch, b)
                    await self.sinks.dead_letter(b.dead_letters[0])
                    break
            merged.states.update(b.states)
            merged.derived.extend(b.derived)
            merged.dead_letters.extend(b.dead_letters)
            merged.journal.extend(b.journal)
        return merged

    async def relay_notices(self) -> int:
        """Outbox relay: derived facts committed in the database go to the alerts topic."""
        pending = await self._run(self.repo.unpublished_notices)
        if not pending:
            return 0
        # mark published only once the broker has acknowledged every record
        await asyncio.gather(*[self.sinks.notice(cid, body) for _, cid, body in pending])
        await self._run(self.repo.mark_published, [d for d, _, _ in pending])
        return len(pending)

    async def tick(self, at: datetime | None = None) -> int:
        """Put the time on every contract's log (the live clock)."""
        at = at or datetime.now(UTC)
        contract_ids = await self._run(self.repo.contract_ids)
        for cid in contract_ids:
            await self.sinks.tick(ev.ClockTicked(  # ids are per contract: the time suffices
                event_id=f"tick:{at.isoformat()}", contract_id=cid, occurred_at=at, at=at))
        return len(contract_ids)


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


def shorten_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's consumer ask the broker to hold a fetch at most ``max_wait_ms``.

    faust-streaming 0.15's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and the
    embedded broker holds fetches that long when little data is waiting, so at a steady
    trickle every event waited about a second before the worker saw it
    (bench/alert_latency.py). The driver's reference to aiokafka is replaced by a copy
    whose consumer class caps the wait; nothing else in aiokafka changes.
    """
    import types

    from faust.transport.drivers import aiokafka as driver

    real = driver.aiokafka
    base = getattr(real, "_svmon_real_consumer", real.AIOKafkaConsumer)

    class Consumer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = min(kwargs.get("fetch_max_wait_ms", 500),
                                              max_wait_ms)
            super().__init__(*args, **kwargs)

    shim = types.ModuleType(real.__name__)
    shim.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
    shim.AIOKafkaConsumer = Consumer  # type: ignore[attr-defined]
    shim._svmon_real_consumer = base  # type: ignore[attr-defined]
    driver.aiokafka = shim  # type: ignore[attr-defined]


def resume_paused_partitions_promptly(within: float = 0.1) -> None:
    """Make Faust ask aiokafka for records at most ``within`` seconds at a time.

    When the agent falls behind, Faust stops asking for a partition whose stream
    buffer is full, and asks again once it has drained to half. But its fetcher asks
    aiokafka for the other partitions' records with a one-second wait
    (``Consumer._drain_messages``, faust-streaming 0.15), and that wait is not cut
    short when the paused partition is resumed: once the other partitions had
    reached the end of what was published, the resumed one sat buffered in aiokafka
    for up to a second. In a catch-up with the batch writer in its own process this
    happened every two to three seconds (bench/pipeline.py: 0.2-0.7 s without
    records each time, 2.0 s of an 8.6 s run; seen in aiokafka's fetcher log as
    empty fetches of the finished partitions while the resumed partition's records
    stayed buffered). With a shorter wait the resumed partition is asked for within
    ``within`` seconds; an idle worker asks ten times a second instead of once.
    """
    from faust.transport.consumer import Consumer

    real = getattr(Consumer, "_svmon_real_wait", Consumer._wait_next_records)

    async def wait_next_records(self: Any, timeout: float) -> Any:
        return await real(self, min(timeout, within))

    Consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    Consumer._svmon_real_wait = real  # type: ignore[attr-defined]


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
    real = consumer.seek_to_committed

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

    consumer.seek_to_committed = seek_to_applied


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def fewer_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (what ``MALLOC_ARENA_MAX=2`` does).

    glibc gives threads that allocate their own arenas, up to eight per core, and each
    keeps the memory freed in it. The worker's fold and writes run on executor
    threads and build large short-lived dicts there, so the freed space was spread
    over many arenas: after 1M events (bench/memory.py) the worker's RSS was 501 MB
    with the default and 468 MB with two arenas, for the same state. Returns whether
    the limit was set (False where the C library is not glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


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
              **overrides: Any) -> tuple[faust.App, Pipeline]:
    """The worker's Faust app and the pipeline its agent drives.

    ``writer`` says where batches are folded and written: ``"thread"`` on executor
    threads of this process (with ``store`` as the state cache; what tests that wrap the
    repository or the store need), ``"process"`` in a process of its own
    (:mod:`streams.writer`: 1.4-2 × the throughput on two cores; it builds its own
    repository from ``settings``, so ``repo`` must be the database they name).
    """
    if writer not in BATCH_WRITERS:
        raise ValueError(f"writer must be one of {BATCH_WRITERS}, not {writer!r}")
    if writer == "process" and store is not None:
        raise ValueError("the process writer keeps its own state cache: pass no store")
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
        from streams.writer import SplitPipeline

        pipeline = SplitPipeline(settings, repo, sinks)
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
