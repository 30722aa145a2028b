"""Faults under load: the worker SIGKILLed again and again, the database stopped and
restarted, poison and duplicates mixed into the stream.

Each test ends with the same check: the database holds exactly what a replay of the
log gives (``tests.consistency.tally``): 0 lost, 0 duplicated, 0 wrong totals. The
figures are printed (run with ``pytest -s``) and summarised in docs/testing.md.

Sizes come from the environment so a soak can run bigger than CI:
``SVMON_FAULT_EVENTS`` (default 50,000) and ``SVMON_FAULT_KILLS`` (default 10).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from svmon import chaos
from svmon.api.server import build
from svmon.bootstrap import init_database
from svmon.core import events as ev
from svmon.demo import generate
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child, python_module
from svmon.models.ingest import IngestStore
from svmon.models.repository import Repository
from svmon.models.tables import DeadLetterRow
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics
from tests.conftest import ARTIFACTS, Workers, wait_until
from tests.consistency import journalled, tally
from tests.integration.test_ingest_broker import (
    free_port_of,
    healthy,
    own_broker_and_api,
    post_evidence,
    register_contracts,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(1800)]
TODAY = date(2026, 11, 1)
EVENTS = int(os.environ.get("SVMON_FAULT_EVENTS", "50000"))
KILLS = int(os.environ.get("SVMON_FAULT_KILLS", "10"))


def demo_log(n: int, seed: int) -> list[ev.ContractEvent]:
    """At least ``n`` events of the demo council (about 180 per contract), cut at ``n``:
    any prefix of a log is a valid log."""
    events = generate(seed=seed, today=TODAY, contracts=max(2, n // 150))
    assert len(events) >= n, f"the demo gave {len(events)} events, fewer than {n}"
    return events[:n]


class SteadyLoad(threading.Thread):
    """Publishes messages at a steady rate from a thread, as suppliers' clients would."""

    def __init__(self, settings: Settings, messages: Sequence[tuple[str | None, bytes]],
                 rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.messages, self.rate = settings, messages, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.last_offsets: dict[int, int] = {}  # partition -> last offset the broker acked

    @classmethod
    def of(cls, settings: Settings, events: Sequence[ev.ContractEvent],
           rate: float) -> SteadyLoad:
        return cls(settings, [(e.contract_id, encode_event(e)) for e in events], rate)

    def run(self) -> None:
        try:
            with EventPublisher(self.settings.bootstrap, self.settings.events_topic) as pub:
                t0 = time.monotonic()
                for i, (key, value) in enumerate(self.messages):
                    if i % 50 == 0:
                        time.sleep(max(0.0, t0 + i / self.rate - time.monotonic()))
                    pub.send_raw(key, value).add_callback(self._acked)
                    self.sent = i + 1
        except BaseException as err:  # re-raised in the test by finish()
            self.error = err

    def _acked(self, md: Any) -> None:
        self.last_offsets[md.partition] = max(md.offset,
                                              self.last_offsets.get(md.partition, -1))

    def finish(self, timeout: float = 600) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the load did not finish"
        if self.error:
            raise self.error


def _report(what: str, figures: dict[str, object]) -> None:
    """Print the figures, and keep them in test-artifacts/faults.txt for docs/testing.md."""
    line = f"{what}: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                                   for k, v in figures.items())
    print("\n" + line)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "faults.txt", "a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M')} {line}\n")


def _assert_exact(t: dict[str, int]) -> None:
    assert (t["lost"], t["duplicated"], t["wrong_totals"]) == (0, 0, 0), t
    assert t["journalled"] == t["sent"]


