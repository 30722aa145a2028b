"""Helpers shared by the integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState
from svmon.models.ingest import IngestStore
from svmon.models.repository import Repository
from svmon.schemas import encode_event
from svmon.streams.processor import Record, decode_all, process


def feed(repo: Repository, events: Sequence[ev.ContractEvent], batch: int = 200,
         start: datetime | None = None,
         store: dict[str, ContractState] | None = None) -> list[datetime]:
    """Apply events in batches through the live code path minus Kafka (processor, event-id
    gate, repository); returns each batch's recorded time."""
    store = {} if store is None else store
    times = []
    clock = start or datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(0, len(events), batch):
        records = [Record("t", 0, i + k, e.contract_id.encode(), encode_event(e))
                   for k, e in enumerate(events[i:i + batch])]
        decoded = decode_all(records)
        gate = repo.seed_gate([key_of(e) for _, e in decoded if not isinstance(e, InvalidInput)])
        clock += timedelta(seconds=10)
        b = process(decoded, store.get, repo.catalogue, "test", recorded_at=clock, gate=gate)
        repo.apply_batch(b)
        store.update(b.states)
        times.append(clock)
    return times


def drain_inbox(repo: Repository, inbox: IngestStore,
                store: dict[str, ContractState] | None = None, copies: int = 1) -> int:
    """Deliver every unsettled inbox event to the worker's code path ``copies`` times
    (what relay + broker + worker do, minus Kafka); returns the records processed."""
    rows = inbox.due(datetime(2200, 1, 1, tzinfo=UTC), limit=100_000)
    store = {} if store is None else store
    records = [Record("t", 0, n, cid.encode(), payload.encode())
               for n, (_, cid, payload, _) in enumerate(rows * copies)]
    for i in range(0, len(records), 200):
        decoded = decode_all(records[i:i + 200])
        gate = repo.seed_gate([key_of(e) for _, e in decoded if not isinstance(e, InvalidInput)])
        b = process(decoded, store.get, repo.catalogue, "test", gate=gate)
        repo.apply_batch(b)
        store.update(b.states)
    return len(records)
