"""The HTTP API against a real database (SQLite, and PostgreSQL where reachable).

Who may do what, how bad input is refused, what a retry does, and the review
workflow from submission to verified totals. The worker's part is played by
``Api.settle``, which runs the inbox through the worker's own code path without Kafka
(the broker tests in test_ingest_broker.py run the real thing).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from svmon.api.server import build_service
from svmon.cli import main
from svmon.settings import Settings
from tests.integration.conftest import Api

TODAY = datetime.now(UTC).date()
LAST_MONTH_END = TODAY.replace(day=1) - timedelta(days=1)
LAST_MONTH = (LAST_MONTH_END.replace(day=1).isoformat(), LAST_MONTH_END.isoformat())


def evidence(evidence_id: str = "E9", quantity: Any = "3", measure: str = "NT1",
             unit: str = "no. people FTE", **kw: Any) -> dict[str, Any]:
    return {"evidence_id": evidence_id, "measure": measure, "quantity": quantity,
            "unit": unit, "period_start": LAST_MONTH[0], "period_end": LAST_MONTH[1], **kw}


CSV_HEADER = "contract_id,evidence_id,measure,quantity,unit,period_start,period_end\n"


def csv_row(cid: str, eid: str, quantity: str = "1", unit: str = "no. people FTE") -> str:
    return f"{cid},{eid},NT1,{quantity},{unit},{LAST_MONTH[0]},{LAST_MONTH[1]}\n"


# operation -> (method, url, body); every write is on contract C-A
OPERATIONS: dict[str, tuple[str, str, Any]] = {
    "submit": ("POST", "/v1/contracts/C-A/evidence", evidence("E-new")),
    "batch": ("POST", "/v1/evidence", {"items": [{"contract_id": "C-A",
                                                  **evidence("E-batch")}]}),
    "csv": ("CSV", "/v1/evidence/csv", CSV_HEADER + csv_row("C-A", "E-csv")),
    "retract": ("POST", "/v1/contracts/C-A/evidence/E1/retract", {"reason": "duplicate"}),
    "verify": ("POST", "/v1/contracts/C-A/evidence/E1/verify", {"note": "payslips seen"}),
    "reject": ("POST", "/v1/contracts/C-A/evidence/E1/reject", {"reason": "no payslips"}),
    "commit": ("POST", "/v1/contracts/C-A/commitments", {"measure": "D-APP", "target": "52"}),
    "milestone": ("POST", "/v1/contracts/C-A/milestones",
                  {"milestone_id": "NT1-2027", "measure": "NT1", "due": "2027-06-30",
                   "cumulative_target": "10"}),
    "read": ("GET", "/v1/contracts/C-A", None),
    "submissions": ("GET", "/v1/submissions?contract_id=C-A", None),
    "rejections": ("GET", "/v1/rejections?contract_id=C-A", None),
    "receipt": ("GET", "/v1/contracts/C-A/events/C-A:E1", None),
}
SUPPLIER_WRITES = {"submit", "batch", "csv", "retract"}
MANAGER_WRITES = {"verify", "reject", "commit", "milestone"}
READS = {"read", "submissions", "rejections", "receipt"}


def expected_status(who: str, op: str) -> int:
    if who in ("nobody", "bad", "revoked"):
        return 401
    if who.endswith("-b"):  # supplier B and manager B have nothing to do with C-A
        return 403
    if op in READS:
        return 404 if op == "receipt" else 200  # C-A:E1 came through Kafka, not the API
    mine = SUPPLIER_WRITES if who == "supplier-a" else MANAGER_WRITES
    return 202 if op in mine else 403


def call(api: Api, who: str, op: str) -> Any:
    method, url, body = OPERATIONS[op]
    h = api.headers(who)
    if method == "GET":
        return api.client.get(url, headers=h)
    if method == "CSV":
        return api.client.post(url, headers={**h, "content-type": "text/csv"}, content=body)
    return api.client.post(url, headers=h, json=body)


@pytest.mark.parametrize("who", ["supplier-a", "supplier-b", "manager-a", "manager-b",
                                 "nobody", "bad", "revoked"])
def test_authorisation_matrix(api: Api, who: str) -> None:
    """Each party against contract C-A (supplier S01, manager mgr-a): the right party
    gets 202/200, the wrong one 403, no or a bad or revoked token 401, and a refused
    request leaves nothing in the inbox or the totals."""
    before_totals = api.totals("C-A")
    stored = 0
    for op in OPERATIONS:
        r = call(api, who, op)
        want = expected_status(who, op)
        assert r.status_code == want, (who, op, r.status_code, r.text)
        body = r.json()
        if want >= 400:
            assert body["message"], (who, op, body)
            if want == 401:
                assert r.headers["www-authenticate"] == "Bearer"
        elif op == "csv":
            stored += len(body["receipts"])
        elif want == 202:
            stored += 1
    assert sum(api.store.counts().values()) == stored
    api.settle()
    if stored == 0:
        assert api.totals("C-A") == before_totals
        assert api.totals("C-B") == {"NT1": (Decimal(2), Decimal(0)),
                                     "L-VOL": (Decimal(0), Decimal(0))}


def test_managers_register_only_contracts_they_manage(api: Api) -> None:
    body = {"contract_id": "C-NEW", "title": "Libraries", "buyer": "Borsetshire CC",
            "supplier_id": "S01", "supplier_name": "Northgate", "start": "2026-01-01",
            "end": "2028-12-31", "value_gbp": "750000", "catalogue_edition": "DEMO-2025",
            "manager": "mgr-b"}
    assert api.post("manager-a", "/v1/contracts", body).status_code == 403
    assert api.post("supplier-a", "/v1/contracts", {**body, "manager": "mgr-a"}) \
        .status_code == 403
    r = api.post("manager-a", "/v1/contracts", {**body, "manager": "mgr-a"})
    assert r.status_code == 202, r.text
    # the registration is not folded yet, but its commitment is already checked against it
    r = api.post("manager-a", "/v1/contracts/C-NEW/commitments",
                 {"measure": "L-VOL", "target": "300"})
    assert r.status_code == 202, r.text
    assert api.post("manager-b", "/v1/contracts/C-NEW/commitments",
                    {"measure": "NT1", "target": "3"}).status_code == 403
    # re-registering (amending) someone else's contract is refused
    assert api.post("manager-a", "/v1/contracts",
                    {**body, "contract_id": "C-B", "manager": "mgr-a"}).status_code == 403
    api.settle()
    assert api.totals("C-NEW") == {"L-VOL": (Decimal(0), Decimal(0))}
    r = api.client.get("/v1/contracts", headers=api.headers("supplier-a"))
    assert [c["contract_id"] for c in r.json()] == ["C-A", "C-NEW"]


FUTURE_END = (TODAY + timedelta(days=40)).isoformat()
# 422: the body breaks the OpenAPI document's schema (the server checks it against the
# document first); 409: it fits the document but a rule the document cannot state
# refuses it (the contract's catalogue, term and evidence; places; period order)
BAD_EVIDENCE: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown measure", evidence(measure="NT999"), 409, "measure"),
    ("unit of another measure", evidence(unit="hours"), 409, "unit"),
    ("no unit", {k: v for k, v in evidence().items() if k != "unit"}, 422, "unit"),
    ("negative", evidence(quantity="-4"), 422, "quantity"),
    ("zero", evidence(quantity=0), 422, "quantity"),
    ("zero as text", evidence(quantity="0.000"), 422, "quantity"),
    ("NaN as text", evidence(quantity="NaN"), 422, "quantity"),
    ("infinity as text", evidence(quantity="Infinity"), 422, "quantity"),
    ("absurdly large", evidence(quantity="1e13"), 409, "quantity"),
    ("huge JSON number", evidence(quantity=10 ** 400), 422, "quantity"),
    ("boolean", evidence(quantity=True), 422, "quantity"),
    ("too many decimals", evidence(quantity="1.0000001"), 409, "quantity"),
    ("percentage over 100", evidence(measure="D-LOCALPCT", unit="%", quantity="140"),
     409, "quantity"),
    ("period before the contract", evidence(period_start="2024-11-01",
                                            period_end="2024-11-30"), 409, "period"),
    ("period in the future", evidence(period_end=FUTURE_END), 409, "period_end"),
    ("period reversed", evidence(period_start=LAST_MONTH[1], period_end=LAST_MONTH[0]),
     409, "period_end"),
    ("not a date", evidence(period_start="2025-02-30"), 409, "period_start"),
    ("year out of range", evidence(period_start="1899-12-31"), 422, "period_start"),
    ("unknown field", evidence(colour="blue"), 422, "colour"),
    ("id too long", evidence(evidence_id="E" * 200), 422, "evidence_id"),
    ("id with spaces", evidence(evidence_id="E 1"), 422, "evidence_id"),
    ("id with a control character", evidence(evidence_id="E\x01"), 422, "evidence_id"),
    ("event id null", evidence(event_id=None), 422, "event_id"),
    ("blank description is fine, a NUL is not", evidence(description="a\x00b"), 422,
     "description"),
    ("contract id in the body", evidence(contract_id="C-B"), 422, "contract_id"),
    ("evidence id reused", evidence(evidence_id="E1"), 409, "evidence_id"),
]


@pytest.mark.parametrize("case", BAD_EVIDENCE, ids=[c[0] for c in BAD_EVIDENCE])
def test_bad_evidence_is_refused_with_the_field_named(
        api: Api, case: tuple[str, dict[str, Any], int, str]) -> None:
    _, body, status, field = case
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", body)
    assert r.status_code == status, r.text
    out = r.json()
    assert out["field"] == field and repr(field) in out["message"], out
    assert out["expected"] and "got" in out
    assert api.store.counts() == {}


def test_malformed_requests_are_4xx(api: Api) -> None:
    h = api.headers("supplier-a")
    url = "/v1/contracts/C-A/evidence"
    cases = [
        (api.client.post(url, headers={**h, "content-type": "application/json"},
                         content=b'{"evidence_id": '), 400, "body"),
        (api.client.post(url, headers={**h, "content-type": "application/json"},
                         content=b'{"quantity": NaN}'), 400, "body"),
        (api.client.post(url, headers={**h, "content-type": "application/json"},
                         content=b"\xff\xfe{}"), 400, "body"),
        (api.client.post(url, headers={**h, "content-type": "text/plain"},
                         content=json.dumps(evidence())), 415, "content-type"),
        (api.client.post(url, headers=h, json=evidence(description="x" * 70_000)), 413,
         "body"),
        (api.client.post(url, headers=h, json=[evidence()]), 422, "body"),
        (api.client.post("/v1/evidence", headers=h, json={"items": [
            {"contract_id": "C-A", **evidence(f"B{i}")} for i in range(501)]}), 422, "items"),
        (api.client.post("/v1/evidence", headers=h, json={"things": []}), 422, "items"),
        (api.client.post(url, headers=h, json=evidence(event_id=None)), 422, "event_id"),
        (api.client.post("/v1/contracts/C-A/evidence/E1/reject", headers=h, json={
            "reason": "  "}), 422, "reason"),
        (api.client.post("/v1/contracts/C-A/evidence/E1/reject", headers=h), 415,
         "content-type"),
        (api.client.post("/v1/evidence/csv", headers={**h, "content-type": "text/csv"},
                         content=""), 422, "body"),
        (api.client.get("/v1/submissions?limit=0", headers=h), 422, "limit"),
        (api.client.get("/v1/submissions?status=lost", headers=h), 422, "status"),
        (api.client.post("/v1/evidence/csv?mode=some", headers={**h, "content-type":
                                                                  "text/csv"}, content=""),
         422, "mode"),
    ]
    for r, status, field in cases:
        assert r.status_code == status, (field, r.text)
        out = r.json()
        assert out["message"]
        assert out.get("field", field) == field, out
    r = api.client.post("/v1/contracts/C-X/evidence", headers=h, json=evidence())
    assert r.status_code == 404 and "C-X" in r.json()["message"]
    r = api.client.delete("/v1/contracts/C-A", headers=h)
    assert r.status_code == 405 and r.json()["message"]
    assert api.store.counts() == {}


def test_a_batch_is_stored_whole_or_not_at_all(api: Api) -> None:
    items = [{"contract_id": "C-A", **evidence("B1")},
             {"contract_id": "C-A", **evidence("B2", quantity="-1")},
             {"contract_id": "C-A", **evidence("B3", unit="tonnes")}]
    r = api.post("supplier-a", "/v1/evidence", {"items": items})
    assert r.status_code == 422
    assert [(e["item"], e["field"]) for e in r.json()["errors"]] == [(1, "quantity"),
                                                                      (2, "unit")]
    assert api.store.counts() == {}
    items[1:] = [{"contract_id": "C-A", **evidence("B2")}]
    r = api.post("supplier-a", "/v1/evidence", {"items": items})
    assert r.status_code == 202 and len(r.json()["receipts"]) == 2


def test_a_retry_returns_the_original_receipt_and_counts_once(api: Api) -> None:
    body = evidence("E-retry", quantity="4", event_id="client-42")
    first = api.post("supplier-a", "/v1/contracts/C-A/evidence", body)
    assert first.status_code == 202
    again = [api.post("supplier-a", "/v1/contracts/C-A/evidence", body) for _ in range(3)]
    assert all(r.status_code == 202 and r.json() == first.json() for r in again)
    assert first.json()["event_id"] == "client-42" and first.json()["status"] == "pending"
    # the relay may publish an event more than once: the worker counts it once
    drained = api.settle()
    assert drained == 1
    from tests.helpers import drain_inbox
    assert drain_inbox(api.repo, api.store, api.states, copies=1) == 0  # all settled
    assert api.totals("C-A")["NT1"] == (Decimal(6), Decimal(0))
    receipt = api.client.get("/v1/contracts/C-A/events/client-42",
                             headers=api.headers("supplier-a")).json()
    assert receipt["status"] == "accepted"
    # the same id with different content is a conflict, not a retry
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", {**body, "quantity": "5"})
    assert r.status_code == 409 and r.json()["field"] == "event_id"


def test_duplicate_copies_on_the_topic_are_counted_once(api: Api) -> None:
    for i in range(5):
        assert api.post("supplier-a", "/v1/contracts/C-A/evidence",
                        evidence(f"D{i}", quantity="1")).status_code == 202
    from tests.helpers import drain_inbox
    assert drain_inbox(api.repo, api.store, api.states, copies=3) == 15
    assert api.totals("C-A")["NT1"] == (Decimal(7), Decimal(0))
    assert api.store.counts() == {"accepted": 5}


def test_review_workflow_keeps_claimed_and_verified_apart(api: Api) -> None:
    assert api.post("supplier-a", "/v1/contracts/C-A/evidence",
                    evidence("E2", quantity="3")).status_code == 202
    api.settle()
    assert api.totals("C-A")["NT1"] == (Decimal(5), Decimal(0))
    assert api.post("manager-a", "/v1/contracts/C-A/evidence/E2/verify",
                    {"note": "contracts of employment seen"}).status_code == 202
    r = api.post("manager-a", "/v1/contracts/C-A/evidence/E1/reject",
                 {"reason": "the same two hires as last month"})
    assert r.status_code == 202
    api.settle()
    assert api.totals("C-A")["NT1"] == (Decimal(3), Decimal(3))
    # a decision on evidence already decided is refused by the same rule as the stream's
    # (a rule of the evidence's state, which the document cannot state: 409)
    r = api.post("manager-a", "/v1/contracts/C-A/evidence/E1/verify", {})
    assert r.status_code == 409 and r.json()["field"] == "evidence_id"
    assert "rejected" in r.json()["message"]
    # the supplier sees the decision, who made it and why
    subs = api.client.get("/v1/submissions?contract_id=C-A",
                          headers=api.headers("supplier-a")).json()
    e2 = next(s for s in subs if s["type"] == "EvidenceSubmitted")
    assert e2["evidence"]["status"] == "verified" and e2["evidence"]["decided_by"] == "mgr-a"
    detail = api.client.get("/v1/contracts/C-A", headers=api.headers("supplier-a")).json()
    e1 = next(e for e in detail["evidence"] if e["evidence_id"] == "E1")
    assert (e1["status"], e1["decided_by"], e1["reason"]) == \
        ("rejected", "mgr-a", "the same two hires as last month")
    # every decision is an event on the contract's log: who, when, why
    log = [(r["type"], r["actor"]) for r in api.repo.journal_rows() if r["contract_id"] == "C-A"]
    assert ("EvidenceVerified", "mgr-a") in log and ("EvidenceRejected", "mgr-a") in log
    assert ("EvidenceSubmitted", "supplier:S01") in log
    # verified evidence is the manager's to undo (reject), not the supplier's to retract
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence/E2/retract", {"reason": "twice"})
    assert r.status_code == 409 and r.json()["field"] == "evidence_id", r.text
    # retracted evidence stops counting
    assert api.post("supplier-a", "/v1/contracts/C-A/evidence", evidence("E3")).status_code \
        == 202
    api.settle()
    assert api.totals("C-A")["NT1"] == (Decimal(6), Decimal(3))
    assert api.post("supplier-a", "/v1/contracts/C-A/evidence/E3/retract",
                    {"reason": "sent twice"}).status_code == 202
    api.settle()
    assert api.totals("C-A")["NT1"] == (Decimal(3), Decimal(3))


def test_csv_upload_all_or_nothing_and_valid_rows(api: Api) -> None:
    text = (CSV_HEADER + csv_row("C-A", "R1") + csv_row("C-A", "R2", quantity="-2")
            + csv_row("C-B", "R3") + csv_row("C-A", "R4", unit="hours") + "\n")
    h = {**api.headers("supplier-a"), "content-type": "text/csv"}
    r = api.client.post("/v1/evidence/csv", headers=h, content=text)
    assert r.status_code == 403  # one row is on another supplier's contract
    rows = {(e["row"], e.get("field")) for e in r.json()["errors"]}
    assert rows == {(3, "quantity"), (4, None), (5, "unit")}
    assert api.store.counts() == {}
    r = api.client.post("/v1/evidence/csv?mode=valid", headers=h, content=text)
    assert r.status_code == 202
    assert [x["event_id"] for x in r.json()["receipts"]] == ["evidence:R1"]
    assert [e["row"] for e in r.json()["errors"]] == [3, 4, 5]
    r = api.client.post("/v1/evidence/csv", headers=h, content="evidence_id,colour\nX,red\n")
    assert r.status_code == 409 and r.json()["field"] == "header"
    # a row that breaks the evidence item's schema (the document's) is a 422
    r = api.client.post("/v1/evidence/csv", headers=h,
                        content=CSV_HEADER + csv_row("C-A", "R 9"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "evidence_id"


def test_cli_tokens_and_csv_import(api: Api, tmp_path: Any, monkeypatch: Any) -> None:
    url = api.repo.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url.replace("postgresql+psycopg", "postgresql"))
    monkeypatch.setenv("SVMON_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "--supplier", "S01", "--label", "laptop"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    r = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.json() == {"kind": "supplier", "party": "S01", "token_id": token.split("_")[1]}
    listed = runner.invoke(main, ["token", "list"])
    assert token.split("_")[1] in listed.output and "laptop" in listed.output
    assert token not in listed.output  # the secret is never shown again
    assert runner.invoke(main, ["token", "revoke", token.split("_")[1]]).exit_code == 0
    r = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["message"]

    f = tmp_path / "march.csv"
    f.write_text(CSV_HEADER + "".join(csv_row("C-A", f"I{i}") for i in range(250))
                 + csv_row("C-A", "I-bad", quantity="0"))
    errors = tmp_path / "errors.csv"
    out = runner.invoke(main, ["evidence", "import", str(f), "--supplier", "S01",
                               "--errors", str(errors)])
    assert out.exit_code == 1 and "nothing stored" in out.output
    assert "row 252" in out.output and errors.read_text().splitlines()[1].startswith("252,")
    out = runner.invoke(main, ["evidence", "import", str(f), "--supplier", "S01",
                               "--mode", "valid"])
    assert out.exit_code == 0, out.output
    assert "251 rows: 250 stored (0 already known), 1 refused" in out.output
    api.settle()
    assert api.totals("C-A")["NT1"] == (Decimal(252), Decimal(0))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextlib.contextmanager
def token_writes(api: Api) -> Iterator[list[str]]:
    """The UPDATEs of api_token the app sends while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            seen.append(statement)

    event.listen(api.repo.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(api.repo.engine, "before_cursor_execute", note)


def test_a_token_records_its_last_use_at_most_once_an_interval(
        api: Api, tmp_path: Any, monkeypatch: Any) -> None:
    """Issue #22 item 6: a request fills the token's last-used time, shown by
    'svmon token list'; within the interval (60 s by default) nothing is written again,
    after it the time moves on; other tokens are throttled separately."""
    service = api.client.app.state.service  # type: ignore[attr-defined]
    t0 = datetime(2026, 3, 4, 17, 5, 30, tzinfo=UTC)
    clock = Clock(t0)
    monkeypatch.setattr(service, "clock", clock)
    ids = {who: secret.split("_")[1] for who, secret in api.tokens.items()}

    def last_used() -> dict[str, datetime | None]:
        return {t["token_id"]: t["last_used_at"] for t in api.store.tokens()}

    def me(who: str) -> int:
        return api.client.get("/v1/me", headers=api.headers(who)).status_code

    assert set(last_used().values()) == {None}
    with token_writes(api) as writes:
        assert me("supplier-a") == 200
        assert last_used()[ids["supplier-a"]] == t0 and len(writes) == 1
        clock.now = t0 + timedelta(seconds=59)  # within the interval: no write
        assert me("supplier-a") == 200
        assert call(api, "supplier-a", "read").status_code == 200
        assert last_used()[ids["supplier-a"]] == t0 and len(writes) == 1
        assert me("manager-a") == 200  # another token has its own interval
        assert last_used()[ids["manager-a"]] == clock.now and len(writes) == 2
        assert me("revoked") == 401 and me("bad") == 401 and me("nobody") == 401
        assert len(writes) == 2
        clock.now = t0 + timedelta(seconds=60)  # the interval is over: written again
        assert me("supplier-a") == 200
        assert last_used()[ids["supplier-a"]] == clock.now and len(writes) == 3
        assert me("supplier-a") == 200 and len(writes) == 3
    used = last_used()
    assert used[ids["revoked"]] is None and used[ids["supplier-b"]] is None

    url = api.repo.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url.replace("postgresql+psycopg", "postgresql"))
    monkeypatch.setenv("SVMON_DATA_DIR", str(tmp_path))
    listed = CliRunner().invoke(main, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    created = f"{api.store.tokens()[0]['created_at']:%Y-%m-%d %H:%M}"  # the same form
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", created)
    assert "last used 2026-03-04 17:06" in lines[ids["supplier-a"]]
    assert "last used 2026-03-04 17:06" in lines[ids["manager-a"]]  # 17:06:29
    assert "never used" in lines[ids["supplier-b"]]
    assert "never used" in lines[ids["revoked"]] and "revoked " in lines[ids["revoked"]]
    assert service.last_used_every == timedelta(seconds=60)  # the default setting


def test_the_last_used_interval_is_a_setting(api: Api) -> None:
    settings = Settings(database_url="sqlite://", token_last_used_seconds=5)
    assert build_service(api.repo, settings).last_used_every == timedelta(seconds=5)
    assert build_service(api.repo).last_used_every == timedelta(seconds=60)
    assert Settings.from_env({"SVMON_TOKEN_LAST_USED_SECONDS": "2.5"}) \
        .token_last_used_seconds == 2.5


def test_a_failed_last_used_write_does_not_fail_the_request(
        api: Api, monkeypatch: Any, caplog: Any) -> None:
    service = api.client.app.state.service  # type: ignore[attr-defined]
    attempts: list[str] = []

    def broken(token_id: str, at: datetime) -> bool:
        attempts.append(token_id)
        raise OperationalError("UPDATE api_token", {}, Exception("database is locked"))

    monkeypatch.setattr(service.store, "touch_token", broken)
    with caplog.at_level(logging.WARNING, logger="svmon.api.service"):
        r = api.client.get("/v1/me", headers=api.headers("supplier-a"))
        assert r.status_code == 200 and r.json()["party"] == "S01"
        assert api.post("supplier-a", "/v1/contracts/C-A/evidence",
                        evidence("E-touch")).status_code == 202
    tid = api.tokens["supplier-a"].split("_")[1]
    assert attempts == [tid]  # throttled even when the write failed
    assert any("could not record the use of token" in m and tid in m
               for m in caplog.messages)
    assert all(t["last_used_at"] is None for t in api.store.tokens())


def test_racing_requests_on_one_contract_cannot_both_pass(api: Api) -> None:
    """Check and write happen under the contract's lock: of two requests that only one
    may win, exactly one is stored."""
    from concurrent.futures import ThreadPoolExecutor

    def post(n: int) -> int:
        body = evidence("E-race", quantity=str(n), event_id=f"race-{n}")
        return api.post("supplier-a", "/v1/contracts/C-A/evidence", body).status_code

    contract = {"title": "Parks", "buyer": "Borsetshire CC", "supplier_id": "S01",
                "supplier_name": "Northgate", "start": "2026-01-01", "end": "2028-12-31",
                "value_gbp": "1", "catalogue_edition": "DEMO-2025"}

    def register(who: str) -> int:
        body = {"contract_id": "C-RACE", **contract, "manager": who.replace("manager", "mgr")}
        return api.post(who, "/v1/contracts", body).status_code

    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(post, range(1, 9)))
            owners = sorted(pool.map(register, ["manager-a", "manager-b"]))
    assert codes.count(202) == 1 and set(codes) == {202, 409}, codes
    assert owners == [202, 403]
    api.settle()
    claimed = api.totals("C-A")["NT1"][0]
    assert claimed - 2 in {Decimal(n) for n in range(1, 9)}  # one of them, once


