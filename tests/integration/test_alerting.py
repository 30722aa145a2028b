"""Alert delivery against real peers: an SMTP server (aiosmtpd) and an HTTP receiver,
both on loopback and started by the tests; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from email import message_from_bytes
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from svmon.alerts.dispatch import (
    DeliveryError,
    Dispatcher,
    DispatchPolicy,
    Message,
    SmtpChannel,
    WebhookChannel,
)
from svmon.bootstrap import init_database, repository
from svmon.core import events as ev
from svmon.core.errors import NotAllowed
from svmon.infra.broker import free_port
from svmon.models.repository import Repository
from svmon.settings import Settings
from svmon.streams.client import publish
from tests.conftest import Workers, wait_until
from tests.helpers import feed
from tests.unit._builders import committed, milestone, registered, submitted, tick, verified

SECRET = "test-webhook-secret"
def soon() -> datetime:
    """A test clock just ahead of the real now (deliveries are queued at the real now)."""
    return datetime.now(UTC) + timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[2]


def behind_at_a_milestone(cid: str = "C-001") -> list[ev.ContractEvent]:
    """NT1: 2 due by 2025-03-31, 1 verified (3 claimed, so the forecast is fine);
    judged on the 2025-05-01 tick: one alert, MilestoneMissed."""
    return [replace(registered(cid), deputy="mgr-bilal", supplier_contact="sup-s01"),
            committed("NT1", "10", cid), milestone("NT1-Q1", "NT1", "2025-03-31", "2", cid),
            submitted("E1", "NT1", "1", "2025-01-01", "2025-03-31", "2025-04-03", cid),
            submitted("E2", "NT1", "2", "2025-01-01", "2025-03-31", "2025-04-03", cid),
            verified("E1", "2025-04-04", cid), tick("2025-05-01", cid)]


# ------------------------------------------------------------------ peers


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        msg["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()

    def auth(server: Any, session: Any, envelope: Any, mechanism: str,
             data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"svmon", b"s3cret")
        return AuthResult(success=ok)

    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=auth,
                     auth_require_tls=False)
    ctl.start()
    yield inbox, port
    ctl.stop()


@dataclass
class Receiver:
    """A webhook endpoint: answers with the queued statuses (then 200), records requests."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    redirect_to: str = ""  # answer every POST with a 302 to here
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.paths.append(self.path)
            if rec.redirect_to:
                self.send_response(302)
                self.send_header("Location", rec.redirect_to)
                self.end_headers()
                return
            rec.requests.append((dict(self.headers), body))
            time.sleep(rec.delay)
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.end_headers()

        do_GET = do_POST  # a followed redirect would arrive as a GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec
    server.shutdown()


@pytest.fixture
def repo(database_url: str, tmp_path: Path) -> Repository:
    return init_database(Settings(database_url=database_url, data_dir=tmp_path))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _alert(repo: Repository, kind: str = "MilestoneMissed") -> dict[str, Any]:
    [a] = [a for a in repo.alerts("unresolved") if a["kind"] == kind]
    return a


# ------------------------------------------------------------------ tests


def test_email_is_sent_once_with_text_html_and_a_link(repo: Repository,
                                                      smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    repo.set_recipient("mgr-aoife", "Aoife", email="aoife@council.example")
    feed(repo, behind_at_a_milestone())
    clock = Clock(soon())
    d = Dispatcher(repo, {"email": SmtpChannel.from_url(
        f"smtp://svmon:s3cret@127.0.0.1:{port}", "svmon@council.example")},
        DispatchPolicy(dashboard_url="http://dash.example/contract"), clock)
    assert d.run_once()["sent"] == 1
    assert d.run_once()["sent"] == 0  # nothing twice
    [msg] = inbox.messages
    assert msg["To"] == "aoife@council.example" and msg["X-Rcpt"] == "aoife@council.example"
    assert msg["Subject"] == "[svmon] Milestone missed: C-001 NT1"
    alert = _alert(repo)
    key = hashlib.sha256(f"{alert['alert_id']}|mgr-aoife|email".encode()).hexdigest()[:40]
    assert msg["Message-ID"] == f"<{key}@svmon>"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode()
             for p in msg.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "milestone id: NT1-Q1" in parts["text/plain"]
    assert "http://dash.example/contract?contract=C-001" in parts["text/plain"]
    assert "<a href='http://dash.example/contract?contract=C-001'>" in parts["text/html"]
    assert alert["delivered_at"] is not None
    [delivery] = repo.deliveries(alert["alert_id"])
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)


