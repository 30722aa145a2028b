"""Many (contract id, event id) keys looked up at once, each through the unique index.

The worker asks, for every batch, which of its events were journalled or refused before
(the event-id gate) and reads the evidence its events name (it keeps no evidence in
memory between batches), and the API asks the same of every request and the review of the
evidence on each page of a supplier's submissions. SQLAlchemy's
``tuple_(contract_id, event_id).in_(keys)`` reads well but makes SQLite scan the whole
table (a row-value IN does not use the index), so each batch cost time in proportion
to the journal's length; a ``VALUES`` construct is recompiled for every batch, and a
statement per contract pays SQLAlchemy's overhead hundreds of times. Here the keys
travel as one parameter (a JSON array on SQLite, two arrays on PostgreSQL) and one
cached statement joins them to the table: 500 keys cost about 2 ms on SQLite and 9 ms
on PostgreSQL, whatever the journal's length (measured against a 40,000-event journal).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row, RowMapping

from svmon.models.tables import EvidenceRow

Key = tuple[str, str]

JOURNALLED = {
    "sqlite": text("SELECT x.contract_id, x.event_id, x.payload FROM json_each(:keys) AS k "
                   "JOIN journal AS x ON x.contract_id = json_extract(k.value, '$[0]') "
                   "AND x.event_id = json_extract(k.value, '$[1]')"),
    "postgresql": text("SELECT x.contract_id, x.event_id, x.payload "
                       "FROM unnest(CAST(:c AS text[]), CAST(:e AS text[])) AS k(c, e) "
                       "JOIN journal AS x ON x.contract_id = k.c AND x.event_id = k.e"),
}
REFUSED = {
    "sqlite": text("SELECT DISTINCT x.contract_id, x.event_id FROM json_each(:keys) AS k "
                   "JOIN dead_letter AS x ON x.contract_id = json_extract(k.value, '$[0]') "
                   "AND x.event_id = json_extract(k.value, '$[1]') "
                   "WHERE x.error = 'RejectedEvent'"),
    "postgresql": text("SELECT DISTINCT x.contract_id, x.event_id "
                       "FROM unnest(CAST(:c AS text[]), CAST(:e AS text[])) AS k(c, e) "
                       "JOIN dead_letter AS x ON x.contract_id = k.c AND x.event_id = k.e "
                       "WHERE x.error = 'RejectedEvent'"),
}
REFUSED_RAW = {
    "sqlite": text("SELECT DISTINCT x.contract_id, x.event_id, x.raw FROM json_each(:keys) AS k "
                   "JOIN dead_letter AS x ON x.contract_id = json_extract(k.value, '$[0]') "
                   "AND x.event_id = json_extract(k.value, '$[1]') "
                   "WHERE x.error = 'RejectedEvent'"),
    "postgresql": text("SELECT DISTINCT x.contract_id, x.event_id, x.raw "
                       "FROM unnest(CAST(:c AS text[]), CAST(:e AS text[])) AS k(c, e) "
                       "JOIN dead_letter AS x ON x.contract_id = k.c AND x.event_id = k.e "
                       "WHERE x.error = 'RejectedEvent'"),
}
_RECORD = ("contract_id", "evidence_id", "measure", "quantity", "period_start", "period_end",
           "status", "submitted_by", "submitted_at", "submitted_event_id", "decided_by",
           "decided_at", "reason")
_RECORD_COLUMNS = [EvidenceRow.__table__.c[n] for n in _RECORD]  # type: ignore[attr-defined]
EVIDENCE = {  # keys here are (contract id, evidence id)
    "sqlite": text("SELECT x.contract_id, x.evidence_id, x.measure, x.quantity, "
                   "x.period_start, x.period_end, x.status, x.submitted_by, x.submitted_at, "
                   "x.submitted_event_id, x.decided_by, x.decided_at, x.reason "
                   "FROM json_each(:keys) AS k "
                   "JOIN evidence AS x ON x.contract_id = json_extract(k.value, '$[0]') "
                   "AND x.evidence_id = json_extract(k.value, '$[1]')"
                   ).columns(*_RECORD_COLUMNS),
    "postgresql": text("SELECT x.contract_id, x.evidence_id, x.measure, x.quantity, "
                       "x.period_start, x.period_end, x.status, x.submitted_by, "
                       "x.submitted_at, x.submitted_event_id, x.decided_by, x.decided_at, "
                       "x.reason "
                       "FROM unnest(CAST(:c AS text[]), CAST(:e AS text[])) AS k(c, e) "
                       "JOIN evidence AS x ON x.contract_id = k.c AND x.evidence_id = k.e"
                       ).columns(*_RECORD_COLUMNS),
}
CHUNK = 2000  # keys a statement


def _params(dialect: str, keys: Sequence[Key]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"c": [c for c, _ in keys], "e": [e for _, e in keys]}
    return {"keys": json.dumps(keys)}


def _run(conn: Connection, statements: dict[str, Any], keys: Sequence[Key]) -> list[Row[Any]]:
    dialect = conn.dialect.name
    stmt = statements["postgresql" if dialect == "postgresql" else "sqlite"]
    wanted = sorted(set(keys))
    rows: list[Row[Any]] = []
    for i in range(0, len(wanted), CHUNK):
        rows.extend(conn.execute(stmt, _params(dialect, wanted[i:i + CHUNK])))
    return rows


def journalled(conn: Connection, keys: Sequence[Key]) -> dict[Key, str]:
    """Those of ``keys`` already in the journal -> the payload journalled under them."""
    return {(r.contract_id, r.event_id): r.payload for r in _run(conn, JOURNALLED, keys)}


def refused(conn: Connection, keys: Sequence[Key]) -> set[Key]:
    """Those of ``keys`` whose event the fold refused for good (``RejectedEvent``)."""
    return {(r.contract_id, r.event_id) for r in _run(conn, REFUSED, keys)}


def refused_by(conn: Connection, keys: Sequence[Key]) -> set[tuple[str, str, str | None]]:
    """(contract, event id, actor) of the events among ``keys`` the fold refused for
    good: a refusal binds only the actor whose event it was (the event-id gate). The
    actor is read from the dead letter's record; ``None`` (any actor) when the record
    kept is cut short or names none, as every refusal was before."""
    out: set[tuple[str, str, str | None]] = set()
    for r in _run(conn, REFUSED_RAW, keys):
        actor: str | None = None
        try:
            value = json.loads(r.raw)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("actor"), str):
            actor = value["actor"]
        out.add((r.contract_id, r.event_id, actor))
    return out


def reviews(conn: Connection, keys: Sequence[Key]) -> dict[Key, RowMapping]:
    """The review of each piece of evidence among ``keys`` (contract id, evidence id)
    that the worker has recorded: its row, with status, decided by, decided at, reason."""
    return {(r.contract_id, r.evidence_id): r._mapping for r in _run(conn, EVIDENCE, keys)}


def evidence(conn: Connection, keys: Sequence[Key]) -> list[Row[Any]]:
    """The evidence rows among ``keys`` (contract id, evidence id), every column."""
    return _run(conn, EVIDENCE, keys)
