"""The Kafka intake end to end: integrations produce to ``<prefix>.intake`` (with
librdkafka, through confluent-kafka, as a supplier's own system would), the intake
consumer authenticates each message by its token header and checks it as the HTTP API
does, the inbox relay publishes it, a real worker folds it; every message is answered
on ``<prefix>.intake-replies``. And the worker refuses a record on the wrong partition
of contract-events (what a librdkafka producer writing there directly would do).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaConsumer

from svmon.api.intake import build_intake
from svmon.api.relay import InboxRelay
from svmon.bootstrap import init_database
from svmon.models.ingest import IngestStore
from svmon.models.repository import Repository
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher, submit_evidence
from svmon.streams.intake import IntakeConsumer
from svmon.streams.processor import partition_for
from tests.conftest import Workers, wait_until
from tests.integration.conftest import contract_events

confluent_kafka = pytest.importorskip("confluent_kafka")
pytestmark = [pytest.mark.broker, pytest.mark.slow]
UNIT = "no. people FTE"  # NT1's unit in the demo catalogue


@dataclass
class System:
    settings: Settings
    repo: Repository
    store: IngestStore
    tokens: dict[str, str]
    intake: IntakeConsumer
    workers: Workers

    def producer(self) -> Any:
        """A librdkafka producer, as an integration configures one (its default
        partitioner, not kafka-python's)."""
        return confluent_kafka.Producer({"bootstrap.servers": self.settings.bootstrap,
                                         "acks": "all", "enable.idempotence": True,
                                         "linger.ms": 5})

    def produce(self, messages: list[tuple[str | None, object, str | None]]) -> None:
        """(key, value, token or None) to the intake topic, in order, with librdkafka."""
        p = self.producer()
        for key, value, token in messages:
            headers = [("authorization", f"Bearer {token}".encode())] if token else None
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            p.produce(self.settings.intake_topic, key=key.encode() if key else None,
                      value=raw, headers=headers)
        assert p.flush(30) == 0

    def totals(self, cid: str) -> dict[str, Decimal]:
        return {t["measure"]: t["claimed"] for t in self.store.contract_detail(cid)["totals"]}


def evidence(cid: str, eid: str, quantity: str, **extra: object) -> dict[str, object]:
    return {"type": "EvidenceSubmitted", "contract_id": cid, "event_id": f"evidence:{eid}",
            "data": {"evidence_id": eid, "measure": "NT1", "quantity": quantity, "unit": UNIT,
                     "period_start": "2025-03-01", "period_end": "2025-03-31"}, **extra}


def replies(settings: Settings, want: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every reply on the replies topic (at least ``want``), in intake offset order."""
    c = KafkaConsumer(settings.intake_replies_topic, bootstrap_servers=settings.bootstrap,
                      group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=1000)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            for r in c:
                got.append(json.loads(r.value))
    finally:
        c.close()
    assert len(got) >= want, f"{len(got)} replies of {want}"
    return sorted(got, key=lambda b: (b["intake"]["partition"], b["intake"]["offset"]))


@pytest.fixture
def system(settings: Settings, workers: Workers) -> Iterator[System]:
    repo = init_database(settings)
    store = IngestStore(repo)
    tokens = {name: store.create_token(kind, party)[1] for name, kind, party in [
        ("manager", "manager", "mgr-a"), ("supplier", "supplier", "S01"),
        ("other", "supplier", "S02"), ("revoked", "supplier", "S01")]}
    revoked = store.principal(tokens["revoked"])
    assert not isinstance(revoked, str)
    assert store.revoke_token(revoked.token_id)
    workers.start()
    relay = InboxRelay(store, settings, redeliver=timedelta(seconds=2)).start()
    intake = build_intake(settings, repo).start()
    try:
        # the council's case system registers the contracts over the intake too, with
        # the manager's token (kafka-python, the project's own client)
        with EventPublisher(settings.bootstrap, settings.intake_topic,
                            token=tokens["manager"]) as pub:
            for cid in ("C-1", "C-2"):
                for e in contract_events(cid, "S01", "mgr-a")[:2]:  # registered, NT1 5000
                    pub.send(e)
        wait_until(lambda: repo.counts()["journal"] == 4, 90,
                   what="the two contracts registered through the intake")
        yield System(settings, repo, store, tokens, intake, workers)
    finally:
        intake.stop()
        relay.stop()
        repo.engine.dispose()


def test_a_supplier_integration_on_librdkafka_is_accepted_once_in_order(
        system: System) -> None:
    s = system
    tok = s.tokens["supplier"]
    sent: dict[str, list[str]] = {"C-1": [], "C-2": []}
    messages: list[tuple[str | None, object, str | None]] = []
    for i in range(12):
        cid = ("C-1", "C-2")[i % 2]
        msg = evidence(cid, f"E{i}", str(i + 1))
        if i == 4:  # the payload's actor may be given, if it is the token's
            msg["actor"] = "supplier:S01"
        messages.append((cid, msg, tok))
        sent[cid].append(f"evidence:E{i}")
    # the supplier retracts one piece and sends another one twice (a producer retry)
    messages.append(("C-1", {"type": "EvidenceRetracted", "contract_id": "C-1",
                             "data": {"evidence_id": "E2"}}, tok))
    sent["C-1"].append("retract:E2")
    messages.append(messages[1])
    s.produce(messages)
    got = replies(s.settings, len(messages) + 4)
    ours = [r for r in got if r["sender"] == "supplier:S01"]
    assert len(ours) == len(messages)
    assert all(r["status"] == "accepted" for r in ours), [r for r in ours
                                                          if r["status"] != "accepted"]
    again = [r for r in ours if r["receipt"]["event_id"] == "evidence:E1"]
    assert len(again) == 2 and again[0]["receipt"] == again[1]["receipt"]
    assert {r["key"] for r in ours} == {"C-1", "C-2"}
    assert all(isinstance(r["intake"]["offset"], int) for r in ours)
    wait_until(lambda: s.store.counts() == {"accepted": 4 + 13}, 120,
               what="all 13 supplier events settled")
    # counted once, E2 retracted; each contract's events in the order they were produced
    assert s.totals("C-1") == {"NT1": Decimal(1 + 5 + 7 + 9 + 11)}
    assert s.totals("C-2") == {"NT1": Decimal(2 + 4 + 6 + 8 + 10 + 12)}
    for cid, ids in sent.items():
        journal = [r["event_id"] for r in s.repo.journal_rows(contract_id=cid)][2:]
        assert journal == ids, cid
    rows = s.store.submissions(["C-1", "C-2"], limit=1000)
    assert {r["channel"] for r in rows if r["submitted_by"] == "supplier:S01"} == {"kafka"}
    assert s.repo.counts()["dead_letters"] == 0
    # read again from the start by another consumer group (a lost commit): the inbox
    # recognises every event id, nothing is stored or counted twice
    before = s.store.counts()
    other = build_intake(s.settings.with_(app_id=f"again-{uuid.uuid4().hex[:6]}"), s.repo)
    deadline = time.monotonic() + 60
    while other.handled < len(messages) + 4 and time.monotonic() < deadline:
        other.run_once()
    other._close()
    assert other.handled == len(messages) + 4 and other.accepted == other.handled
    assert s.store.counts() == before
    assert s.repo.counts()["journal"] == 4 + 13


def test_forged_messages_are_refused_back_to_the_sender_and_count_for_nothing(
        system: System) -> None:
    s = system
    inbox_before, journal_before = s.store.counts(), s.repo.counts()["journal"]
    t = s.tokens
    forged: list[tuple[str | None, object, str | None]] = [
        ("C-1", evidence("C-1", "F1", "100"), None),  # no header
        ("C-1", evidence("C-1", "F2", "100"), "svm_000000000000_garbled"),
        ("C-1", evidence("C-1", "F3", "100"), t["revoked"]),
        ("C-1", evidence("C-1", "F4", "100"), t["other"]),  # C-1 is S01's, not S02's
        ("C-1", {"type": "CommitmentMade", "contract_id": "C-1", "event_id": "F5",
                 "data": {"measure": "NT1", "target": "0.01"}}, t["supplier"]),
        ("C-1", {"type": "EvidenceVerified", "contract_id": "C-1", "event_id": "F6",
                 "data": {"evidence_id": "F1"}}, t["supplier"]),
        # a manager's name in the payload does not make the supplier a manager
        ("C-1", evidence("C-1", "F7", "100", actor="mgr-a"), t["supplier"]),
    ]
    s.produce(forged)
    got = [r for r in replies(s.settings, 4 + len(forged)) if r["status"] == "refused"]
    assert len(got) == len(forged)
    by_offset = sorted(got, key=lambda r: r["intake"]["offset"])
    errors = [(r["http_status"], r["error"]) for r in by_offset]
    assert errors == [(401, "unauthorized")] * 3 + [(403, "forbidden")] * 3 + \
        [(422, "invalid")], by_offset
    reasons = [r["message"] for r in by_offset]
    assert "Authorization" in reasons[0] and "unknown token" in reasons[1]
    assert "revoked" in reasons[2] and "not supplier S02's" in reasons[3]
    assert "only a manager may send CommitmentMade" in reasons[4]
    assert "only a manager may send EvidenceVerified" in reasons[5]
    assert by_offset[6]["field"] == "actor" and by_offset[6]["got"] == "'mgr-a'"
    assert [r["sender"] for r in by_offset] == [None] * 3 + ["supplier:S02"] + \
        ["supplier:S01"] * 3
    assert all(r["key"] == "C-1" for r in by_offset)
    # the intake committed past them and stored nothing; the worker saw nothing
    wait_until(lambda: s.intake.handled >= 4 + len(forged), 30, what="the intake's commit")
    time.sleep(1.0)
    assert s.store.counts() == inbox_before
    ids = {f"evidence:F{i}" for i in range(1, 8)} | {"F5", "F6"}
    assert not [r for r in s.store.submissions(["C-1"], limit=1000) if r["event_id"] in ids]
    assert s.repo.counts()["journal"] == journal_before
    assert not any(s.totals("C-1").values())


def test_a_record_on_the_wrong_partition_of_contract_events_is_dead_lettered(
        system: System) -> None:
    s = system
    cid = "C-1"
    right = partition_for(cid.encode(), s.settings.partitions)
    wrong = (right + 1) % s.settings.partitions
    e = contract_events(cid, "S01", "mgr-a")[3]  # valid evidence, actor supplier:S01
    p = s.producer()  # straight onto contract-events, as the old direct integration did
    p.produce(s.settings.events_topic, key=cid.encode(), value=encode_event(e),
              partition=wrong)
    assert p.flush(30) == 0
    wait_until(lambda: s.repo.counts()["dead_letters"] == 1, 90,
               what="the worker to dead-letter the record")
    [dl] = s.store.rejections([cid])
    assert dl["field"] == "partition" and dl["partition"] == wrong
    assert dl["event_id"] == e.event_id
    assert f"partition {right} of {s.settings.partitions}" in dl["reason"]
    assert f"partition {wrong}" in dl["reason"].split("got", 1)[1]
    assert not any(s.totals(cid).values())
    assert s.repo.journal_rows(event_id=e.event_id) == []


def test_the_supplier_client_sends_evidence_through_the_intake_and_gets_its_reply(
        system: System) -> None:
    s = system
    ok = submit_evidence(s.settings, s.tokens["supplier"], contract_id="C-2",
                         evidence_id="K1", measure="NT1", quantity="3", unit=UNIT,
                         period_start="2025-03-01", period_end="2025-03-31")
    assert ok["status"] == "accepted" and ok["sender"] == "supplier:S01", ok
    assert ok["receipt"]["event_id"] == "evidence:K1" and ok["key"] == "C-2"
    bad = submit_evidence(s.settings, s.tokens["supplier"], contract_id="C-2",
                          evidence_id="K2", measure="NT1", quantity="3", unit="hours",
                          period_start="2025-03-01", period_end="2025-03-31")
    assert bad["status"] == "refused" and bad["field"] == "unit", bad
    assert bad["http_status"] == 422 and "hours" in bad["got"]
    other = submit_evidence(s.settings, s.tokens["other"], contract_id="C-2",
                            evidence_id="K3", measure="NT1", quantity="3", unit=UNIT,
                            period_start="2025-03-01", period_end="2025-03-31")
    assert other["status"] == "refused" and other["http_status"] == 403, other
    wait_until(lambda: s.totals("C-2").get("NT1") == Decimal(3), 90,
               what="K1 counted through the intake")
    assert s.store.receipt("C-2", "evidence:K2") is None  # refused at the door
    assert s.repo.counts()["dead_letters"] == 0


def test_svmon_evidence_send_goes_through_the_intake_as_its_token_says(
        system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's direct path: the token (SVMON_TOKEN) decides who sends, the
    reply is printed, and a refusal names the field and exits 1."""
    from click.testing import CliRunner

    from svmon.cli import main

    s = system
    for k, v in s.settings.to_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SVMON_TOKEN", s.tokens["supplier"])
    args = ["evidence", "send", "--contract", "C-1", "--measure", "NT1",
            "--period", "2025-04-01..2025-04-30"]
    ok = CliRunner().invoke(main, [*args, "--evidence-id", "CLI1", "--quantity", "4",
                                   "--unit", UNIT])
    assert ok.exit_code == 0, ok.output
    assert "accepted evidence:CLI1 as supplier:S01" in ok.output
    bad = CliRunner().invoke(main, [*args, "--evidence-id", "CLI2", "--quantity", "4",
                                    "--unit", "hours"])
    assert bad.exit_code == 1 and "refused (422)" in bad.output and "unit" in bad.output
    monkeypatch.setenv("SVMON_TOKEN", s.tokens["other"])  # S02: not C-1's supplier
    other = CliRunner().invoke(main, [*args, "--evidence-id", "CLI3", "--quantity", "4",
                                      "--unit", UNIT])
    assert other.exit_code == 1 and "refused (403)" in other.output
    wait_until(lambda: s.totals("C-1").get("NT1") == Decimal(4), 90,
               what="CLI1 counted through the intake")
    assert s.store.receipt("C-1", "evidence:CLI2") is None
    assert s.store.receipt("C-1", "evidence:CLI3") is None


MANAGER_TYPES = ("ContractRegistered", "CommitmentMade", "MilestoneScheduled",
                 "EvidenceVerified", "EvidenceRejected")
SUPPLIER_TYPES = ("EvidenceSubmitted", "EvidenceRetracted")


def _data(type_name: str) -> dict[str, object]:
    """What each privileged event on C-1 carries (the rightful party's version)."""
    registered = json.loads(encode_event(contract_events("C-1", "S01", "mgr-a")[0]))["data"]
    return {
        "ContractRegistered": {**registered, "title": "Amended by its manager"},
        "CommitmentMade": {"measure": "NT1", "target": "7"},
        "MilestoneScheduled": {"milestone_id": "M1", "measure": "NT1", "due": "2025-06-30",
                               "cumulative_target": "2"},
        "EvidenceVerified": {"evidence_id": "EV"},
        "EvidenceRejected": {"evidence_id": "ER", "reason": "no timesheets"},
        "EvidenceSubmitted": {"evidence_id": "E9", "measure": "NT1", "quantity": "50",
                              "unit": UNIT, "period_start": "2025-04-01",
                              "period_end": "2025-04-30"},
        "EvidenceRetracted": {"evidence_id": "E9", "reason": "sent twice"},
        "ClockTicked": {"at": "2025-07-01T00:00:00+00:00"},
    }[type_name]


def _dead_letters(repo: Repository) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from svmon.models.tables import DeadLetterRow

    t = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with repo.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).order_by(t.c.id)).mappings()]


