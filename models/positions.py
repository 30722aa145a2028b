"""How far each consumer has got: its partition positions, the records it refused (dead
letters) and the inbox rows its batches decided.

All three are written in the batch's transaction, so the position a worker resumes
from, the refusals and the receipts a client reads agree with the journal. Positions
record the last offset of the latest batch applied per partition: after a redelivery
they can be lower than before, which only makes a worker read again (it resumes from the
earlier of this and the broker's committed offset).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.engine import Connection

from svmon.models.statements import T, Writes
from svmon.models.tables import DeadLetterRow, InboxRow, PositionRow


class PositionStore:
    def __init__(self, engine: Engine, writes: Writes) -> None:
        self.engine = engine
        self._writes = writes

    def write(self, conn: Connection, consumer: str,
              positions: Mapping[tuple[str, int], int], now: datetime) -> None:
        self._writes.upsert(conn, T(PositionRow), [
            dict(consumer=consumer, topic=t, partition=p, offset=o, updated_at=now)
            for (t, p), o in sorted(positions.items())
        ], ("consumer", "topic", "partition"))

    def dead_letters(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Refused records, once each (a record refused again is the same row)."""
        self._writes.insert_ignore(conn, T(DeadLetterRow), rows,
                                   ("topic", "partition", "offset", "raw_sha256"))

    def settle_inbox(self, conn: Connection, settled: Sequence[tuple[str, ...]],
                     now: datetime) -> None:
        """Mark received events decided, in the transaction that journals or refuses them
        (events that came straight onto the topic have no inbox row: nothing matches).
        A decision names its event's actor when it knows it: an event forged under a
        received event's id by someone else (straight onto the topic) must not settle
        the rightful one (issue 21)."""
        if not settled:
            return
        t = T(InboxRow)
        contracts = sorted({s[0] for s in settled})
        waiting = {(r.contract_id, r.event_id): r.submitted_by for r in conn.execute(
            select(t.c.contract_id, t.c.event_id, t.c.submitted_by).where(  # one read a
                t.c.contract_id.in_(contracts), t.c.settled_at.is_(None)))}  # batch
        rows = [dict(c=s[0], e=s[1], o=s[2], r=s[3]) for s in settled
                if (s[0], s[1]) in waiting and (len(s) < 5 or waiting[s[0], s[1]] == s[4])]
        if rows:
            stmt = update(t).where(t.c.contract_id == bindparam("c"),
                                   t.c.event_id == bindparam("e"), t.c.settled_at.is_(None)) \
                .values(settled_at=now, outcome=bindparam("o"), reason=bindparam("r"))
            conn.execute(stmt, rows)

    def positions(self, consumer: str, topic: str) -> dict[int, int]:
        """partition -> last offset written to the database by ``consumer``."""
        p = T(PositionRow)
        with self.engine.connect() as conn:
            return {r.partition: r.offset for r in conn.execute(
                select(p.c.partition, p.c.offset).where(p.c.consumer == consumer,
                                                        p.c.topic == topic))}
