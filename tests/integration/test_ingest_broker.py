"""Ingestion end to end: the HTTP API served by uvicorn, its inbox relay, the real
embedded broker and real worker processes.

"Acknowledged means durable": events acknowledged with 202 while the broker is down,
or while the worker is dead, are all counted exactly once after both come back, even
though the restarted broker remembers nothing.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from svmon.api.server import build
from svmon.bootstrap import init_database
from svmon.cli import main
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child, python_module
from svmon.models.ingest import IngestStore
from svmon.settings import Settings
from svmon.streams.client import publish, send_evidence
from svmon.streams.topics import ensure_topics
from tests.conftest import Workers, wait_until
from tests.integration.conftest import contract_events

pytestmark = [pytest.mark.broker, pytest.mark.slow]
CONTRACTS = ("C-0", "C-1", "C-2")


def register_contracts(client: httpx.Client, manager: str,
                       contracts: tuple[str, ...] = CONTRACTS) -> None:
    """Register contracts with one NT1 commitment each, through the API."""
    for cid in contracts:
        r = client.post("/v1/contracts", headers={"Authorization": f"Bearer {manager}"}, json={
            "contract_id": cid, "title": f"Contract {cid}", "buyer": "Borsetshire CC",
            "supplier_id": "S01", "supplier_name": "Northgate", "start": "2025-01-01",
            "end": "2027-12-31", "value_gbp": "1000000", "catalogue_edition": "DEMO-2025",
            "manager": "mgr-a"})
        assert r.status_code == 202, r.text
        r = client.post(f"/v1/contracts/{cid}/commitments",
                        headers={"Authorization": f"Bearer {manager}"},
                        json={"measure": "NT1", "target": "5000"})
        assert r.status_code == 202, r.text


def post_evidence(client: httpx.Client, token: str, first: int, count: int, batch: int,
                  expected: dict[str, Decimal], contracts: tuple[str, ...] = CONTRACTS) -> int:
    """Post evidence E<first>.. spread over ``contracts``, adding each quantity to
    ``expected``; returns how many were acknowledged with 202."""
    acked = 0
    h = {"Authorization": f"Bearer {token}"}
    for start in range(first, first + count, batch):
        items = []
        for i in range(start, min(start + batch, first + count)):
            q = Decimal(i % 7 + 1) / 4
            items.append({"contract_id": contracts[i % len(contracts)], "evidence_id": f"E{i}",
                          "measure": "NT1", "quantity": str(q), "unit": "no. people FTE",
                          "period_start": "2025-03-01", "period_end": "2025-03-31"})
        if batch == 1:
            body = {k: v for k, v in items[0].items() if k != "contract_id"}
            r = client.post(f"/v1/contracts/{items[0]['contract_id']}/evidence", headers=h,
                            json=body)
        else:
            r = client.post("/v1/evidence", headers=h, json={"items": items})
        assert r.status_code == 202, r.text
        for it in items:
            expected[it["contract_id"]] = expected.get(it["contract_id"], Decimal(0)) \
                + Decimal(it["quantity"])
            acked += 1
    return acked


def own_broker_and_api(tmp_path: Path, database_url: str, tag: str, redeliver_seconds: float
                       ) -> tuple[Settings, IngestStore, str, str]:
    """Settings for a broker of the test's own (it will be stopped) and the API on free
    ports, a fresh database, and a manager's and a supplier's token."""
    s = Settings(broker_url=f"kafka://127.0.0.1:{free_port()}", database_url=database_url,
                 data_dir=tmp_path, app_id=f"svmon-{tag}", topic_prefix=tag, partitions=4,
                 tick_seconds=3600.0, session_timeout=6.0, api_port=free_port(),
                 redeliver_seconds=redeliver_seconds)
    store = IngestStore(init_database(s))
    return (s, store, store.create_token("manager", "mgr-a")[1],
            store.create_token("supplier", "S01")[1])


def free_port_of(s: Settings) -> int:
    return int(s.bootstrap.rsplit(":", 1)[1])


def test_acknowledged_events_survive_broker_and_worker_restarts(tmp_path: Path,
                                                                 database_url: str) -> None:
    s, store, manager, supplier = own_broker_and_api(tmp_path, database_url, "ingest", 2.0)
    repo = store.repo
    port = free_port_of(s)
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker-1.log").start()
    ensure_topics(s)
    api = Child("api", python_module("svmon.cli", "api"), s.to_env(), tmp_path / "api.log")
    workers = Workers(s, tmp_path)
    expected: dict[str, Decimal] = {}
    try:
        worker = workers.start()
        client = httpx.Client(base_url=f"http://127.0.0.1:{s.api_port}", timeout=30)
        wait_until(lambda: healthy(client), 30, what="the API to listen")
        register_contracts(client, manager)
        acked = post_evidence(client, supplier, 0, 60, 1, expected)  # single posts
        acked += post_evidence(client, supplier, 60, 140, 20, expected)  # batches
        # the broker loses its memory and the worker dies, mid-stream
        broker.stop()
        worker.kill()
        acked += post_evidence(client, supplier, 200, 100, 25, expected)  # acknowledged meanwhile
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker-2.log").start()
        ensure_topics(s)
        workers.start()
        acked += post_evidence(client, supplier, 300, 100, 1, expected)
        total = acked + 2 * len(CONTRACTS)
        wait_until(lambda: store.counts() == {"accepted": total}, 240,
                   what=f"all {total} acknowledged events settled")
        counts = repo.counts()
        assert counts["journal"] == total and counts["dead_letters"] == 0
        totals = {cid: store.contract_detail(cid)["totals"][0] for cid in CONTRACTS}
        for cid in CONTRACTS:
            assert totals[cid]["claimed"] == expected[cid], cid
        keys = [(r["contract_id"], r["event_id"]) for r in repo.journal_rows()]
        assert len(keys) == len(set(keys)) == total
        print(f"\n{acked} evidence events acknowledged (100 while the broker was down and "
              f"the worker dead), {counts['journal'] - 2 * len(CONTRACTS)} journalled, "
              f"0 lost, 0 duplicated")
    finally:
        api.stop()
        workers.stop_all()
        broker.stop()


def healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/v1/health").status_code == 200
    except httpx.HTTPError:
        return False


def test_kafka_client_rejects_are_visible_to_the_supplier(settings: Settings,
                                                          workers: Workers,
                                                          monkeypatch: Any) -> None:
    """Evidence sent straight to the topic is checked by the stream with the API's rules;
    a refusal is a dead letter the supplier can list, by API and command line."""
    repo = init_database(settings)
    workers.start()
    publish(contract_events("C-K", "S07", "mgr-k")[:3], settings)
    send_evidence(settings, contract_id="C-K", supplier="S07", evidence_id="K1",
                  measure="NT1", quantity="2", unit="no. people FTE",
                  period_start="2025-03-01", period_end="2025-03-31")
    send_evidence(settings, contract_id="C-K", supplier="S07", evidence_id="K2",
                  measure="NT1", quantity="40", unit="hours",
                  period_start="2025-03-01", period_end="2025-03-31")
    send_evidence(settings, contract_id="C-K", supplier="S07", evidence_id="K3",
                  measure="NT1", quantity="1", period_start="2024-01-01",
                  period_end="2024-01-31")
    for k, v in settings.to_env().items():
        monkeypatch.setenv(k, v)
    wait_until(lambda: repo.counts()["journal"] + repo.counts()["dead_letters"] >= 6, 90,
               what="the stream to decide all six events")
    app = build(settings, repo, relay=False)
    token = app.state.service.store.create_token("supplier", "S07")[1]
    with TestClient(app) as client:
        r = client.get("/v1/rejections", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    got = {x["event_id"]: x["field"] for x in r.json()}
    assert got == {"evidence:K2": "unit", "evidence:K3": "period"}
    out = CliRunner().invoke(main, ["evidence", "rejections", "--supplier", "S07"])
    assert "evidence:K2" in out.output and "'unit' must be the unit of measure NT1" \
        in out.output and "2 rejections" in out.output
    nt1 = next(t for t in IngestStore(repo).contract_detail("C-K")["totals"]
               if t["measure"] == "NT1")
    assert nt1["claimed"] == Decimal(2)  # only K1 counts