def test_every_privileged_event_forged_on_the_intake_or_the_log_counts_for_nothing(
        system: System) -> None:
    """Issue 21: each privileged type forged onto the intake (as the contract's own
    supplier or manager where the other kind is needed, as another supplier,
    unauthenticated) is answered with a refusal and stores nothing; forged onto the
    contract log itself (the ACLs' hole, if any) it is dead-lettered by the fold's
    authority check with its reason; the same events from the rightful party, under
    the very ids forged on the log, are accepted and counted."""
    s, t = system, system.tokens
    s.produce([("C-1", evidence("C-1", eid, "10"), t["supplier"]) for eid in ("EV", "ER")])
    wait_until(lambda: s.repo.counts()["journal"] == 6, 90, what="EV and ER journalled")
    inbox, journal = s.store.counts(), s.repo.counts()["journal"]
    kinds = [*MANAGER_TYPES, *SUPPLIER_TYPES, "ClockTicked"]
    # -- the intake: every type from each wrong sender
    forged: list[tuple[str | None, object, str | None]] = []
    expect: list[tuple[int, str | None]] = []
    for name in kinds:
        own = t["supplier"] if name in MANAGER_TYPES else t["manager"]
        for who, token in (("own", own), ("other", t["other"]), ("nobody", None)):
            forged.append(("C-1", {"type": name, "contract_id": "C-1", "data": _data(name),
                                   "event_id": f"intake:{name}:{who}"}, token))
            sender = None if token is None else \
                "supplier:S02" if who == "other" else \
                "supplier:S01" if own == t["supplier"] else "mgr-a"
            expect.append((401 if token is None else 403, sender))
    s.produce(forged)
    answered = replies(s.settings, 6 + len(forged))
    got = [r for r in answered if r["status"] != "accepted"]
    assert len(answered) == 6 + len(forged) and len(got) == len(forged), answered
    assert [(r["http_status"], r["sender"]) for r in got] == expect, got
    assert all(r["status"] == "refused" and r["message"] for r in got)
    assert s.store.counts() == inbox  # nothing stored
    # -- the contract log: every type with a wrong actor, under the rightful ids
    templates = {name: {"schema_version": 1, "type": name, "contract_id": "C-1",
                        "event_id": f"rightful:{name}",
                        "occurred_at": "2025-05-01T00:00:00+00:00", "data": _data(name)}
                 for name in kinds}
    wrong = {name: ["supplier:S01" if name in MANAGER_TYPES else "mgr-a", "supplier:S02",
                    "anonymous"] for name in kinds}
    wrong["ClockTicked"] = ["supplier:S01", "mgr-a", "anonymous"]
    with EventPublisher(s.settings.bootstrap, s.settings.events_topic) as pub:
        n_log = 0
        for name in kinds:
            for actor in wrong[name]:
                pub.send({**templates[name], "actor": actor})
                n_log += 1
    wait_until(lambda: s.repo.counts()["dead_letters"] == n_log, 90,
               what="every forged record dead-lettered")
    letters = _dead_letters(s.repo)
    assert {(d["event_id"], d["field"]) for d in letters} == \
        {(f"rightful:{name}", "actor") for name in kinds}
    assert all(d["reason"] and d["error"] == "RejectedEvent" for d in letters)
    assert s.repo.counts()["journal"] == journal
    assert s.totals("C-1") == {"NT1": Decimal(20)}  # EV and ER, nothing else
    # -- the rightful parties, through the intake, under the ids forged on the log
    rightful = [("C-1", {k: v for k, v in templates[name].items()
                         if k in ("type", "contract_id", "event_id", "data")},
                 t["manager"] if name in MANAGER_TYPES else t["supplier"])
                for name in kinds if name != "ClockTicked"]
    s.produce(rightful)
    wait_until(lambda: s.repo.counts()["journal"] == journal + len(rightful), 120,
               what="the rightful events journalled")
    ids = {r["event_id"] for r in s.repo.journal_rows(contract_id="C-1")}
    assert {f"rightful:{name}" for name in kinds if name != "ClockTicked"} <= ids
    assert not any(i.startswith("intake:") for i in ids)
    detail = s.store.contract_detail("C-1")
    [nt1] = detail["totals"]
    assert nt1["target"] == Decimal(7)
    status = {e["evidence_id"]: e["status"] for e in detail["evidence"]}
    assert status == {"EV": "verified", "ER": "rejected", "E9": "retracted"}, status
    assert nt1["verified"] == Decimal(10)  # EV alone
    assert s.repo.counts()["dead_letters"] == n_log
