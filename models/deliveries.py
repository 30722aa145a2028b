"""The delivery queue of alert notices: one row per (alert, recipient, channel), taken
by a dispatcher under a lease, retried with backoff, escalated to the deputy.

Rows are queued in the transaction that raises the alert (``AlertStore``) or escalates
it, so a notice is never sent for an alert that was not stored, nor lost for one that
was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from svmon.alerts.routing import escalation_recipients
from svmon.models.statements import T, Writes
from svmon.models.tables import AlertRow, ContractRow, DeliveryRow, RecipientRow


def channels(conn: Connection) -> dict[str, list[str]]:
    """recipient -> the channels configured for them."""
    r = T(RecipientRow)
    out = {}
    for row in conn.execute(select(r)):
        if row.digest and row.email:
            out[row.recipient_id] = ["digest"]
        else:
            out[row.recipient_id] = [c for c, v in (("email", row.email),
                                                    ("webhook", row.webhook_url)) if v]
    return out


def delivery_rows(alert_id: str, people: Sequence[str], channels: Mapping[str, list[str]],
                  now: datetime, escalation: bool) -> list[dict[str, Any]]:
    """The delivery rows of one alert to ``people`` on each of their channels."""
    return [dict(delivery_id=f"{alert_id}|{p}|{ch}", alert_id=alert_id, recipient_id=p,
                 channel=ch, status="pending", attempts=0, next_attempt_at=now,
                 created_at=now, escalation=escalation)
            for p in people for ch in channels.get(p, ())]


class DeliveryStore:
    def __init__(self, engine: Engine, writes: Writes) -> None:
        self.engine = engine
        self._writes = writes

    def queue(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        self._writes.insert_ignore(conn, T(DeliveryRow), rows, ("delivery_id",))

    def set_recipient(self, recipient_id: str, name: str = "", email: str | None = None,
                      webhook_url: str | None = None, digest: bool = False) -> None:
        with self.engine.begin() as conn:
            self._writes.upsert(conn, T(RecipientRow), [dict(
                recipient_id=recipient_id, name=name, email=email, webhook_url=webhook_url,
                digest=digest)], ("recipient_id",))

    def due_deliveries(self, now: datetime, channels: Sequence[str] = ("email", "webhook"),
                       limit: int = 100) -> list[dict[str, Any]]:
        """Pending deliveries on these channels whose time has come, with their alert,
        contract and recipient."""
        d, a, c, r = T(DeliveryRow), T(AlertRow), T(ContractRow), T(RecipientRow)
        q = (select(d.c.delivery_id, d.c.channel, d.c.attempts, d.c.escalation,
                    a.c.alert_id, a.c.kind, a.c.severity, a.c.measure, a.c.subject,
                    a.c.status.label("alert_status"), a.c.raised_at, a.c.detail,
                    c.c.contract_id, c.c.title, c.c.supplier_name, c.c.manager,
                    r.c.recipient_id, r.c.name, r.c.email, r.c.webhook_url)
             .join(a, a.c.alert_id == d.c.alert_id)
             .join(c, c.c.contract_id == a.c.contract_id)
             .join(r, r.c.recipient_id == d.c.recipient_id)
             .where(d.c.status == "pending", d.c.next_attempt_at <= now,
                    d.c.channel.in_([c for c in channels if c != "digest"]))
             .order_by(d.c.next_attempt_at, d.c.delivery_id).limit(limit))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(q).mappings()]

    def due_digests(self, now: datetime, every: timedelta) -> dict[str, list[dict[str, Any]]]:
        """recipient -> pending digest items, for recipients whose oldest item has waited
        ``every`` (one email a day by default)."""
        d, a, r = T(DeliveryRow), T(AlertRow), T(RecipientRow)
        q = (select(d.c.delivery_id, d.c.created_at, d.c.attempts, a.c.alert_id, a.c.kind,
                    a.c.measure, a.c.contract_id, a.c.subject, a.c.raised_at,
                    r.c.recipient_id, r.c.email, r.c.name)
             .join(a, a.c.alert_id == d.c.alert_id)
             .join(r, r.c.recipient_id == d.c.recipient_id)
             .where(d.c.status == "pending", d.c.channel == "digest",
                    d.c.next_attempt_at <= now, r.c.email.is_not(None))
             .order_by(d.c.created_at, d.c.delivery_id))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                out.setdefault(row["recipient_id"], []).append(dict(row))
        return {k: v for k, v in out.items() if v[0]["created_at"] <= now - every}

    def claim_delivery(self, delivery_id: str, now: datetime, lease: timedelta) -> bool:
        """Take a due delivery for ``lease`` (two dispatchers never send the same row)."""
        d = T(DeliveryRow)
        with self.engine.begin() as conn:
            done = conn.execute(update(d).where(
                d.c.delivery_id == delivery_id, d.c.status == "pending",
                d.c.next_attempt_at <= now).values(next_attempt_at=now + lease))
            return done.rowcount == 1

    def delivery_skipped(self, delivery_id: str, why: str) -> None:
        d = T(DeliveryRow)
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id == delivery_id,
                                         d.c.status == "pending")
                         .values(status="skipped", last_error=why))

    def delivery_sent(self, delivery_ids: Sequence[str], at: datetime) -> None:
        d, a = T(DeliveryRow), T(AlertRow)
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id.in_(list(delivery_ids)),
                                         d.c.status == "pending")
                         .values(status="sent", sent_at=at, attempts=d.c.attempts + 1))
            alert_ids = select(d.c.alert_id).where(d.c.delivery_id.in_(list(delivery_ids)))
            conn.execute(update(a).where(a.c.alert_id.in_(alert_ids),
                                         a.c.delivered_at.is_(None)).values(delivered_at=at))

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime | None) -> None:
        """One failed attempt: try again at ``retry_at``, or give up (None)."""
        d = T(DeliveryRow)
        values: dict[str, Any] = dict(attempts=d.c.attempts + 1, last_error=error[:2000])
        if retry_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.delivery_id == delivery_id,
                                         d.c.status == "pending").values(**values))

    def escalate(self, now: datetime, after: timedelta) -> int:
        """Alerts open (not acknowledged) in the inbox for longer than ``after`` go to the
        deputy (inbox time, not the log time the fact refers to)."""
        a, c = T(AlertRow), T(ContractRow)
        with self.engine.begin() as conn:
            stale = conn.execute(select(a.c.alert_id, c.c.deputy, c.c.manager)
                                 .join(c, c.c.contract_id == a.c.contract_id).where(
                a.c.status == "open", a.c.severity == "warning",
                a.c.escalated_at.is_(None), a.c.created_at <= now - after)).all()
            if not stale:
                return 0
            configured = channels(conn)
            for alert_id, deputy, manager in stale:
                self.queue(conn, delivery_rows(alert_id, escalation_recipients(manager, deputy),
                                               configured, now, escalation=True))
                conn.execute(update(a).where(a.c.alert_id == alert_id)
                             .values(escalated_at=now))
            return len(stale)

    def deliveries(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        d = T(DeliveryRow)
        q = select(d).order_by(d.c.created_at, d.c.delivery_id)
        if alert_id:
            q = q.where(d.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]
