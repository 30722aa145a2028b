"""The journal: every event as received, each linked into its contract's hash chain.

Rows are only ever appended, within the batch's transaction (``Repository.apply_batch``);
the event-id gate has already let through only events not journalled yet, and the
journal's unique key (contract, event id) refuses a batch applied twice as it is. The
chain's head per contract is kept beside it so appending never reads the whole chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from svmon.audit.chain import GENESIS, ChainRow, link_hash
from svmon.core import events as ev
from svmon.models.statements import T, Writes
from svmon.models.tables import ChainHead, JournalEntry
from svmon.schemas import decode_event


class JournalStore:
    def __init__(self, engine: Engine, writes: Writes) -> None:
        self.engine = engine
        self._writes = writes

    def append(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append the events not journalled yet, each linked into its contract's chain."""
        if not rows:
            return
        j, h = T(JournalEntry), T(ChainHead)
        contracts = sorted({r["contract_id"] for r in rows})
        heads = {r.contract_id: (r.length, r.head_hash) for r in conn.execute(
            select(h).where(h.c.contract_id.in_(contracts)))}
        new = []
        for r in rows:
            length, prev = heads.get(r["contract_id"], (0, GENESIS))
            n = length + 1
            digest = link_hash(prev, r["contract_id"], n, r["event_id"], r["recorded_at"],
                               r["actor"], r["payload"])
            new.append({**r, "chain_seq": n, "prev_hash": prev, "hash": digest})
            heads[r["contract_id"]] = (n, digest)
        if new:
            self._writes.execute(conn, ("insert", j.name), j.insert, new)
            self._writes.upsert(conn, h, [dict(contract_id=c, length=n, head_hash=d)
                                          for c, (n, d) in sorted(heads.items())],
                                ("contract_id",))

    def events(self, contract_id: str | None = None,
               until: datetime | None = None) -> Iterator[ev.ContractEvent]:
        """The journal in the order events were first applied, decoded to core events."""
        j = T(JournalEntry)
        q = select(j.c.payload).order_by(j.c.seq)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        if until is not None:
            q = q.where(j.c.recorded_at <= until)
        with self.engine.connect() as conn:
            for (payload,) in conn.execution_options(yield_per=2000).execute(q):
                yield decode_event(payload)

    def chain_rows(self, contract_id: str | None = None) -> Iterator[ChainRow]:
        j = T(JournalEntry)
        q = select(j.c.seq, j.c.contract_id, j.c.chain_seq, j.c.event_id, j.c.recorded_at,
                   j.c.actor, j.c.payload, j.c.prev_hash, j.c.hash).order_by(j.c.seq)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=2000).execute(q):
                yield ChainRow(*r)

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        h = T(ChainHead)
        with self.engine.connect() as conn:
            return {r.contract_id: (r.length, r.head_hash) for r in conn.execute(select(h))}

    def rows(self, event_id: str | None = None, contract_id: str | None = None,
             last: int | None = None) -> list[dict[str, Any]]:
        """Journal rows as stored (audit and diagnostics), in order; optionally one event
        id, one contract, or only the ``last`` rows."""
        j = T(JournalEntry)
        q = select(j).order_by(j.c.seq.desc() if last else j.c.seq)
        if event_id is not None:
            q = q.where(j.c.event_id == event_id)
        if contract_id is not None:
            q = q.where(j.c.contract_id == contract_id)
        if last:
            q = q.limit(last)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        return rows[::-1] if last else rows