def test_worker_sigkilled_again_and_again_under_load(settings: Settings,
                                                     workers: Workers) -> None:
    """At least 10 SIGKILLs at random moments while 50,000 events flow; each time a new
    worker starts and carries on from the last committed batch."""
    events = demo_log(EVENTS, seed=21)
    repo = init_database(settings)
    rng = random.Random(7)
    load = SteadyLoad.of(settings, events, rate=EVENTS / (KILLS * 20.0))
    started = time.monotonic()
    child = workers.start()
    load.start()
    kills, at = 0, []
    while kills < KILLS:
        before = repo.counts()["journal"]
        # a kill only counts once the new worker has committed something of its own
        wait_until(lambda b=before: repo.counts()["journal"] > b, 180,
                   what=f"progress after restart {kills} (the load may have ended early)")
        time.sleep(rng.uniform(0.2, 4.0))
        child.kill()
        kills += 1
        at.append(repo.counts()["journal"])
        child = workers.start()
    load.finish()
    wait_until(lambda: repo.counts()["journal"] >= len(events), 600, what="catch-up")
    time.sleep(2)  # anything redelivered after the last commit must change nothing
    assert at[-1] < len(events), "the load was over before the last kill: not under load"
    t = tally(repo, events)
    _report("worker kills", {"events": len(events), "kills": kills,
                             "journalled at each kill": at, **t,
                             "seconds": round(time.monotonic() - started)})
    _assert_exact(t)


# --- the database stopped and restarted ----------------------------------------------

def _pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("initdb")
    return os.path.dirname(exe) if exe else None


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary folder, a free port),
    so the test can stop it without touching the machine's shared server. As root the
    server runs as the ``postgres`` user, which PostgreSQL requires."""

    def __init__(self, bindir: str) -> None:
        self.bindir, self.port = bindir, free_port()
        self.root = Path(tempfile.mkdtemp(prefix="svmon-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [os.path.join(self.bindir, tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                  "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash: no checkpoint, recovery from the WAL on start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    pg = PrivatePostgres(bindir)
    pg.start()
    yield pg
    pg.remove()


def test_database_stopped_and_restarted_under_load(broker: EmbeddedBroker,
                                                   private_pg: PrivatePostgres,
                                                   tmp_path: Path) -> None:
    """PostgreSQL crashes (immediate stop) for 15 s mid-load: the same worker process
    retries with backoff, acknowledges nothing meanwhile, and catches up. The HTTP API
    answers 503 with Retry-After meanwhile, and accepts the same request afterwards."""
    s = Settings(broker_url=broker.url, database_url=private_pg.url, data_dir=tmp_path,
                 app_id="svmon-pgfault", topic_prefix=f"pgf{free_port()}", partitions=4,
                 tick_seconds=3600.0, session_timeout=6.0)
    events = demo_log(min(EVENTS, 20_000), seed=22)
    repo = init_database(s)
    ensure_topics(s)
    w = Workers(s, tmp_path)
    try:
        worker = w.start()
        load = SteadyLoad.of(s, events, rate=len(events) / 40.0)
        load.start()
        wait_until(lambda: repo.counts()["journal"] > len(events) // 5, 180,
                   what="a fifth of the load")
        post = _evidence_poster(s, repo, events)
        private_pg.stop()
        down_at = load.sent
        refused = post("outage-1")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert "sending it again with the same ids is safe" in refused.json()["message"]
        time.sleep(15)
        private_pg.start()
        up_at = load.sent
        wait_until(lambda: post("outage-1").status_code == 202, 30,
                   what="the API to accept the same request again")
        load.finish()
        wait_until(lambda: repo.counts()["journal"] >= len(events), 300, what="catch-up")
        time.sleep(2)
        assert worker.alive, "the worker died instead of waiting for the database"
        log = (tmp_path / "worker-0.log").read_text(errors="replace")
        retries = log.count("database unavailable")
        assert retries > 0, "the worker never noticed the outage"
        t = tally(repo, events)
        _report("database outage", {"events": len(events), "outage s": 15,
                                    "sent while down": up_at - down_at,
                                    "retries logged": retries, **t})
        _assert_exact(t)
    finally:
        w.stop_all()


def _evidence_poster(s: Settings, repo: Repository,
                     events: Sequence[ev.ContractEvent]) -> Callable[[str], httpx.Response]:
    """POST one piece of evidence through the HTTP API (in process) as the supplier of
    the log's first contract."""
    reg = next(e for e in events if isinstance(e, ev.ContractRegistered))
    made = next(e for e in events
                if isinstance(e, ev.CommitmentMade) and e.contract_id == reg.contract_id)
    unit = repo.catalogue.measure(reg.catalogue_edition, made.measure).unit
    token = IngestStore(repo).create_token("supplier", reg.supplier_id)[1]
    client = TestClient(build(s, repo, relay=False))

    def post(evidence_id: str) -> httpx.Response:
        return client.post(f"/v1/contracts/{reg.contract_id}/evidence",
                           headers={"Authorization": f"Bearer {token}"},
                           json={"evidence_id": evidence_id, "measure": made.measure,
                                 "quantity": "1", "unit": unit,
                                 "period_start": "2025-06-01", "period_end": "2025-06-30"})
    return post


