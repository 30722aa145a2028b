"""Bad input for fault tests and benchmarks: poison records and replayed duplicates
mixed into a good log, as a careless or hostile client would send them."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from svmon.core import events as ev
from svmon.schemas import encode_event

Message = tuple[str | None, bytes]  # (key, value) as put on the topic


def poison(events: Sequence[ev.ContractEvent], rng: random.Random,
           n: int) -> list[tuple[str | None, bytes, str]]:
    """``n`` bad records, a mix of every kind: (key, value, the field to blame): not
    JSON (with NUL bytes), over the 64 KiB limit, a wrong schema version, a NaN
    quantity, and a key that is not the event's contract."""
    evidence = [e for e in events if isinstance(e, ev.EvidenceSubmitted)]
    out: list[tuple[str | None, bytes, str]] = []
    for i in range(n):
        good = rng.choice(evidence)
        body = json.loads(encode_event(good))
        body["event_id"] = body["data"]["evidence_id"] = f"poison-{i}"
        kind = i % 5
        if kind == 0:
            out.append((good.contract_id, b"\x00{not json" + bytes([i % 256]), "message"))
        elif kind == 1:
            body["data"]["description"] = "x" * 70_000
            out.append((good.contract_id, json.dumps(body).encode(), "message"))
        elif kind == 2:
            body["schema_version"] = 99
            out.append((good.contract_id, json.dumps(body).encode(), "schema_version"))
        elif kind == 3:
            body["data"]["quantity"] = "NaN"
            out.append((good.contract_id, json.dumps(body).encode(), "data.quantity"))
        else:
            out.append((good.contract_id + "-x", json.dumps(body).encode(), "key"))
    return out


def mixed(events: Sequence[ev.ContractEvent], rng: random.Random, poison_share: float,
          duplicate_share: float) -> tuple[list[Message], list[tuple[str | None, bytes, str]]]:
    """The good log with duplicates (an event sent again up to 500 records later, as a
    retrying client would) and poison records at random places; returns the messages
    and the poison."""
    bad = poison(events, rng, int(len(events) * poison_share))
    messages: list[Message] = [(e.contract_id, encode_event(e)) for e in events]
    for i in sorted(rng.sample(range(len(events)), int(len(events) * duplicate_share)),
                    reverse=True):
        messages.insert(min(len(messages), i + rng.randint(1, 500)), messages[i])
    for key, value, _ in bad:
        messages.insert(rng.randrange(len(messages)), (key, value))
    return messages, bad
