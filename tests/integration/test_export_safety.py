"""Issue #21, A and B end to end: ids that are paths are refused on every channel,
exported file names stay in their folder, and spreadsheets never get a live formula."""

from __future__ import annotations

import base64
import csv
import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner
from openpyxl import load_workbook

from svmon.audit import report as reports
from svmon.audit.replay import rebuild
from svmon.cli import main
from svmon.core import events as ev
from svmon.dashboards import queries
from svmon.dashboards.kit import download_links
from svmon.schemas import ID_EXPECTED
from svmon.settings import Settings
from tests.helpers import feed
from tests.integration.conftest import Api, contract_events

HYPERLINK = '=HYPERLINK("http://x","y")'
LAST_MONTH_END = datetime.now(UTC).date().replace(day=1) - timedelta(days=1)
PERIOD = (LAST_MONTH_END.replace(day=1).isoformat(), LAST_MONTH_END.isoformat())


def _contract(cid: str) -> dict[str, str]:
    return {"contract_id": cid, "title": "Libraries", "buyer": "Borsetshire CC",
            "supplier_id": "S01", "supplier_name": "Northgate", "start": "2025-01-01",
            "end": "2028-12-31", "value_gbp": "750000", "catalogue_edition": "DEMO-2025",
            "manager": "mgr-a"}


def test_a_contract_id_that_is_a_path_is_refused_naming_field_expectation_and_value(
        api: Api) -> None:
    r = api.post("manager-a", "/v1/contracts", _contract("../../traversal-proof"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["field"], body["expected"], body["got"]) == (
        "contract_id", ID_EXPECTED, "'../../traversal-proof'")
    assert api.store.counts() == {}


def test_evidence_and_milestone_ids_that_are_paths_are_refused_on_http_and_csv(
        api: Api) -> None:
    r = api.post("supplier-a", "/v1/contracts/C-A/evidence", {
        "evidence_id": "../x", "measure": "NT1", "quantity": "1", "unit": "no. people FTE",
        "period_start": PERIOD[0], "period_end": PERIOD[1]})
    assert r.status_code == 422 and r.json()["field"] == "evidence_id", r.text
    r = api.post("manager-a", "/v1/contracts/C-A/milestones", {
        "milestone_id": "a/b", "measure": "NT1", "due": "2026-12-31",
        "cumulative_target": "5"})
    assert r.status_code == 422 and r.json()["field"] == "milestone_id", r.text
    text = ("contract_id,evidence_id,measure,quantity,unit,period_start,period_end\n"
            f"C-A,OK-1,NT1,1,no. people FTE,{PERIOD[0]},{PERIOD[1]}\n"
            f"C-A,..\\..\\x,NT1,1,no. people FTE,{PERIOD[0]},{PERIOD[1]}\n")
    h = {**api.headers("supplier-a"), "content-type": "text/csv"}
    r = api.client.post("/v1/evidence/csv", headers=h, content=text)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"], e["expected"]) for e in r.json()["errors"]] == [
        (3, "evidence_id", ID_EXPECTED)]
    assert api.store.counts() == {}