def test_ids_already_used_another_way_are_conflicts(api: Api) -> None:
    # C-A:E1 reached the journal straight from the topic, not through the API
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence",
                 evidence("E-x", event_id="C-A:E1"))
    assert r.status_code == 409 and "straight to the topic" in r.json()["message"]


def test_a_refused_pending_event_leaves_the_view(api: Api) -> None:
    """The worker can refuse what the API let through (a race, a rule that changed):
    once it does, the API's view of the contract forgets the event."""
    from svmon.models.repository import Batch

    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", evidence("X2", event_id="x2-1"))
    assert r.status_code == 202
    assert api.post("supplier-a", "/v1/contracts/C-A/evidence",
                    evidence("X2", event_id="x2-2")).status_code == 409  # X2 is pending
    b = Batch(consumer="test", settled=[("C-A", "x2-1", "refused", "refused for the test")])
    api.repo.apply_batch(b)
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", evidence("X2", event_id="x2-2"))
    assert r.status_code == 202, r.text
    receipt = api.client.get("/v1/contracts/C-A/events/x2-1", headers=api.headers("supplier-a"))
    assert receipt.json()["status"] == "refused"


def test_an_event_that_never_fits_is_given_up_with_the_workers_reason(api: Api) -> None:
    from datetime import UTC, datetime

    from svmon.core.errors import NotYetKnown
    from svmon.models.repository import Batch
    from svmon.streams.processor import Record, dead_letter

    assert api.post("supplier-a", "/v1/contracts/C-A/evidence",
                    evidence("W1")).status_code == 202
    [(row_id, _, payload, _)] = api.store.due(datetime(2200, 1, 1, tzinfo=UTC))
    why = NotYetKnown("evidence_id", "evidence submitted on this contract", "W0",
                      contract_id="C-A", event_id="evidence:W1")
    for n in range(12):  # what twelve deliveries that never fit leave behind
        api.store.published([(row_id, n)], datetime.now(UTC), timedelta(0))
        api.repo.apply_batch(Batch(consumer="test", dead_letters=[dead_letter(
            Record("t", 0, n, b"C-A", payload.encode()), why, datetime.now(UTC))]))
        assert api.store.give_up() == (1 if n == 11 else 0)
    receipt = api.client.get("/v1/contracts/C-A/events/evidence:W1",
                             headers=api.headers("supplier-a")).json()
    assert receipt["status"] == "refused" and "after 12 deliveries" in receipt["reason"]
    assert "evidence submitted on this contract" in receipt["reason"]


