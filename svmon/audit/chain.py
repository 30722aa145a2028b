"""A hash chain per contract over the journal: alteration, deletion and reordering show.

Each journal row carries its position in its contract's chain (``chain_seq``, 1, 2, …),
the previous row's hash and its own hash over everything that row asserts: contract,
position, previous hash, event id, when it was recorded, who asserted it and the event
exactly as received. A chain per contract (not one global chain) because a contract's
events are ordered on one partition and written by one worker: no global lock is
needed, and each contract verifies on its own. The chain heads (length and last hash
per contract) are kept beside the journal so that a deleted tail shows too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


def link_hash(prev_hash: str, contract_id: str, chain_seq: int, event_id: str,
              recorded_at: datetime, actor: str, payload: str) -> str:
    parts = [part.encode() for part in (
        prev_hash, contract_id, str(chain_seq), event_id,
        recorded_at.astimezone(UTC).isoformat(timespec="microseconds"), actor, payload)]
    # each part length-prefixed: no ambiguity at the joins
    return hashlib.sha256(b"".join(len(d).to_bytes(8, "big") + d for d in parts)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    seq: int  # global journal order
    contract_id: str
    chain_seq: int
    event_id: str
    recorded_at: datetime
    actor: str
    payload: str
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return link_hash(self.prev_hash, self.contract_id, self.chain_seq, self.event_id,
                         self.recorded_at, self.actor, self.payload)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    contract_id: str
    chain_seq: int
    event_id: str
    problem: str  # altered | broken-link | missing | reordered | truncated | unknown-head

    def __str__(self) -> str:
        return (f"{self.contract_id} #{self.chain_seq} ({self.event_id or 'no event'}): "
                f"{self.problem}")


def verify_chains(rows: Iterable[ChainRow],
                  heads: Mapping[str, tuple[int, str]]) -> list[ChainBreak]:
    """Every break in the chains, naming the contract, position and event.

    ``rows`` in global journal order; ``heads`` maps contract id to (length, last hash).
    """
    breaks: list[ChainBreak] = []
    last: dict[str, ChainRow] = {}
    for r in rows:
        prev = last.get(r.contract_id)
        want_seq = prev.chain_seq + 1 if prev else 1
        if r.chain_seq < want_seq:
            breaks.append(ChainBreak(r.contract_id, r.chain_seq, r.event_id, "reordered"))
        elif r.chain_seq > want_seq:
            for missing in range(want_seq, r.chain_seq):
                breaks.append(ChainBreak(r.contract_id, missing, "", "missing"))
        # the link can be checked where the previous row is the one just read
        if r.chain_seq == 1:
            expected_prev: str | None = GENESIS
        elif prev is not None and r.chain_seq == prev.chain_seq + 1:
            expected_prev = prev.hash
        else:
            expected_prev = None
        if r.expected_hash() != r.hash:
            breaks.append(ChainBreak(r.contract_id, r.chain_seq, r.event_id, "altered"))
        elif expected_prev is not None and r.prev_hash != expected_prev:
            breaks.append(ChainBreak(r.contract_id, r.chain_seq, r.event_id, "broken-link"))
        if prev is None or r.chain_seq > prev.chain_seq:
            last[r.contract_id] = r
    for cid, (length, head) in sorted(heads.items()):
        tail = last.get(cid)
        if tail is None or tail.chain_seq < length:
            for missing in range((tail.chain_seq if tail else 0) + 1, length + 1):
                breaks.append(ChainBreak(cid, missing, "", "truncated"))
        elif tail.hash != head or tail.chain_seq != length:
            breaks.append(ChainBreak(cid, tail.chain_seq, tail.event_id, "unknown-head"))
    for cid in sorted(set(last) - set(heads)):
        breaks.append(ChainBreak(cid, last[cid].chain_seq, last[cid].event_id, "unknown-head"))
    return breaks