def test_ocds_export_names_files_safely_inside_out(api: Api, tmp_path: Path) -> None:
    feed(api.repo, [replace(e, event_id=e.event_id.replace("C-A", "C:9+1"),
                            contract_id="C:9+1")
                    for e in contract_events("C-A", "S01", "mgr-a")])
    out = tmp_path / "deep" / "out"
    settings = Settings(database_url=api.repo.engine.url.render_as_string(
        hide_password=False), data_dir=tmp_path)
    result = CliRunner().invoke(main, ["export", "ocds", "--out", str(out)],
                                env=settings.to_env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["C%3A9%2B1.ocds.json", "C-A.ocds.json", "C-B.ocds.json"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]


def test_text_that_is_a_formula_is_inert_in_every_download(api: Api, tmp_path: Path) -> None:
    """A manager whose id starts with '=' (manager ids are free-form) rejects evidence
    with a formula as the reason and a negative-looking description: the contract's
    downloads and the auditor's lineage.csv carry no live formula, numbers stay numbers."""
    manager = '=HYPERLINK("evil.example","y")'  # no space or ':': a valid manager id
    t0 = datetime(2025, 1, 2, 9, tzinfo=UTC)
    cid = "C-F"
    events: list[ev.ContractEvent] = [
        ev.ContractRegistered(
            event_id=f"{cid}:registered", contract_id=cid, occurred_at=t0, actor=manager,
            title=HYPERLINK, buyer="Borsetshire CC", buyer_department="", supplier_id="S01",
            supplier_name="@Northgate", start=date(2025, 1, 1), end=date(2027, 12, 31),
            value_gbp=Decimal(1000), catalogue_edition="DEMO-2025", manager=manager),
        ev.CommitmentMade(event_id=f"{cid}:commit:NT1", contract_id=cid, occurred_at=t0,
                          actor=manager, measure="NT1", target=Decimal(20)),
        ev.EvidenceSubmitted(
            event_id=f"{cid}:E1", contract_id=cid, occurred_at=datetime(2025, 2, 5, tzinfo=UTC),
            actor="supplier:S01", evidence_id="E1", measure="NT1", quantity=Decimal("2.5"),
            period_start=date(2025, 1, 1), period_end=date(2025, 1, 31),
            description=HYPERLINK),
        ev.EvidenceSubmitted(
            event_id=f"{cid}:E2", contract_id=cid, occurred_at=datetime(2025, 2, 5, tzinfo=UTC),
            actor="supplier:S01", evidence_id="E2", measure="NT1", quantity=Decimal(1),
            period_start=date(2025, 1, 1), period_end=date(2025, 1, 31)),
        ev.EvidenceRejected(
            event_id=f"{cid}:E1:rejected", contract_id=cid,
            occurred_at=datetime(2025, 2, 6, tzinfo=UTC), actor=manager, evidence_id="E1",
            reason=HYPERLINK),
        ev.EvidenceVerified(
            event_id=f"{cid}:E2:verified", contract_id=cid,
            occurred_at=datetime(2025, 2, 6, tzinfo=UTC), actor=manager, evidence_id="E2"),
    ]
    feed(api.repo, events)
    data = queries.contract(api.repo, cid)
    assert {e["reason"] for e in data["evidence"]} >= {HYPERLINK}
    rows = [*data["evidence"], {"evidence_id": "E-neg", "quantity": Decimal("-3.5"),
                                "decided_by": "", "reason": ""}]
    html = download_links(rows, [("evidence_id", "Evidence"), ("quantity", "Quantity"),
                                 ("decided_by", "Decided by"), ("reason", "Reason")],
                          f"{cid}-evidence")
    csv_b64, xlsx_b64 = re.findall(r"base64,([A-Za-z0-9+/=]+)'", html)
    table = list(csv.reader(io.StringIO(base64.b64decode(csv_b64).decode(), newline="")))
    assert ["E1", "2.5", "'" + manager, "'" + HYPERLINK] in table
    assert ["E-neg", "-3.5", "", ""] in table
    (tmp_path / "e.xlsx").write_bytes(base64.b64decode(xlsx_b64))
    sheet = list(load_workbook(tmp_path / "e.xlsx").active.iter_rows())
    assert all(c.data_type != "f" for r in sheet for c in r)
    neg = next(r for r in sheet if r[0].value == "E-neg")
    assert (neg[1].value, neg[1].data_type) == (-3.5, "n")
    assert "'" + HYPERLINK in [c.value for r in sheet for c in r]

    rebuilt = rebuild(api.repo.journal_events(contract_id=cid), api.repo.catalogue)
    written = reports.write(reports.build(rebuilt, api.repo.catalogue, source="journal",
                                          as_of=None), tmp_path / "report")
    lineage = next(p for p in written if p.name == "lineage.csv")
    cells = [c for r in csv.reader(io.StringIO(lineage.read_text(), newline="")) for c in r]
    assert "'" + manager in cells  # decided_by
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert not any(c.startswith("-") and not re.fullmatch(r"-[0-9.]+", c) for c in cells)
