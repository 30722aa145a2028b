"""Alerts and the notice outbox: what the fold's derived facts change in the inbox.

Deciding what a fact does to an alert is the alert rules' (``svmon.alerts.lifecycle``:
raise once, refresh while open, resolve when the cause clears); this store applies those
changes to the rows, with the deliveries a new alert needs, in the batch's transaction.
A manager's acknowledgement or resolution comes through here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from svmon.alerts.lifecycle import AlertChange, Identity, changes_for, identity
from svmon.alerts.routing import recipients_for
from svmon.core import events as ev
from svmon.core.errors import InvalidInput, NotAllowed
from svmon.core.state import ContractState
from svmon.models.deliveries import DeliveryStore, channels, delivery_rows
from svmon.models.statements import NOT_RESOLVED, T, Writes
from svmon.models.tables import AlertRow, ContractRow, NoticeRow
from svmon.schemas import derived_to_dict, now_utc

REFRESHED = ("subject", "last_raised_at", "raised_by", "raise_count", "detail")
RESOLVED = ("status", "resolved_at", "resolved_by")


class AlertStore:
    def __init__(self, engine: Engine, writes: Writes, deliveries: DeliveryStore) -> None:
        self.engine = engine
        self._writes = writes
        self._deliveries = deliveries

    # ----------------------------------------------------------- batch writes

    def write_derived(self, conn: Connection, derived: Sequence[ev.Derived],
                      states: Mapping[str, ContractState]) -> None:
        """Notices for the outbox, and the alert changes they cause, for a whole batch.

        The batch's contracts' unresolved alerts are read once; the changes are then
        worked through in memory in order (so a raise, a resolve and a raise again in
        one batch give what they would one by one), and written with one statement per
        kind of write: a few round trips a batch instead of several per change."""
        self._writes.insert_ignore(conn, T(NoticeRow), [
            dict(derived_id=d.derived_id, contract_id=d.contract_id, kind=d.kind,
                 measure=d.measure, at=d.at, body=json.dumps(derived_to_dict(d)))
            for d in derived], ("derived_id",))
        changes = [(c, d) for d in derived for c in changes_for(d)]
        if changes:
            self._apply(conn, changes, states)

    def _apply(self, conn: Connection, changes: Sequence[tuple[AlertChange, ev.Derived]],
               states: Mapping[str, ContractState]) -> None:
        a = T(AlertRow)
        now = now_utc()
        unresolved: dict[Identity, list[dict[str, Any]]] = {}
        for r in conn.execute(select(a.c.alert_id, a.c.contract_id, a.c.measure, a.c.kind,
                                     a.c.subject, a.c.raised_by, a.c.raise_count).where(
                a.c.contract_id.in_(sorted({c.contract_id for c, _ in changes})),
                a.c.status.in_(NOT_RESOLVED))):
            unresolved.setdefault(identity(r.contract_id, r.measure, r.kind, r.subject),
                                  []).append(dict(r._mapping))
        raises = sorted({c.derived_id for c, _ in changes if c.action == "raise"})
        seen = {r[0] for r in conn.execute(select(a.c.alert_id).where(
            a.c.alert_id.in_(raises)))} if raises else set()  # raises applied before
        new: dict[str, dict[str, Any]] = {}  # alert id -> the row to insert
        refreshed: dict[str, dict[str, Any]] = {}  # existing alerts raised again
        resolved: dict[str, dict[str, Any]] = {}  # existing alerts resolved
        deliveries: list[dict[str, Any]] = []
        configured = channels(conn)
        for c, d in changes:
            rows = unresolved.get(c.identity, [])
            if c.action == "resolve":
                for row in rows:
                    change = dict(status="resolved", resolved_at=c.at, resolved_by=c.derived_id)
                    if row["alert_id"] in new:
                        new[row["alert_id"]].update(change)
                    else:
                        resolved[row["alert_id"]] = {"b_id": row["alert_id"],
                                                     **{f"b_{k}": v for k, v in change.items()}}
                unresolved.pop(c.identity, None)
                continue
            detail = json.dumps(derived_to_dict(d))
            if rows:  # already open: refresh it, no new delivery (no storms)
                row = rows[0]
                if row["raised_by"] != c.derived_id:
                    row.update(subject=c.subject, last_raised_at=c.at, raised_by=c.derived_id,
                               raise_count=row["raise_count"] + 1, detail=detail)
                    if row["alert_id"] not in new:
                        refreshed[row["alert_id"]] = {
                            "b_id": row["alert_id"], **{f"b_{k}": row[k] for k in REFRESHED}}
                continue
            if c.derived_id in seen or c.derived_id in new:
                continue  # this very raise was applied before (a batch written twice)
            row = dict(alert_id=c.derived_id, contract_id=c.contract_id, measure=c.measure,
                       kind=c.kind, severity=c.severity, subject=c.subject, status="open",
                       raised_at=c.at, raised_by=c.derived_id, last_raised_at=c.at,
                       raise_count=1, detail=detail, created_at=now, resolved_at=None,
                       resolved_by=None)
            new[c.derived_id] = row
            unresolved[c.identity] = [row]
            state = states.get(c.contract_id)
            if state is not None and state.terms is not None:
                deliveries.extend(delivery_rows(
                    c.derived_id, recipients_for(c.kind, state.terms), configured, now,
                    escalation=False))
        if new:
            self._writes.execute(conn, ("insert", a.name), a.insert, list(new.values()))
        for rows_, cols in ((refreshed, REFRESHED), (resolved, RESOLVED)):
            if rows_:  # still unresolved: a manager may have resolved it meanwhile
                conn.execute(update(a).where(a.c.alert_id == bindparam("b_id"), or_(
                    *(a.c.status == st for st in NOT_RESOLVED))).values(
                    {k: bindparam(f"b_{k}") for k in cols}), list(rows_.values()))
        self._deliveries.queue(conn, deliveries)

    # -------------------------------------------------------- the alert inbox

    def alerts(self, status: str | None = None, contract_id: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
        a = T(AlertRow)
        q = select(a).order_by(a.c.raised_at.desc(), a.c.alert_id).limit(limit)
        if status == "unresolved":
            q = q.where(a.c.status.in_(NOT_RESOLVED))
        elif status and status != "all":
            q = q.where(a.c.status == status)
        if contract_id:
            q = q.where(a.c.contract_id == contract_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def decide(self, alert_id: str, by: str, to: str) -> dict[str, Any]:
        """Acknowledge (``to="acknowledged"``) or resolve an alert as ``by``, who must be
        its contract's manager or deputy (else :class:`NotAllowed`)."""
        a, c = T(AlertRow), T(ContractRow)
        now = now_utc()
        with self.engine.begin() as conn:
            row = conn.execute(select(a.c.status, c.c.manager, c.c.deputy, c.c.contract_id)
                               .join(c, c.c.contract_id == a.c.contract_id)
                               .where(a.c.alert_id == alert_id)).first()
            if row is None:
                raise InvalidInput("alert_id", "the id of an alert in the inbox", alert_id)
            if by not in {row.manager, row.deputy} - {""}:
                raise NotAllowed(f"{by!r} does not manage contract {row.contract_id!r} "
                                 f"(its manager is {row.manager!r})")
            if row.status == "resolved" or (to == "acknowledged" and
                                            row.status == "acknowledged"):
                return dict(alert_id=alert_id, status=row.status, changed=False)
            values: dict[str, Any] = (
                dict(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
                if to == "acknowledged" else
                dict(status="resolved", resolved_at=now, resolved_by=by,
                     resolved_manually=True))
            done = conn.execute(update(a).where(a.c.alert_id == alert_id,
                                                a.c.status.in_(NOT_RESOLVED)).values(**values))
            if done.rowcount != 1:  # resolved by the stream meanwhile
                return dict(alert_id=alert_id, status="resolved", changed=False)
            return dict(alert_id=alert_id, status=to, changed=True)

    def open_identities(self) -> set[tuple[str, str, str, str]]:
        """Alerts not resolved, by identity (see ``svmon.alerts.lifecycle.identity``)."""
        return self._identities(T(AlertRow).c.status.in_(NOT_RESOLVED))

    def manually_resolved_identities(self) -> set[tuple[str, str, str, str]]:
        return self._identities(T(AlertRow).c.resolved_manually.is_(True))

    def _identities(self, where: Any) -> set[tuple[str, str, str, str]]:
        a = T(AlertRow)
        with self.engine.connect() as conn:
            return {identity(r.contract_id, r.measure, r.kind, r.subject) for r in conn.execute(
                select(a.c.contract_id, a.c.measure, a.c.kind, a.c.subject).where(where))}

    # ------------------------------------------------------------- the outbox

    def unpublished_notices(self, limit: int = 500) -> list[tuple[str, str, str]]:
        n = T(NoticeRow)
        with self.engine.connect() as conn:
            rows = conn.execute(select(n.c.derived_id, n.c.contract_id, n.c.body)
                                .where(n.c.published_at.is_(None))
                                .order_by(n.c.at, n.c.derived_id).limit(limit))
            return [tuple(r) for r in rows]

    def mark_published(self, derived_ids: Sequence[str]) -> None:
        if not derived_ids:
            return
        n = T(NoticeRow)
        with self.engine.begin() as conn:
            conn.execute(update(n).where(n.c.derived_id.in_(list(derived_ids)))
                         .values(published_at=now_utc()))
