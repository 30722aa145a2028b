"""The Faust app: one agent folds contract events, two timers keep time and relay alerts.

Built by :func:`build_app` from settings, a repository and a catalogue; nothing here
connects at import time. The agent reads batches (``take_events``: offsets are
acknowledged only after the batch's database transaction commits, so a crash means
redelivery, never loss), brings each contract's state up to the database's version
when it first meets it, folds, writes the batch, then updates the Faust table.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import faust
from faust.serializers import codecs

from models.repository import Batch, Repository
from streams.processor import Record, process
from svmon.core import events as ev
from svmon.core.fold import fold_all
from svmon.core.state import ContractState, state_from_dict, state_to_dict
from svmon.schemas import encode_event, to_jsonable
from svmon.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")


class StateCodec(codecs.Codec):
    """Contract state in the Faust table and its changelog: JSON, never pickle."""

    def _dumps(self, obj: Any) -> bytes:
        return json.dumps(state_to_dict(obj), separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        return state_from_dict(json.loads(s))


codecs.register("svmon-state", StateCodec())


class StateStore(Protocol):
    def get(self, contract_id: str) -> ContractState | None: ...
    def put(self, contract_id: str, state: ContractState) -> None: ...


class Sinks(Protocol):
    async def dead_letter(self, record: dict[str, Any]) -> None: ...
    async def notice(self, contract_id: str, body: str) -> None: ...
    async def tick(self, event: ev.ClockTicked) -> None: ...


class _TableStore:
    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, contract_id: str) -> ContractState | None:
        return self.table.get(contract_id)  # type: ignore[no-any-return]

    def put(self, contract_id: str, state: ContractState) -> None:
        self.table[contract_id] = state


class _TopicSinks:
    def __init__(self, dlq: Any, alerts: Any, events: Any) -> None:
        self.dlq, self.alerts, self.events = dlq, alerts, events

    async def dead_letter(self, record: dict[str, Any]) -> None:
        body = {k: to_jsonable(v) for k, v in record.items()}
        await self.dlq.send(key=record.get("key"), value=json.dumps(body).encode())

    async def notice(self, contract_id: str, body: str) -> None:
        await self.alerts.send(key=contract_id, value=body.encode())

    async def tick(self, event: ev.ClockTicked) -> None:
        await self.events.send(key=event.contract_id, value=encode_event(event))


class Pipeline:
    """The agent's work, separated from Faust wiring so tests can drive it directly."""

    def __init__(self, settings: Settings, repo: Repository, store: StateStore,
                 sinks: Sinks) -> None:
        self.settings, self.repo, self.store, self.sinks = settings, repo, store, sinks
        self.checked: set[str] = set()  # contracts compared with the database since assignment
        self.processed = 0

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    def forget(self) -> None:
        """After a rebalance, check each contract against the database again."""
        self.checked.clear()

    async def catch_up(self, contract_ids: Iterable[str]) -> None:
        """Make the table's state at least as new as the database's for these contracts.

        The table can lag the database after a crash between commit and changelog
        flush, or be empty after the embedded broker lost its memory; the journal in
        the database is then folded again with the same fold.
        """
        unchecked = [c for c in contract_ids if c not in self.checked]
        if not unchecked:
            return
        versions = await self._run(self.repo.state_versions, unchecked)
        for cid in unchecked:
            have = self.store.get(cid)
            if versions.get(cid, 0) > (have.version if have else 0):
                states, _ = await self._run(self._rebuild, cid)
                self.store.put(cid, states[cid])
                log.info("rebuilt %s from the journal (version %s)", cid, states[cid].version)
            self.checked.add(cid)

    def _rebuild(self, contract_id: str) -> tuple[dict[str, ContractState], list[ev.Derived]]:
        return fold_all(self.repo.journal_events(contract_id), self.repo.catalogue)

    async def handle(self, records: list[Record]) -> Batch:
        await self.catch_up({r.key.decode(errors="replace") for r in records if r.key})
        batch = process(records, self.store.get, self.repo.catalogue, self.settings.app_id)
        await self._run(self.repo.apply_batch, batch)
        for cid, state in batch.states.items():
            self.store.put(cid, state)
        for dl in batch.dead_letters:
            log.warning("dead letter %s/%s@%s: %s", dl["topic"], dl["partition"], dl["offset"],
                        dl["reason"])
            await self.sinks.dead_letter(dl)
        self.processed += len(records)
        return batch

    async def relay_notices(self) -> int:
        """Outbox relay: derived facts committed in the database go to the alerts topic."""
        pending = await self._run(self.repo.unpublished_notices)
        for _, contract_id, body in pending:
            await self.sinks.notice(contract_id, body)
        await self._run(self.repo.mark_published, [d for d, _, _ in pending])
        return len(pending)

    async def tick(self, at: datetime | None = None) -> int:
        """Put the time on every contract's log (the live clock)."""
        at = at or datetime.now(UTC)
        contract_ids = await self._run(self.repo.contract_ids)
        for cid in contract_ids:
            await self.sinks.tick(ev.ClockTicked(
                event_id=f"{cid}:tick:{at.isoformat()}", contract_id=cid, occurred_at=at, at=at))
        return len(contract_ids)


def faust_app(settings: Settings, **overrides: Any) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=60.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        web_enabled=False,
        **overrides,
    )


def build_app(settings: Settings, repo: Repository, *, store: StateStore | None = None,
              sinks: Sinks | None = None,
              on_batch: Callable[[Batch], Awaitable[None]] | None = None,
              **overrides: Any) -> tuple[faust.App, Pipeline]:
    app = faust_app(settings, **overrides)
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions)
    alerts_topic = app.topic(settings.alerts_topic, key_serializer="raw",
                             value_serializer="raw", partitions=settings.partitions)
    dlq_topic = app.topic(settings.dead_letter_topic, key_serializer="raw",
                          value_serializer="raw", partitions=1)
    table = app.Table("contract-state", default=None, partitions=settings.partitions,
                      use_partitioner=True)
    # Raw keys: the changelog record lands on the partition its source record came from.
    # Faust derives serializers from key_type/value_type and builds the changelog topic
    # when the table registers, so set ours and build the changelog topic again.
    table.key_serializer, table.value_serializer = "raw", "svmon-state"
    table.changelog_topic = table._new_changelog_topic()
    pipeline = Pipeline(settings, repo, store or _TableStore(table),
                        sinks or _TopicSinks(dlq_topic, alerts_topic, events_topic))

    @app.agent(events_topic, name="fold-contract-events")
    async def fold_contract_events(stream: Any) -> Any:
        async for batch_events in stream.take_events(settings.batch_size,
                                                     within=settings.batch_seconds):
            records = [Record(e.message.topic, e.message.partition, e.message.offset,
                              e.message.key, e.message.value) for e in batch_events]
            batch = await pipeline.handle(records)
            if on_batch is not None:
                await on_batch(batch)
            yield len(records)

    @app.timer(interval=settings.relay_seconds)
    async def relay() -> None:
        await pipeline.relay_notices()

    @app.timer(interval=settings.tick_seconds, on_leader=True)
    async def clock() -> None:
        await pipeline.tick()

    @app.on_partitions_revoked.connect
    async def _revoked(*_: Any, **__: Any) -> None:
        pipeline.forget()

    app.svmon_agent = fold_contract_events  # type: ignore[attr-defined]
    return app, pipeline
