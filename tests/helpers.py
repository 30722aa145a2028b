"""Helpers shared by the integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from models.repository import Repository
from streams.processor import Record, decode_all, process
from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState
from svmon.schemas import encode_event


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
