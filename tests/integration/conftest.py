"""Fixtures of the HTTP API tests: a real database, the real app, real tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from svmon.api.server import build
from svmon.bootstrap import init_database
from svmon.core import events as ev
from svmon.core.state import ContractState
from svmon.models.ingest import IngestStore
from svmon.models.repository import Repository
from svmon.settings import Settings
from tests.helpers import drain_inbox, feed

T0 = datetime(2025, 1, 2, 9, tzinfo=UTC)


def contract_events(cid: str, supplier: str, manager: str) -> list[ev.ContractEvent]:
    """A registered contract with a commitment and one piece of evidence submitted."""
    return [
        ev.ContractRegistered(
            event_id=f"{cid}:registered", contract_id=cid, occurred_at=T0, actor=manager,
            title=f"Contract {cid}", buyer="Borsetshire CC", buyer_department="Highways",
            supplier_id=supplier, supplier_name=f"Supplier {supplier}",
            start=datetime(2025, 1, 1).date(), end=datetime(2027, 12, 31).date(),
            value_gbp=Decimal("2500000"), catalogue_edition="DEMO-2025", manager=manager),
        ev.CommitmentMade(event_id=f"{cid}:commit:NT1", contract_id=cid, occurred_at=T0,
                          actor=manager, measure="NT1", target=Decimal(20)),
        ev.CommitmentMade(event_id=f"{cid}:commit:L-VOL", contract_id=cid, occurred_at=T0,
                          actor=manager, measure="L-VOL", target=Decimal(500)),
        ev.EvidenceSubmitted(
            event_id=f"{cid}:E1", contract_id=cid, occurred_at=datetime(2025, 2, 5, tzinfo=UTC),
            actor=f"supplier:{supplier}", evidence_id="E1", measure="NT1",
            quantity=Decimal(2), period_start=datetime(2025, 1, 1).date(),
            period_end=datetime(2025, 1, 31).date()),
    ]


@dataclass
class Api:
    client: TestClient
    repo: Repository
    store: IngestStore
    tokens: dict[str, str]
    states: dict[str, ContractState] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}

    def post(self, who: str, url: str, body: object = None, **kw: object) -> object:
        return self.client.post(url, headers=self.headers(who), json=body, **kw)

    def settle(self) -> int:
        """Run what the worker does with the inbox (minus Kafka); returns events folded."""
        return drain_inbox(self.repo, self.store, self.states)

    def totals(self, cid: str) -> dict[str, tuple[Decimal, Decimal]]:
        return {m["measure"]: (m["claimed"], m["verified"])
                for m in self.store.contract_detail(cid)["totals"]}


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    repo = init_database(settings)
    states: dict[str, ContractState] = {}
    feed(repo, contract_events("C-A", "S01", "mgr-a") + contract_events("C-B", "S02", "mgr-b"),
         store=states)
    app = build(settings, repo, relay=False)
    store: IngestStore = app.state.service.store
    tokens = {name: store.create_token(kind, party)[1] for name, kind, party in [
        ("supplier-a", "supplier", "S01"), ("supplier-b", "supplier", "S02"),
        ("manager-a", "manager", "mgr-a"), ("manager-b", "manager", "mgr-b"),
        ("revoked", "supplier", "S01")]}
    revoked_id = next(t["token_id"] for t in store.tokens() if t["party"] == "S01"
                      and t["created_at"] == max(x["created_at"] for x in store.tokens()))
    store.revoke_token(revoked_id)
    tokens["bad"] = "svm_000000000000_not-a-real-token"
    with TestClient(app) as client:
        yield Api(client, repo, store, tokens, states)
    repo.engine.dispose()