# --- poison and duplicates ---------------------------------------------------------

def test_poison_and_replayed_messages_mixed_into_a_load(settings: Settings,
                                                        workers: Workers) -> None:
    """1% poison (malformed, oversized, wrong version, bad values, wrong key) and 5%
    replayed duplicates among 20,000 good events: poison is dead-lettered with its
    field, duplicates change nothing, every good event counts once."""
    rng = random.Random(3)
    events = demo_log(min(EVENTS, 20_000), seed=23)
    messages, poison = chaos.mixed(events, rng, poison_share=0.01, duplicate_share=0.05)
    repo = init_database(settings)
    workers.start()
    load = SteadyLoad(settings, messages, rate=5_000)
    load.start()
    load.finish()
    wait_until(lambda: journalled(repo) >= len(events) + len(poison), 300,
               what="every message handled")
    time.sleep(2)
    t = tally(repo, events)
    with repo.engine.connect() as conn:
        letters = [r[0] for r in conn.execute(select(DeadLetterRow.__table__.c.field))]
    _report("poison and duplicates", {"good events": len(events),
                                      "duplicates": len(messages) - len(events) - len(poison),
                                      "poison": len(poison), "dead letters": len(letters),
                                      **t})
    _assert_exact(t)
    assert len(letters) == len(poison)
    assert sorted(letters) == sorted(f for _, _, f in poison)


# --- scale-out: workers join and leave during a load ----------------------------------

