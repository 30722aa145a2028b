"""Turn a batch of raw records into a :class:`~svmon.models.repository.Batch`.

No Faust here: the agent hands in plain records and a state lookup, so the same code
runs under ``agent.test_context()``, against the real broker, and in benchmarks.
Per record: decode at the edge, pass the event-id gate, fold with the core, and either
keep the result or dead-letter the record with its topic, partition, offset and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kafka.partitioner.default import murmur2

from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.errors import InvalidInput, NotYetKnown
from svmon.core.fold import fold
from svmon.core.idempotence import EventGate
from svmon.core.rules import DEFAULT_POLICY, Policy
from svmon.core.state import ContractState
from svmon.models.repository import Batch
from svmon.schemas import SCHEMA_VERSION, decode_event, now_utc

log = logging.getLogger(__name__)
RAW_KEEP = 4096  # characters of a bad message kept in its dead letter


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


Decoded = tuple[Record, ev.ContractEvent | InvalidInput]
StateLookup = Callable[[str], ContractState | None]


def contract_key(r: Record) -> str | None:
    try:
        return r.key.decode() if r.key is not None else None
    except UnicodeDecodeError:
        return None


def decode(r: Record) -> ev.ContractEvent | InvalidInput:
    """The event, or the reason it cannot be one (never raises for bad input)."""
    try:
        e = decode_event(r.value)
    except InvalidInput as err:
        return err
    key = contract_key(r)
    if key != e.contract_id:
        return InvalidInput("key", f"the contract id {e.contract_id!r} (the key keeps a "
                            "contract's events in order)", key, contract_id=e.contract_id,
                            event_id=e.event_id)
    return e


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key``: kafka-python's ``DefaultPartitioner`` (the Java
    client's murmur2, positive, modulo the count), which the inbox relay produces with;
    aiokafka's, which Faust sends the clock's ticks with, is the same."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def on_its_partition(r: Record, e: ev.ContractEvent | InvalidInput, partitions: int
                     ) -> ev.ContractEvent | InvalidInput:
    """The event, or the refusal of a record that is not on its key's partition: a
    producer with another partitioner (librdkafka's default) splits a contract's log over
    two partitions, whose events then arrive out of order."""
    if isinstance(e, InvalidInput) or r.key is None:
        return e
    want = partition_for(r.key, partitions)
    if r.partition == want:
        return e
    return InvalidInput("partition", f"partition {want} of {partitions} (murmur2 of the key "
                        f"{e.contract_id!r}; only the system writes this topic, through the "
                        "intake)", f"partition {r.partition}",
                        contract_id=e.contract_id, event_id=e.event_id)


def decode_all(records: Sequence[Record], partitions: int | None = None) -> list[Decoded]:
    """Each record decoded; with ``partitions``, a record on the wrong one is refused."""
    if partitions is None:
        return [(r, decode(r)) for r in records]
    return [(r, on_its_partition(r, decode(r), partitions)) for r in records]


def process(records: Sequence[Record] | Sequence[Decoded], lookup: StateLookup,
            catalogue: Catalogue, consumer: str, policy: Policy = DEFAULT_POLICY,
            recorded_at: datetime | None = None, gate: EventGate | None = None) -> Batch:
    """Fold a batch; ``gate`` says which event ids were accepted or refused before."""
    batch = Batch(consumer=consumer)
    recorded_at = recorded_at or now_utc()
    gate = gate or EventGate()
    items = [x if isinstance(x, tuple) else (x, decode(x)) for x in records]
    for r, e in items:
        batch.advance(r.topic, r.partition, r.offset)
        if isinstance(e, InvalidInput):
            batch.dead_letters.append(dead_letter(r, e, recorded_at))
            continue
        try:
            if gate.check(e) == "duplicate":
                batch.settled.append((e.contract_id, e.event_id, "accepted", "", e.actor))
                continue
            state = batch.states.get(e.contract_id)
            if state is None:
                prior = lookup(e.contract_id)
                batch.before.setdefault(e.contract_id, prior)
                state = prior or ContractState(e.contract_id)
            new, derived = fold(state, e, catalogue, policy)
        except InvalidInput as err:
            gate.refused(e, err)
            batch.dead_letters.append(dead_letter(r, err, recorded_at))
            if not isinstance(err, NotYetKnown):  # else the relay offers it again later
                batch.settled.append((e.contract_id, e.event_id, "refused", str(err), e.actor))
            continue
        except Exception as err:  # a defect must cost one record, never the batch
            log.exception("internal error folding %s/%s@%s", r.topic, r.partition, r.offset)
            gate.refused(e)
            batch.dead_letters.append(dead_letter(r, InvalidInput(
                "message", "an event the monitor can process (internal error: "
                f"{type(err).__name__})", str(err), contract_id=e.contract_id,
                event_id=e.event_id), recorded_at))
            batch.settled.append((e.contract_id, e.event_id, "refused", "internal error",
                                  e.actor))
            continue
        gate.accepted(e)
        batch.settled.append((e.contract_id, e.event_id, "accepted", "", e.actor))
        if new.milestones is not state.milestones:  # copy-on-write: a new dict = a change
            batch.milestones_changed.add(e.contract_id)
        batch.states[e.contract_id] = new
        batch.derived.extend(derived)
        batch.journal.append(journal_row(r, e, recorded_at))
        if isinstance(e, ev.EvidenceSubmitted | ev.EvidenceVerified | ev.EvidenceRejected
                      | ev.EvidenceRetracted):
            batch.touch_evidence(e.contract_id, e.evidence_id)
    return batch


def journal_row(r: Record, e: ev.ContractEvent, recorded_at: datetime) -> dict[str, object]:
    return dict(event_id=e.event_id, contract_id=e.contract_id, type=type(e).__name__,
                schema_version=SCHEMA_VERSION, occurred_at=e.occurred_at,
                recorded_at=recorded_at, actor=e.actor, payload=r.value.decode(),
                topic=r.topic, partition=r.partition, offset=r.offset)


def _storable(text: str | None) -> str | None:
    """Text any database keeps: PostgreSQL refuses NUL in text columns, and a poison
    record full of them must still be dead-lettered, not crash the worker."""
    return None if text is None else text.replace("\x00", "\ufffd")


def dead_letter(r: Record, err: InvalidInput, at: datetime) -> dict[str, object]:
    import hashlib

    raw = r.value[: RAW_KEEP * 4].decode("utf-8", errors="replace")[:RAW_KEEP]
    return dict(topic=r.topic, partition=r.partition, offset=r.offset,
                raw_sha256=hashlib.sha256(r.value).hexdigest(), key=_storable(contract_key(r)),
                contract_id=_storable(err.contract_id), event_id=_storable(err.event_id),
                error=type(err).__name__, field=_storable(err.field),
                reason=_storable(str(err)), raw=_storable(raw), at=at)