def test_going_back_to_an_earlier_target_is_an_amendment_not_a_retry(api: Api) -> None:
    url = "/v1/contracts/C-A/commitments"
    receipts = [api.post("manager-a", url, {"measure": "D-APP", "target": t}).json()
                for t in ("30", "20", "30")]
    assert len({r["event_id"] for r in receipts}) == 3
    again = api.post("manager-a", url, {"measure": "D-APP", "target": "30"}).json()
    assert again == receipts[2]  # a retry of the latest is still a retry
    api.settle()
    assert api.store.contract_detail("C-A")["totals"][0]["target"] == Decimal(30)


def test_odd_parameters_are_4xx(api: Api) -> None:
    h = api.headers("supplier-a")
    for url in ("/v1/submissions?limit=" + "1" * 5000, "/v1/submissions?before=" + "9" * 40,
                "/v1/submissions?contract_id=%00", "/v1/contracts/%00",
                "/v1/contracts/C%01A/events/x", "/v1/rejections?contract_id=" + "x" * 300):
        r = api.client.get(url, headers=h)
        assert 400 <= r.status_code < 500 and r.json()["message"], (url, r.text)


def test_a_thousand_submissions_list_in_one_page(api: Api) -> None:
    text = CSV_HEADER + "".join(csv_row("C-A", f"P{i}") for i in range(1001))
    r = api.client.post("/v1/evidence/csv", content=text,
                        headers={**api.headers("supplier-a"), "content-type": "text/csv"})
    assert r.status_code == 202
    api.settle()
    r = api.client.get("/v1/submissions?limit=1000", headers=api.headers("supplier-a"))
    assert r.status_code == 200 and len(r.json()) == 1000
    assert all(s["evidence"]["status"] == "submitted" for s in r.json())


def test_party_ids_cannot_pass_for_another_partys_actor(api: Api) -> None:
    from svmon.core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        api.store.create_token("manager", "supplier:S01")


def test_a_milestone_id_reused_for_another_measure_is_a_conflict(api: Api) -> None:
    """Issue #22, 3: the same milestone id with another measure is refused with 409 naming
    the milestone already there; the identical body again is an idempotent retry."""
    url = "/v1/contracts/C-A/milestones"
    h = api.headers("manager-a")
    first = {"milestone_id": "M-REUSE", "measure": "NT1", "due": "2027-06-30",
             "cumulative_target": "10"}
    r = api.client.post(url, headers=h, json=first)
    assert r.status_code == 202, r.text
    api.settle()
    again = api.client.post(url, headers=h, json=first)
    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == r.json()["event_id"]  # a retry, not a new event
    r = api.client.post(url, headers=h, json={**first, "measure": "L-VOL"})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["field"] == "milestone_id"
    assert "10 of NT1 by 2027-06-30" in body["message"], body
    api.settle()
    assert api.states["C-A"].milestones["M-REUSE"].measure == "NT1"