def _assigned(log: Path, topic: str) -> set[int] | None:
    """The partitions of ``topic`` in the worker's latest assignment (its log's table),
    or None before its first assignment."""
    text = log.read_text(errors="replace")
    block = text.rsplit("Setting newly assigned partitions", 1)
    if len(block) < 2:
        return None
    for line in block[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == topic:
            owned: set[int] = set()
            for part in cells[1].strip("{}").split(","):
                if part.strip():
                    lo, _, hi = part.strip().partition("-")
                    owned.update(range(int(lo), int(hi or lo) + 1))
            return owned
        if line.startswith("+") and "for group" in line:
            break
    return set()


def _owners_settled(live: Sequence[Child], topic: str, partitions: int) -> bool:
    """Every partition owned by exactly one live worker, and every live worker owns some."""
    owned = [_assigned(c.log_path, topic) for c in live]
    if any(not o for o in owned):
        return False
    flat = [p for o in owned for p in o or ()]
    return sorted(flat) == list(range(partitions))


def test_workers_join_and_leave_during_a_load(broker: EmbeddedBroker, database_url: str,
                                              tmp_path: Path) -> None:
    """Eight partitions; a second and a third worker join, then one leaves cleanly and
    one is SIGKILLed, all while events flow. After each change every partition has
    exactly one owner, and at the end nothing is lost or counted twice."""
    partitions = 8
    s = Settings(broker_url=broker.url, database_url=database_url, data_dir=tmp_path,
                 app_id=f"svmon-scale-{free_port()}", topic_prefix=f"scale{free_port()}",
                 partitions=partitions, tick_seconds=3600.0, session_timeout=6.0)
    events = demo_log(min(EVENTS, 30_000), seed=24)
    repo = init_database(s)
    ensure_topics(s)
    w = Workers(s, tmp_path)
    topic = s.events_topic
    steps: list[str] = []

    def settle(live: list[Child], what: str) -> None:
        wait_until(lambda: _owners_settled(live, topic, partitions), 120,
                   what=f"every partition owned once after {what}")
        shares = [sorted(_assigned(c.log_path, topic) or ()) for c in live]
        steps.append(f"{what}: {shares} at {repo.counts()['journal']:,} journalled")

    try:
        first = w.start()
        load = SteadyLoad.of(s, events, rate=len(events) / 90.0)
        load.start()
        settle([first], "1 worker")
        second = w.start()
        settle([first, second], "2nd joined")
        third = w.start()
        settle([first, second, third], "3rd joined")
        second.stop()  # a clean leave: SIGTERM, the worker leaves the group
        settle([first, third], "2nd left")
        third.kill()  # a crash: the group notices when its session times out
        settle([first], "3rd killed")
        in_flight = repo.counts()["journal"] < len(events)
        load.finish()
        wait_until(lambda: repo.counts()["journal"] >= len(events), 300, what="catch-up")
        time.sleep(2)
        wait_until(lambda: repo.positions(s.app_id, topic) == load.last_offsets, 60,
                   what="every partition's position at its end")
        t = tally(repo, events)
        _report("scale-out", {"events": len(events), "partitions": partitions, **t})
        print("\n".join(steps))
        assert in_flight, "the load was over before the last worker left"
        _assert_exact(t)
    finally:
        w.stop_all()


# --- the broker killed and restarted: every acknowledged event counted once -----------

def test_broker_sigkilled_while_suppliers_post(tmp_path: Path, database_url: str) -> None:
    """50,000 pieces of evidence posted through the HTTP API (uvicorn, its inbox relay)
    while the embedded broker is SIGKILLed three times. Each restart comes back empty
    (the broker keeps nothing); a worker that exits is restarted, as a deployment's
    restart policy would. Every event acknowledged with 202 is counted exactly once."""
    contracts = tuple(f"C-{n:02d}" for n in range(50))
    s, store, manager, supplier = own_broker_and_api(tmp_path, database_url, "bk", 5.0)
    repo, port = store.repo, free_port_of(s)
    brokers = [EmbeddedBroker(port=port, log_path=tmp_path / "broker-0.log").start()]
    ensure_topics(s)
    api = Child("api", python_module("svmon.cli", "api"), s.to_env(), tmp_path / "api.log")
    w = Workers(s, tmp_path)
    expected: dict[str, Decimal] = {}
    acked = [0]
    error: list[BaseException] = []

    def suppliers(client: httpx.Client) -> None:
        try:
            for first in range(0, EVENTS, 500):
                acked[0] += post_evidence(client, supplier, first, 500, 500, expected,
                                          contracts)
        except BaseException as err:  # re-raised below
            error.append(err)

    try:
        worker = w.start()
        client = httpx.Client(base_url=f"http://127.0.0.1:{s.api_port}", timeout=60)
        wait_until(lambda: healthy(client), 30, what="the API to listen")
        register_contracts(client, manager, contracts)
        poster = threading.Thread(target=suppliers, args=(client,), daemon=True)
        poster.start()
        kills: list[int] = []
        for n in range(1, 4):
            wait_until(lambda k=len(kills): acked[0] >= EVENTS * (k + 1) // 4 or error,
                       300, what="more evidence acknowledged")
            brokers[-1].kill()
            kills.append(acked[0])
            time.sleep(3)
            brokers.append(EmbeddedBroker(port=port,
                                          log_path=tmp_path / f"broker-{n}.log").start())
            ensure_topics(s)
            if not worker.alive:
                worker = w.start()
        poster.join(600)
        assert not error, error
        total = acked[0] + 2 * len(contracts)

        def settled() -> bool:
            nonlocal worker
            if not worker.alive:  # the restart policy
                worker = w.start()
            return store.counts() == {"accepted": total}

        wait_until(settled, 900, every=2, what=f"all {total:,} acknowledged events settled")
        detail = {cid: store.contract_detail(cid)["totals"][0]["claimed"]
                  for cid in contracts}
        keys = [(r["contract_id"], r["event_id"]) for r in repo.journal_rows()]
        figures = {"acknowledged": acked[0], "broker kills": len(kills),
                   "acknowledged at each kill": kills, "worker restarts": len(w.children) - 1,
                   "journalled": len(keys) - 2 * len(contracts),
                   "lost": total - len(set(keys)),
                   "duplicated": sum(detail[c] > expected[c] for c in contracts),
                   "wrong totals": sum(detail[c] != expected[c] for c in contracts)}
        _report("broker kills", figures)
        assert acked[0] == EVENTS
        assert (figures["lost"], figures["duplicated"], figures["wrong totals"]) == (0, 0, 0)
        assert repo.counts()["dead_letters"] == 0
    finally:
        api.stop()
        w.stop_all()
        brokers[-1].stop()
