"""Deliver alerts: email over SMTP, signed webhooks, daily digests; retries and escalation.

The dispatcher runs in its own process (``svmon dispatch``), so a slow or failing
channel never holds up the stream. Deliveries are rows written in the same transaction
as the alert (an outbox): an alert is never lost between the fold and its channels.
Each delivery's id is its idempotency key, sent as the email's Message-ID and the
webhook's ``Idempotency-Key``: a dispatcher killed after sending but before recording
the send will send again on restart with the same key (at-least-once to the channel;
receivers that honour the key see it once, and no delivery is ever dropped).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from svmon.core.errors import InvalidInput, SvmonError

log = logging.getLogger(__name__)

TITLES = {
    "MilestoneMissed": "Milestone missed", "TargetAtRisk": "Target at risk",
    "TargetMissed": "Target missed at the end of the term",
    "ReportingOverdue": "Reporting overdue", "EvidenceRejected": "Evidence rejected",
    "KpiRating": "KPI rating fell", "TargetMet": "Target met",
}


class DeliveryError(SvmonError):
    """One attempt failed; the dispatcher retries with backoff."""


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A webhook is one URL: a redirect (possibly to an internal host) is a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


@dataclass(frozen=True)
class Message:
    delivery_id: str
    subject: str
    text: str
    html: str
    body: dict[str, Any]  # the JSON a webhook receives
    to_email: str | None
    to_url: str | None

    @property
    def message_id(self) -> str:
        return f"<{hashlib.sha256(self.delivery_id.encode()).hexdigest()[:40]}@svmon>"


class Channel(Protocol):
    def send(self, message: Message) -> None: ...


def render(row: Mapping[str, Any], dashboard_url: str) -> Message:
    """The words of one delivery, from its alert, contract and recipient."""
    detail = json.loads(row["detail"])
    kind = row["kind"]
    title = TITLES.get(kind, kind)
    what = f"{row['measure']} " if row["measure"] else ""
    subject = (f"[svmon] {'Escalated: ' if row['escalation'] else ''}{title}: "
               f"{row['contract_id']} {what}".strip())
    link = f"{dashboard_url.rstrip('/')}?contract={row['contract_id']}"
    facts = {k: v for k, v in detail.items()
             if k not in ("schema_version", "kind", "derived_id", "contract_id", "caused_by")}
    lines = [f"{title} on contract {row['contract_id']} ({row['title']}, "
             f"{row['supplier_name']}).", ""]
    lines += [f"  {k.replace('_', ' ')}: {v}" for k, v in facts.items()]
    lines += ["", f"Contract dashboard: {link}", f"Alert id: {row['alert_id']}"]
    cells = "".join(f"<tr><th align='left'>{html.escape(k.replace('_', ' '))}</th>"
                    f"<td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    body_html = (f"<p><strong>{html.escape(title)}</strong> on contract "
                 f"{html.escape(row['contract_id'])} ({html.escape(row['title'])}, "
                 f"{html.escape(row['supplier_name'])}).</p><table>{cells}</table>"
                 f"<p><a href='{html.escape(link)}'>Open the contract dashboard</a></p>")
    body = {"delivery_id": row["delivery_id"], "alert_id": row["alert_id"], "kind": kind,
            "title": title, "severity": row["severity"], "contract_id": row["contract_id"],
            "contract_title": row["title"], "supplier": row["supplier_name"],
            "measure": row["measure"], "subject": row["subject"],
            "escalation": bool(row["escalation"]), "raised_at": row["raised_at"].isoformat(),
            "detail": facts, "link": link, "text": "\n".join(lines)}
    return Message(row["delivery_id"], subject, "\n".join(lines), body_html, body,
                   row.get("email"), row.get("webhook_url"))


@dataclass
class SmtpChannel:
    """SMTP with optional STARTTLS and AUTH, from ``smtp://user:pass@host:port?starttls=1``."""

    host: str
    port: int = 25
    sender: str = "svmon@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    cafile: str | None = None
    timeout: float = 15.0

    implicit_tls: bool = False  # smtps://

    @classmethod
    def from_url(cls, url: str, sender: str, cafile: str | None = None) -> SmtpChannel:
        u = urlparse(url)
        if u.scheme not in ("smtp", "smtps") or not u.hostname:
            raise InvalidInput("SVMON_SMTP_URL", "smtp[s]://[user:password@]host[:port]"
                               "[?starttls=1]", url)
        q = parse_qs(u.query)
        smtps = u.scheme == "smtps"
        starttls = q.get("starttls", ["0"])[0] in ("1", "true", "yes")
        if u.username and not (smtps or starttls) and u.hostname not in LOOPBACK:
            raise InvalidInput("SVMON_SMTP_URL", "TLS (smtps:// or ?starttls=1) when a "
                               "password is sent to another machine", url)
        return cls(u.hostname, u.port or (465 if smtps else 25), sender,
                   unquote(u.username) if u.username else None,
                   unquote(u.password) if u.password else None, starttls, cafile,
                   implicit_tls=smtps)

    def send(self, message: Message) -> None:
        if not message.to_email:
            raise DeliveryError("the recipient has no email address")
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = message.subject, self.sender, message.to_email
        msg["Message-ID"] = message.message_id
        msg.set_content(message.text)
        msg.add_alternative(message.html, subtype="html")
        try:
            tls = ssl.create_default_context(cafile=self.cafile)
            smtp_cls: Any = smtplib.SMTP_SSL if self.implicit_tls else smtplib.SMTP
            kwargs: dict[str, Any] = {"context": tls} if self.implicit_tls else {}
            with smtp_cls(self.host, self.port, timeout=self.timeout, **kwargs) as smtp:
                if self.starttls and not self.implicit_tls:
                    smtp.starttls(context=tls)
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException, ValueError) as err:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {err}") from err