def test_smtp_refusing_the_password_is_retried(repo: Repository,
                                               smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    repo.set_recipient("mgr-aoife", email="aoife@council.example")
    feed(repo, behind_at_a_milestone())
    channel = SmtpChannel.from_url(f"smtp://svmon:wrong@127.0.0.1:{port}",
                                   "svmon@council.example")
    channel.timeout = 3.0
    d = Dispatcher(repo, {"email": channel}, clock=Clock(soon()))
    assert d.run_once()["retrying"] == 1 and inbox.messages == []
    [delivery] = repo.deliveries()
    assert delivery["status"] == "pending" and delivery["last_error"].startswith("SMTP")


def test_webhook_redirects_are_refused_not_followed(receiver: Receiver) -> None:
    """A webhook is one URL: a redirect (perhaps to an internal host) is a failed
    delivery, and the signed request is not sent anywhere else."""
    receiver.redirect_to = f"http://127.0.0.1:{receiver.port}/internal-admin"
    channel = WebhookChannel("s3cret")
    message = Message(delivery_id="d-1", subject="s", text="t", html="<p>t</p>",
                      body={"alert": 1}, to_email=None, to_url=receiver.url)
    with pytest.raises(DeliveryError, match="302"):
        channel.send(message)
    assert receiver.paths == ["/hook"]


def test_webhook_is_signed_and_retried_with_backoff(repo: Repository,
                                                    receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    repo.set_recipient("mgr-aoife", webhook_url=receiver.url)
    feed(repo, behind_at_a_milestone())
    t0 = soon()
    clock = Clock(t0)
    d = Dispatcher(repo, {"webhook": WebhookChannel(SECRET)}, clock=clock)
    assert d.run_once()["retrying"] == 1          # 500: again in 2 s
    clock.now = t0 + timedelta(seconds=1)
    assert d.run_once() == {"escalated": 0, "sent": 0, "retrying": 0, "failed": 0,
                            "digests": 0}          # not yet due
    clock.now = t0 + timedelta(seconds=2)
    assert d.run_once()["retrying"] == 1          # 503: again in 4 s
    clock.now = t0 + timedelta(seconds=6)
    assert d.run_once()["sent"] == 1
    assert len(receiver.requests) == 3
    keys = {h["Idempotency-Key"] for h, _ in receiver.requests}
    assert len(keys) == 1  # the same delivery, retried
    headers, body = receiver.requests[-1]
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Svmon-Signature"] == want
    payload = json.loads(body)
    assert (payload["kind"], payload["contract_id"], payload["measure"]) == (
        "MilestoneMissed", "C-001", "NT1")
    assert payload["detail"]["target"] == "2" and payload["detail"]["verified"] == "1"


def test_a_receiver_that_stays_down_is_given_up_on(repo: Repository) -> None:
    repo.set_recipient("mgr-aoife", webhook_url=f"http://127.0.0.1:{free_port()}/down")
    feed(repo, behind_at_a_milestone())
    clock = Clock(soon())
    d = Dispatcher(repo, {"webhook": WebhookChannel(SECRET, timeout=2)},
                   DispatchPolicy(max_attempts=3), clock)
    outcomes = []
    for _ in range(3):
        outcomes.append(d.run_once())
        clock.now += timedelta(minutes=5)
    assert [o["retrying"] for o in outcomes] == [1, 1, 0]
    assert outcomes[-1]["failed"] == 1
    [delivery] = repo.deliveries()
    assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
    assert "unreachable" in delivery["last_error"]


def test_one_alert_per_contract_measure_and_kind(repo: Repository,
                                                 smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    repo.set_recipient("mgr-aoife", email="aoife@council.example")
    events = [*behind_at_a_milestone()[:-1],
              milestone("NT1-Q2", "NT1", "2025-04-30", "3"), tick("2025-05-01"),
              tick("2025-06-02")]  # Q1 missed, then Q2 missed while the alert is open
    feed(repo, events, batch=1)
    alerts = [a for a in repo.alerts("all") if a["kind"] == "MilestoneMissed"]
    assert len(alerts) == 1
    assert (alerts[0]["raise_count"], alerts[0]["subject"]) == (2, "NT1-Q2")
    d = Dispatcher(repo, {"email": SmtpChannel.from_url(
        f"smtp://svmon:s3cret@127.0.0.1:{port}", "svmon@x")}, clock=Clock(soon()))
    d.run_once()
    assert len([m for m in inbox.messages if "Milestone missed" in m["Subject"]]) == 1


def test_unacknowledged_alerts_escalate_to_the_deputy(repo: Repository,
                                                      smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    repo.set_recipient("mgr-aoife", email="aoife@council.example")
    repo.set_recipient("mgr-bilal", email="bilal@council.example")
    feed(repo, behind_at_a_milestone())
    raised = _alert(repo)["created_at"]
    clock = Clock(raised + timedelta(hours=23))
    d = Dispatcher(repo, {"email": SmtpChannel.from_url(
        f"smtp://svmon:s3cret@127.0.0.1:{port}", "svmon@x")},
        DispatchPolicy(escalate_after=timedelta(hours=24)), clock)
    assert d.run_once()["escalated"] == 0
    clock.now = raised + timedelta(hours=25)
    assert d.run_once()["escalated"] == 1
    assert d.run_once()["escalated"] == 0  # once
    assert sorted(m["To"] for m in inbox.messages) == ["aoife@council.example",
                                                        "bilal@council.example"]
    assert inbox.messages[-1]["Subject"].startswith("[svmon] Escalated: Milestone missed")


def test_acknowledged_alerts_do_not_escalate(repo: Repository) -> None:
    repo.set_recipient("mgr-bilal", email="bilal@council.example")
    feed(repo, behind_at_a_milestone())
    alert = _alert(repo)
    assert repo.acknowledge(alert["alert_id"], "mgr-aoife")["status"] == "acknowledged"
    assert repo.escalate(alert["created_at"] + timedelta(days=3), timedelta(hours=24)) == 0


def test_only_the_contracts_managers_acknowledge_or_resolve(repo: Repository) -> None:
    feed(repo, behind_at_a_milestone())
    alert_id = _alert(repo)["alert_id"]
    with pytest.raises(NotAllowed, match="does not manage contract 'C-001'"):
        repo.acknowledge(alert_id, "mgr-carys")
    assert _alert(repo)["status"] == "open"
    assert repo.acknowledge(alert_id, "mgr-bilal")["status"] == "acknowledged"  # deputy
    assert repo.acknowledge(alert_id, "mgr-aoife")["changed"] is False
    assert repo.resolve(alert_id, "mgr-aoife")["status"] == "resolved"
    [a] = [a for a in repo.alerts("all") if a["alert_id"] == alert_id]
    assert (a["acknowledged_by"], a["resolved_by"], a["resolved_manually"]) == (
        "mgr-bilal", "mgr-aoife", True)


def test_digest_recipients_get_one_email_a_day(repo: Repository,
                                               smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    repo.set_recipient("mgr-aoife", email="aoife@council.example", digest=True)
    feed(repo, [*behind_at_a_milestone("C-001"), *behind_at_a_milestone("C-002")])
    created = repo.deliveries()[0]["created_at"]
    clock = Clock(created + timedelta(hours=2))
    d = Dispatcher(repo, {"email": SmtpChannel.from_url(
        f"smtp://svmon:s3cret@127.0.0.1:{port}", "svmon@x")}, clock=clock)
    assert d.run_once()["digests"] == 0 and inbox.messages == []
    clock.now = created + timedelta(days=1, minutes=1)
    assert d.run_once()["digests"] == 1
    [msg] = inbox.messages
    body = msg.get_payload(decode=True).decode() if not msg.is_multipart() else \
        next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(
            decode=True).decode()
    assert msg["Subject"] == "[svmon] Daily digest: 2 alerts"
    assert "C-001 Milestone missed NT1" in body and "C-002 Milestone missed NT1" in body
    assert d.run_once()["digests"] == 0


def test_dispatcher_killed_mid_send_loses_nothing(repo: Repository, receiver: Receiver,
                                                  tmp_path: Path) -> None:
    """SIGKILL while the receiver holds the request: on restart the delivery is sent again
    under the same Idempotency-Key, and recorded once. Nothing is lost; a receiver that
    honours the key sees one notification."""
    receiver.delay = 4.0
    repo.set_recipient("mgr-aoife", webhook_url=receiver.url)
    feed(repo, behind_at_a_milestone())
    env = {**os.environ, "DATABASE_URL": str(repo.engine.url.render_as_string(
        hide_password=False)), "SVMON_DATA_DIR": str(tmp_path),
        "SVMON_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT),
        "SVMON_DISPATCH_LEASE_SECONDS": "3"}  # the killed dispatcher's claim runs out

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "svmon.cli", "dispatch",
                                 "--interval", "0.2"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first = start()
    try:
        wait_until(lambda: len(receiver.requests) == 1, 30, what="the first request")
        first.kill()
        first.wait()
        assert repo.deliveries()[0]["status"] == "pending"  # the send was never recorded
        receiver.delay = 0.0
        second = start()
        try:
            wait_until(lambda: repo.deliveries()[0]["status"] == "sent", 30, what="sent")
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    keys = [h["Idempotency-Key"] for h, _ in receiver.requests]
    assert len(set(keys)) == 1 and len(keys) == 2
    [delivery] = repo.deliveries()
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)


def test_cli_refuses_another_managers_ack(database_url: str, tmp_path: Path) -> None:
    s = Settings(database_url=database_url, data_dir=tmp_path)
    repo = init_database(s)
    feed(repo, behind_at_a_milestone())
    alert_id = _alert(repo)["alert_id"]
    env = {**os.environ, "DATABASE_URL": s.database_url, "SVMON_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "svmon.cli", "alerts", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    refused = run("ack", alert_id, "--as", "mgr-carys")
    assert refused.returncode == 1 and "does not manage contract" in refused.stderr
    ok = run("ack", alert_id, "--as", "mgr-aoife")
    assert ok.returncode == 0 and "acknowledged" in ok.stdout
    listed = json.loads(run("list", "--json").stdout)
    assert [a["status"] for a in listed if a["alert_id"] == alert_id] == ["acknowledged"]
    assert _alert(repo)["acknowledged_by"] == "mgr-aoife"  # what the CLI wrote is stored
    repo.engine.dispose()


@pytest.mark.broker
@pytest.mark.slow
def test_end_to_end_one_alert_delivered_once_per_channel(
        settings: Settings, workers: Workers, smtp: tuple[Inbox, int],
        receiver: Receiver) -> None:
    inbox, port = smtp
    repo = repository(settings)
    repo.set_recipient("mgr-aoife", email="aoife@council.example", webhook_url=receiver.url)
    workers.start()
    publish(behind_at_a_milestone(), settings)
    wait_until(lambda: repo.counts()["journal"] >= 7, 120, what="the log folded")
    d = Dispatcher(repo, {"email": SmtpChannel.from_url(
        f"smtp://svmon:s3cret@127.0.0.1:{port}", "svmon@x"),
        "webhook": WebhookChannel(SECRET)}, clock=Clock(datetime.now(UTC)))
    assert d.run_once()["sent"] == 2
    publish(behind_at_a_milestone(), settings)  # the same log again: nothing new
    time.sleep(3)
    assert d.run_once()["sent"] == 0
    alerts = [a for a in repo.alerts("all") if a["kind"] == "MilestoneMissed"]
    assert len(alerts) == 1
    assert len(inbox.messages) == 1 and len(receiver.requests) == 1


def test_starttls_and_auth(repo: Repository, tmp_path: Path) -> None:
    """A server that insists on STARTTLS before AUTH: the channel upgrades, checks the
    server's certificate against the CA file given, logs in and sends."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls,
                     require_starttls=True, auth_require_tls=True,
                     authenticator=lambda *a: AuthResult(success=True))
    ctl.start()
    try:
        repo.set_recipient("mgr-aoife", email="aoife@council.example")
        feed(repo, behind_at_a_milestone())
        channel = SmtpChannel.from_url(f"smtp://svmon:pw@127.0.0.1:{port}?starttls=1",
                                       "svmon@x", cafile=str(cert))
        assert channel.starttls and channel.username == "svmon"
        assert Dispatcher(repo, {"email": channel}, clock=Clock(soon())).run_once()["sent"] == 1
        assert len(inbox.messages) == 1
        plain = SmtpChannel.from_url(f"smtp://svmon:pw@127.0.0.1:{port}", "svmon@x")
        plain.timeout = 3.0
        from svmon.alerts.dispatch import DeliveryError, Message
        with pytest.raises(DeliveryError):  # the server refuses mail before STARTTLS
            plain.send(Message("k", "s", "t", "<p>t</p>", {}, "a@b.example", None))
    finally:
        ctl.stop()


@hsettings(max_examples=40, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(["risk", "back", "met", "missed", "overdue",
                                       "resumed"]), max_size=20),
       batch=st.integers(1, 5))
def test_the_inbox_never_holds_two_open_alerts_of_a_kind(repo: Repository, steps: list[str],
                                                         batch: int) -> None:
    """Raise and resolve in any order and batching: at most one unresolved alert per
    contract × measure × kind in the real inbox table, and it matches the pure model.
    The examples share one database, each on a contract of its own."""
    from svmon.alerts.lifecycle import open_alerts
    from svmon.models.repository import Batch

    when = datetime(2025, 5, 1, tzinfo=UTC)
    cid = f"C-{uuid.uuid4().hex[:12]}"
    common = dict(contract_id=cid, at=when)
    make = {
        "risk": lambda i: ev.TargetAtRisk(**common, measure="M", caused_by=f"e{i}",
                                          target=D(9), forecast=D(1), claimed=D(1),
                                          threshold=D("0.9")),
        "back": lambda i: ev.TargetBackOnTrack(**common, measure="M", caused_by=f"e{i}",
                                               target=D(9), forecast=D(9)),
        "met": lambda i: ev.TargetMet(**common, measure="M", caused_by=f"e{i}", target=D(9),
                                      verified=D(9)),
        "missed": lambda i: ev.TargetMissed(**common, measure="M", caused_by=f"e{i}",
                                            target=D(9), verified=D(1), claimed=D(1)),
        "overdue": lambda i: ev.ReportingOverdue(**common, measure="", caused_by=f"e{i}",
                                                 last_evidence_at=None, cadence_days=90),
        "resumed": lambda i: ev.ReportingResumed(**common, measure="", caused_by=f"e{i}"),
    }
    facts = [make[s](i) for i, s in enumerate(steps)]
    for i in range(0, len(facts), batch):
        repo.apply_batch(Batch(consumer="t", derived=facts[i:i + batch]))
    unresolved = [(a["contract_id"], a["measure"], a["kind"], "")
                  for a in repo.alerts("unresolved", contract_id=cid)]
    assert len(unresolved) == len(set(unresolved))
    assert set(unresolved) == open_alerts(facts)
