"""End to end on the real embedded broker, a real database and real worker processes.

Each test compares what the worker wrote to the database with the pure fold of the
same log: the live run and a replay must agree to the penny.
"""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from svmon.bootstrap import init_database, repository
from svmon.core import events as ev
from svmon.demo import generate
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher, publish
from svmon.streams.topics import ensure_topics
from tests.conftest import Workers, wait_until
from tests.consistency import assert_matches_fold, journalled

pytestmark = [pytest.mark.broker, pytest.mark.slow]
TODAY = date(2026, 11, 1)


def test_events_in_exact_totals_out(settings: Settings, workers: Workers) -> None:
    events = generate(seed=3, today=TODAY, contracts=8)
    repo = repository(settings)
    workers.start()
    publish(events, settings)
    wait_until(lambda: journalled(repo) >= len(events), 120, what="all events journalled")
    assert_matches_fold(repo, events)
    report = repo.report()
    assert report["summary"]["open_alerts"] > 0  # the demo's laggards raise alerts
    assert repo.counts()["dead_letters"] == 0


def test_same_event_three_times_counts_once(settings: Settings, workers: Workers) -> None:
    events = generate(seed=5, today=TODAY, contracts=4)
    repo = repository(settings)
    with EventPublisher(settings.bootstrap, settings.events_topic) as pub:
        for e in events:
            for _ in range(3):  # a client retrying: the same event, three times in a row
                pub.send(e)
        for e in events:  # and the whole log once more, much later
            pub.send(e)
    workers.start()
    n = len(events)
    wait_until(lambda: repo.counts()["journal"] >= n, 120, what="journal complete")
    time.sleep(3)  # let the redelivered tail through: nothing more may be counted
    assert_matches_fold(repo, events)


def test_worker_killed_and_restarted_mid_stream(settings: Settings, workers: Workers) -> None:
    events = generate(seed=11, today=TODAY, contracts=24)
    repo = repository(settings)
    half = len(events) // 2
    first = workers.start()
    # Only half the log is published before the kill, so the worker cannot finish first
    # however fast it runs (a fast run once consumed all 4,275 events before the poll).
    publish(events[:half], settings)
    wait_until(lambda: repo.counts()["journal"] > half // 2, 120, what="a quarter done")
    first.kill()  # SIGKILL: no chance to commit offsets or flush anything
    publish(events[half:], settings)
    workers.start()
    wait_until(lambda: repo.counts()["journal"] >= len(events), 180, what="catch-up")
    time.sleep(2)
    assert_matches_fold(repo, events)


def _dead_letters(settings: Settings, want: int, timeout: float = 60) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    tp = TopicPartition(settings.dead_letter_topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in records)
    finally:
        consumer.close()
    return out


def test_bad_input_goes_to_dead_letter_and_stream_continues(settings: Settings,
                                                           workers: Workers) -> None:
    good = generate(seed=2, today=TODAY, contracts=2)
    cid = good[0].contract_id
    ok = json.loads(encode_event(next(e for e in good if isinstance(e, ev.EvidenceSubmitted))))

    def variant(**changes: Any) -> bytes:
        body = json.loads(json.dumps(ok))
        data = changes.pop("data", {})
        body.update(changes)
        body["data"].update(data)
        body["event_id"] = body["data"]["evidence_id"] = f"bad-{len(bad)}"
        return json.dumps(body).encode()

    bad: list[tuple[str | None, bytes, str]] = []
    for key, value, field in [
        (cid, b"{not json", "message"),
        (cid, variant(data={"measure": "NO-SUCH-MEASURE"}), "measure"),
        (cid, variant(data={"quantity": "-5"}), "data.quantity"),
        (cid, variant(data={"quantity": "NaN"}), "data.quantity"),
        (cid, b'{"schema_version": 1, "quantity": NaN}', "message"),
        (cid, variant(schema_version=99), "schema_version"),
        ("C-404", variant(contract_id="C-404"), "contract_id"),
        ("C-001-wrong-key", variant(), "key"),
    ]:
        bad.append((key, value, field))
    repo = repository(settings)
    with EventPublisher(settings.bootstrap, settings.events_topic) as pub:
        half = len(good) // 2
        for e in good[:half]:
            pub.send(e)
        for key, value, _ in bad:
            pub.send_raw(key, value)
        for e in good[half:]:
            pub.send(e)
    workers.start()
    wait_until(lambda: journalled(repo) >= len(good) + len(bad), 120, what="all handled")
    assert_matches_fold(repo, good)  # the good events after the bad ones still counted
    letters = _dead_letters(settings, len(bad))
    assert len(letters) == len(bad)
    by_offset = sorted(letters, key=lambda d: (d["partition"], d["offset"]))
    fields = sorted(d["field"] for d in by_offset)
    assert fields == sorted(f for _, _, f in bad)
    for d in letters:
        assert d["topic"] == settings.events_topic
        assert isinstance(d["offset"], int) and isinstance(d["partition"], int)
        assert d["reason"] and d["field"] in d["reason"]
    assert repo.counts()["dead_letters"] == len(bad)


def test_broker_memory_lost_then_log_republished(tmp_path: Any, database_url: str) -> None:
    """The embedded broker forgets everything on restart; the journal does not.

    A worker folds part of the log; broker and worker stop; a new, empty broker comes
    up and the whole log is sent again (as an outbox relay would). The new worker
    rebuilds each contract's state from the journal, so nothing is counted twice.
    """
    port = free_port()
    s = Settings(broker_url=f"kafka://127.0.0.1:{port}", database_url=database_url,
                 data_dir=tmp_path, app_id="svmon-lost", topic_prefix="lost", partitions=4,
                 tick_seconds=3600.0, session_timeout=6.0)
    events = generate(seed=13, today=TODAY, contracts=6)
    repo = init_database(s)
    w = Workers(s, tmp_path)
    try:
        with EmbeddedBroker(port=port, log_path=tmp_path / "broker1.log"):
            ensure_topics(s)
            w.start()
            publish(events[: len(events) // 2], s)
            wait_until(lambda: repo.counts()["journal"] >= len(events) // 2, 120,
                       what="first half")
            w.stop_all()
        with EmbeddedBroker(port=port, log_path=tmp_path / "broker2.log"):
            ensure_topics(s)
            w.start()
            publish(events, s)
            wait_until(lambda: repo.counts()["journal"] >= len(events), 120, what="all")
            time.sleep(2)
            assert_matches_fold(repo, events)
            w.stop_all()
    finally:
        w.stop_all()
