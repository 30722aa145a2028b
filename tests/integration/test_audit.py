"""The auditor's replay: tamper evidence, as-of replay, verification, reports.

The journal is filled through the live code path minus Kafka (``svmon.streams.processor``
plus ``Repository.apply_batch``) on SQLite and PostgreSQL; one test replays from the
real topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from svmon.audit.chain import verify_chains
from svmon.audit.replay import (
    compare,
    event_from_record,
    rebuild,
    rebuild_from_topic,
    topic_events,
)
from svmon.bootstrap import init_database, repository
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState
from svmon.demo import generate
from svmon.models.repository import Repository
from svmon.models.tables import JournalEntry
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import publish
from svmon.streams.processor import Record, process
from tests.conftest import Workers, wait_until
from tests.helpers import feed
from tests.unit.test_properties import two_contracts

TODAY = date(2026, 11, 1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(settings_db: Settings) -> Repository:
    return init_database(settings_db)


@pytest.fixture
def settings_db(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path)


def _verify(repo: Repository) -> list[str]:
    return [str(b) for b in verify_chains(repo.chain_rows(), repo.chain_heads())]


def test_intact_journal_verifies_and_matches_live(repo: Repository) -> None:
    events = generate(seed=21, today=TODAY, contracts=6)
    feed(repo, events)
    assert _verify(repo) == []
    rebuilt = rebuild(repo.journal_events(), repo.catalogue)
    assert rebuilt.events == len(events) and rebuilt.rejected == 0
    assert compare(rebuilt, repo.live_totals(), repo.expected_totals(rebuilt.states.values()),
                   repo.open_alert_identities()) == []


def _row(repo: Repository, n: int) -> Any:
    j = JournalEntry.__table__
    with repo.engine.connect() as conn:
        return conn.execute(select(j).order_by(j.c.seq).offset(n).limit(1)).mappings().one()


def test_altered_row_is_named(repo: Repository) -> None:
    feed(repo, generate(seed=22, today=TODAY, contracts=3))
    victim = _row(repo, 40)
    payload = json.loads(victim["payload"])
    payload["actor"] = "someone-else"
    j = JournalEntry.__table__
    with repo.engine.begin() as conn:
        conn.execute(update(j).where(j.c.seq == victim["seq"])
                     .values(payload=json.dumps(payload)))
    breaks = _verify(repo)
    assert breaks == [f"{victim['contract_id']} #{victim['chain_seq']} "
                      f"({victim['event_id']}): altered"]


def test_deleted_row_is_named(repo: Repository) -> None:
    feed(repo, generate(seed=23, today=TODAY, contracts=3))
    victim = _row(repo, 25)
    j = JournalEntry.__table__
    with repo.engine.begin() as conn:
        conn.execute(j.delete().where(j.c.seq == victim["seq"]))
    breaks = _verify(repo)
    assert f"{victim['contract_id']} #{victim['chain_seq']} (no event): missing" in breaks
    assert len(breaks) == 1


def test_deleted_tail_is_named(repo: Repository) -> None:
    feed(repo, generate(seed=24, today=TODAY, contracts=2))
    j = JournalEntry.__table__
    with repo.engine.begin() as conn:
        last = conn.execute(select(j.c.seq, j.c.contract_id, j.c.chain_seq)
                            .order_by(j.c.seq.desc()).limit(1)).one()
        conn.execute(j.delete().where(j.c.seq == last.seq))
    assert _verify(repo) == [f"{last.contract_id} #{last.chain_seq} (no event): truncated"]


def test_reordered_rows_are_named(repo: Repository) -> None:
    feed(repo, generate(seed=25, today=TODAY, contracts=1))
    a, b = _row(repo, 10), _row(repo, 11)
    assert a["contract_id"] == b["contract_id"]
    j = JournalEntry.__table__
    with repo.engine.begin() as conn:  # swap their places in the journal's order
        conn.execute(update(j).where(j.c.seq == a["seq"]).values(seq=-1))
        conn.execute(update(j).where(j.c.seq == b["seq"]).values(seq=a["seq"]))
        conn.execute(update(j).where(j.c.seq == -1).values(seq=b["seq"]))
    breaks = _verify(repo)
    assert f"{a['contract_id']} #{a['chain_seq']} ({a['event_id']}): reordered" in breaks


def test_replay_names_a_projection_that_was_changed(repo: Repository) -> None:
    feed(repo, generate(seed=26, today=TODAY, contracts=2))
    with repo.engine.begin() as conn:
        conn.execute(text("UPDATE measure_total SET verified = '999' "
                          "WHERE contract_id = 'C-002'"))
    rebuilt = rebuild(repo.journal_events(), repo.catalogue)
    mismatches = compare(rebuilt, repo.live_totals(),
                         repo.expected_totals(rebuilt.states.values()),
                         repo.open_alert_identities())
    assert mismatches and all(m.contract_id == "C-002" and m.what == "verified"
                              for m in mismatches)
    assert {m.measure for m in mismatches} == {
        m for (c, m) in repo.live_totals() if c == "C-002"}


@hsettings(max_examples=8, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), contracts=st.integers(1, 3), batch=st.integers(7, 400),
       cut=st.floats(0, 1))
def test_as_of_equals_live_state_at_that_moment(tmp_path: Path, seed: int, contracts: int,
                                                batch: int, cut: float) -> None:
    """Replay --as-of t gives exactly the live figures after the events recorded by t."""
    db = tmp_path / f"asof-{uuid.uuid4().hex}.db"
    repo = init_database(Settings(database_url=f"sqlite:///{db}", data_dir=tmp_path))
    events = generate(seed=seed, today=TODAY, contracts=contracts)
    k = int(len(events) * cut) // batch * batch  # a batch boundary
    times = feed(repo, events[:k], batch=batch) if k else []
    live_then = repo.live_totals()
    alerts_then = repo.open_alert_identities()
    feed(repo, events[k:], batch=batch, start=times[-1] if times else None)
    as_of = times[-1] if times else datetime(2025, 1, 1, tzinfo=UTC)
    rebuilt = rebuild(repo.journal_events(until=as_of), repo.catalogue)
    assert rebuilt.events == k
    assert compare(rebuilt, live_then, repo.expected_totals(rebuilt.states.values()),
                   alerts_then) == []


@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(logs=two_contracts(), data=st.data())
def test_topic_journal_and_live_agree_on_random_logs(tmp_path: Path, logs: Any,
                                                     data: st.DataObject) -> None:
    """Random logs with duplicates and bad records mixed in: the live path (processor +
    repository, in random batches), a replay of the raw records as the topic holds them,
    and a replay of the journal all give the same state, derived facts and alerts."""
    _, _, log = logs
    records: list[tuple[bytes | None, bytes]] = []
    for e in log:
        records.append((e.contract_id.encode(), encode_event(e)))
        if data.draw(st.booleans(), label="duplicate"):
            records.append((e.contract_id.encode(), encode_event(e)))
        if data.draw(st.integers(0, 9), label="noise") == 0:
            records.append((e.contract_id.encode(), b'{"schema_version": 1, "type": 7}'))
    db = tmp_path / f"agree-{uuid.uuid4().hex}.db"
    repo = init_database(Settings(database_url=f"sqlite:///{db}", data_dir=tmp_path))
    store: dict[str, ContractState] = {}
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(records) - 1)),
                                         max_size=6), label="cuts")))
    bounds = [0, *cuts, len(records)]
    for lo, hi in pairwise(bounds):
        recs = [Record("t", 0, i, k, v) for i, (k, v) in enumerate(records[lo:hi], start=lo)]
        keys = [key_of(x) for x in (event_from_record(r.key, r.value) for r in recs) if x]
        b = process(recs, store.get, repo.catalogue, "test", gate=repo.seed_gate(keys))
        repo.apply_batch(b)
        store.update(b.states)
    from_topic = rebuild((event_from_record(k, v) for k, v in records), repo.catalogue)
    from_journal = rebuild(repo.journal_events(), repo.catalogue)
    assert from_topic.states == from_journal.states == {c: s for c, s in store.items()}
    assert sorted(d.derived_id for d in from_topic.derived) == \
        sorted(d.derived_id for d in from_journal.derived)
    assert compare(from_topic, repo.live_totals(),
                   repo.expected_totals(from_topic.states.values()),
                   repo.open_alert_identities()) == []


def test_cli_verify_exits_non_zero_on_tamper(tmp_path: Path, database_url: str) -> None:
    s = Settings(database_url=database_url, data_dir=tmp_path)
    repo = init_database(s)
    feed(repo, generate(seed=27, today=TODAY, contracts=2))
    env = {**os.environ, "DATABASE_URL": s.database_url, "SVMON_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "svmon.cli", "replay", *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    ok = run("--verify", "--report", str(tmp_path / "rep"))
    assert ok.returncode == 0, ok.stderr
    assert "every figure matches" in ok.stdout
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["verification"]["ok"] is True
    ev0 = report["contracts"][0]["measures"][0]["evidence"][0]
    assert ev0["submitted_by"].startswith("supplier:") and ev0["events"]
    assert (tmp_path / "rep" / "report.html").read_text().count("<table>") == 2
    victim = _row(repo, 5)
    j = JournalEntry.__table__
    with repo.engine.begin() as conn:
        conn.execute(update(j).where(j.c.seq == victim["seq"]).values(actor="mallory"))
    bad = run("--verify")
    assert bad.returncode == 1
    assert f"{victim['event_id']}): altered" in bad.stderr


@pytest.mark.broker
@pytest.mark.slow
def test_replay_from_topic_agrees_with_journal_and_live(settings: Settings,
                                                        workers: Workers) -> None:
    events = generate(seed=28, today=TODAY, contracts=5)
    repo = repository(settings)
    workers.start()
    publish(events, settings)
    wait_until(lambda: repo.counts()["journal"] >= len(events), 120, what="journal")
    from_topic = rebuild(topic_events(settings.bootstrap, settings.events_topic),
                         repo.catalogue)
    from_journal = rebuild(repo.journal_events(), repo.catalogue)
    assert from_topic.states == from_journal.states
    in_parallel = rebuild_from_topic(settings.bootstrap, settings.events_topic,
                                     repo.catalogue, processes=2)  # two groups of partitions
    assert in_parallel.states == from_topic.states and in_parallel.events == len(events)
    assert sorted(d.derived_id for d in in_parallel.derived) == \
        sorted(d.derived_id for d in from_topic.derived)
    assert in_parallel.open_alerts() == from_topic.open_alerts()
    assert sorted(d.derived_id for d in from_topic.derived) == \
        sorted(d.derived_id for d in from_journal.derived)
    assert compare(from_topic, repo.live_totals(),
                   repo.expected_totals(from_topic.states.values()),
                   repo.open_alert_identities()) == []
    # The scan ends at the high watermark the fetches report, not on idle polls: with
    # an idle rule that never fires it still ends, having read every record.
    read: list[int] = []
    scan = threading.Thread(target=lambda: read.append(sum(1 for _ in topic_events(
        settings.bootstrap, settings.events_topic, idle_polls=10**9, poll_ms=50))),
        daemon=True)
    scan.start()
    scan.join(60)
    assert read == [len(events)]