@dataclass
class WebhookChannel:
    """JSON POST signed with HMAC-SHA256 (``X-Svmon-Signature: sha256=<hex>``)."""

    secret: str
    timeout: float = 10.0

    def signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def send(self, message: Message) -> None:
        if not message.to_url:
            raise DeliveryError("the recipient has no webhook URL")
        body = json.dumps(message.body, separators=(",", ":")).encode()
        req = urllib.request.Request(message.to_url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "svmon-dispatch",
            "Idempotency-Key": message.delivery_id, "X-Svmon-Signature": self.signature(body)})
        try:
            with _NO_REDIRECTS.open(req, timeout=self.timeout) as resp:
                if not 200 <= resp.status < 300:
                    raise DeliveryError(f"webhook answered {resp.status}")
        except urllib.error.HTTPError as err:
            raise DeliveryError(f"webhook answered {err.code}") from err
        except (OSError, urllib.error.URLError) as err:
            raise DeliveryError(f"webhook unreachable: {err}") from err


@dataclass
class DispatchPolicy:
    max_attempts: int = 8
    first_retry: timedelta = timedelta(seconds=2)
    max_retry: timedelta = timedelta(minutes=10)
    escalate_after: timedelta = timedelta(hours=24)
    digest_every: timedelta = timedelta(days=1)
    lease: timedelta = timedelta(seconds=30)  # a claimed delivery is another's after this
    dashboard_url: str = "http://127.0.0.1:8866/voila/render/contract.ipynb"

    def retry_at(self, attempts_so_far: int, now: datetime) -> datetime | None:
        """When to try again after a failure (exponential), or None to give up."""
        if attempts_so_far + 1 >= self.max_attempts:
            return None
        wait: timedelta = min(self.max_retry, self.first_retry * 2 ** attempts_so_far)
        return now + wait


@dataclass
class Dispatcher:
    repo: Any
    channels: dict[str, Channel]
    policy: DispatchPolicy = field(default_factory=DispatchPolicy)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def run_once(self) -> dict[str, int]:
        now = self.clock()
        stats = {"escalated": self.repo.escalate(now, self.policy.escalate_after),
                 "sent": 0, "retrying": 0, "failed": 0, "digests": 0}
        # only channels this dispatcher has: the others wait for one that does
        for row in self.repo.due_deliveries(now, channels=sorted(self.channels)):
            if not self.repo.claim_delivery(row["delivery_id"], now, self.policy.lease):
                continue  # another dispatcher has it
            if row["alert_status"] == "resolved":
                self.repo.delivery_skipped(row["delivery_id"], "resolved before delivery")
                continue
            try:
                self.channels[row["channel"]].send(render(row, self.policy.dashboard_url))
            except Exception as err:  # one bad recipient must not stop the others
                if not isinstance(err, DeliveryError):
                    log.exception("delivery %s: unexpected error", row["delivery_id"])
                retry = self.policy.retry_at(row["attempts"], now)
                self.repo.delivery_failed(row["delivery_id"], str(err), retry)
                stats["retrying" if retry else "failed"] += 1
                log.warning("delivery %s failed (%s)%s", row["delivery_id"], err,
                            "" if retry else "; giving up")
                continue
            self.repo.delivery_sent([row["delivery_id"]], now)
            stats["sent"] += 1
        stats["digests"] = self._digests(now)
        return stats

    def _digests(self, now: datetime) -> int:
        email = self.channels.get("email")
        if email is None:
            return 0
        sent = 0
        for recipient, items in self.repo.due_digests(now, self.policy.digest_every).items():
            key = f"digest|{recipient}|{items[0]['delivery_id']}"
            lines = [f"{len(items)} alerts since {items[0]['created_at']:%Y-%m-%d %H:%M}:"]
            lines += [f"- {i['contract_id']} {TITLES.get(i['kind'], i['kind'])} "
                      f"{i['measure']} {i['subject']}".rstrip() for i in items]
            text = "\n".join(lines)
            msg = Message(key, f"[svmon] Daily digest: {len(items)} alerts", text,
                          "<pre>" + html.escape(text) + "</pre>", {}, items[0]["email"], None)
            ids = [i["delivery_id"] for i in items]
            if not all(self.repo.claim_delivery(i, now, self.policy.lease) for i in ids):
                continue
            try:
                email.send(msg)
            except Exception as err:
                log.warning("digest for %s failed: %s", recipient, err)
                for i in items:
                    self.repo.delivery_failed(i["delivery_id"], str(err),
                                              self.policy.retry_at(i["attempts"], now))
                continue
            self.repo.delivery_sent(ids, now)
            sent += 1
        return sent

    def run_forever(self, interval: float = 1.0,
                    should_stop: Callable[[], bool] = lambda: False) -> None:
        while not should_stop():
            try:
                self.run_once()
            except Exception:  # the database may be away: keep going, say so
                log.exception("dispatch round failed; retrying")
            time.sleep(interval)
