"""The agent's work per batch, apart from Faust's wiring: what a batch of contract events
does to the journal, the states and the derived rows, and the offsets it leaves behind.

:class:`Pipeline` runs in the worker's process on executor threads (``writer="thread"``)
or, as a subclass, in the batch writer process (:mod:`svmon.streams.writer`); the Faust app
(:mod:`svmon.streams.app`) drives either. Nothing here imports Faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold_all
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState, EvidenceRecord, evolve
from svmon.models.engine import TRANSIENT
from svmon.models.repository import Batch, Repository
from svmon.schemas import now_utc
from svmon.settings import Settings
from svmon.streams.processor import Decoded, Record, dead_letter, decode_all, process

log = logging.getLogger(__name__)
R = TypeVar("R")
# the events that name a piece of evidence (the fold reads it, or checks its id is new)
EVIDENCE_EVENTS = (ev.EvidenceSubmitted, ev.EvidenceVerified, ev.EvidenceRejected,
                   ev.EvidenceRetracted)
def backoff(attempt: int) -> float:
    """Seconds to wait before retrying the database: 0.4 s doubling, at most 30 s."""
    return min(30.0, 0.2 * 2.0 ** attempt)


REWIND_AGAIN = 10.0  # seconds before a rewind whose first record has not come is repeated


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
        decoded = await self._run(decode_all, records, self.settings.partitions
                                  if self.settings.check_partitions else None)
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
