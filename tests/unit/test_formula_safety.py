"""Spreadsheet formula injection (issue #21, B): every CSV and XLSX the project writes
quotes text a spreadsheet would run as a formula, and leaves numbers numbers."""

from __future__ import annotations

import base64
import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from svmon.api.csvio import error_rows
from svmon.api.service import ItemError
from svmon.audit.report import write
from svmon.core.errors import SchemaError
from svmon.dashboards.kit import download_links
from svmon.safe_output import FORMULA_STARTS, csv_writer, safe_cell, safe_text, xlsx_append

HYPERLINK = '=HYPERLINK("http://x","y")'
DANGEROUS = [HYPERLINK, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", DANGEROUS, ids=repr)
def test_formula_starts_are_quoted_and_the_text_kept(text: str) -> None:
    assert safe_text(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "", "C-001", "a=b", "'already", "-3.5", "+12",
                                   "-1,234.50", "1e5", Decimal("-3.5"), -2, 1.5, None, True])
def test_harmless_cells_and_numbers_are_left_as_they_are(value: Any) -> None:
    assert safe_cell(value) == value


def test_every_owasp_formula_start_is_covered() -> None:
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_writer_quotes_formulas_not_numbers() -> None:
    out = io.StringIO()
    w = csv_writer(out)
    w.writerow(["evidence", "quantity"])
    w.writerows([[HYPERLINK, Decimal("-3.5")], ["E2", 4]])
    assert _csv(out.getvalue()) == [["evidence", "quantity"], ["'" + HYPERLINK, "-3.5"],
                                    ["E2", "4"]]


def test_xlsx_cells_are_never_formulas_and_numbers_stay_numeric(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    xlsx_append(ws, [HYPERLINK, Decimal("-3.5"), -2, "=1+1", "@x", "plain"])
    wb.save(tmp_path / "x.xlsx")
    row = next(load_workbook(tmp_path / "x.xlsx").active.iter_rows())
    assert [c.data_type for c in row] == ["s", "n", "n", "s", "s", "s"]
    assert [c.value for c in row] == ["'" + HYPERLINK, -3.5, -2, "'=1+1", "'@x", "plain"]


def _decode_links(html: str) -> tuple[str, str, bytes, str]:
    csv_name, xlsx_name = re.findall(r"download='([^']*)'", html)
    csv_b64, xlsx_b64 = re.findall(r"base64,([A-Za-z0-9+/=]+)'", html)
    return (base64.b64decode(csv_b64).decode(), csv_name, base64.b64decode(xlsx_b64),
            xlsx_name)


def test_dashboard_downloads_are_formula_safe(tmp_path: Path) -> None:
    rows = [{"evidence_id": "E1", "description": HYPERLINK, "quantity": Decimal("-3.5"),
             "supplier": "@evil"}]
    cols = [("evidence_id", "Evidence"), ("description", "Description"),
            ("quantity", "Quantity"), ("supplier", "Supplier")]
    text, csv_name, xlsx, xlsx_name = _decode_links(download_links(rows, cols,
                                                                   "../../C-001:evidence"))
    assert _csv(text)[1] == ["E1", "'" + HYPERLINK, "-3.5", "'@evil"]
    (tmp_path / "d.xlsx").write_bytes(xlsx)
    cells = list(load_workbook(tmp_path / "d.xlsx").active.iter_rows())[1]
    assert all(c.data_type != "f" for c in cells)
    assert [c.value for c in cells] == ["E1", "'" + HYPERLINK, -3.5, "'@evil"]
    assert cells[2].data_type == "n"
    assert "/" not in csv_name and "/" not in xlsx_name and not csv_name.startswith(".")


def test_replay_report_csv_files_are_formula_safe(tmp_path: Path) -> None:
    # what a journal written before the id grammar could hold, and free-form ids such
    # as a manager's, which the grammar does not cover
    report = {"contracts": [{"contract_id": "C-001", "title": "t", "supplier": "=s",
                             "as_of": None, "measures": [{
        "measure": "NT1", "unit": "=unit", "edition": "DEMO-2025", "proxy_gbp": "10",
        "target": "5", "claimed": "2", "verified": "1", "verified_gbp": "10",
        "shortfall": "4", "evidence": [{
            "evidence_id": HYPERLINK, "quantity": "1", "status": "verified",
            "submitted_by": "supplier:S01", "submitted_at": "2025-02-05T00:00:00+00:00",
            "decided_by": "@mgr", "decided_at": "2025-02-06T00:00:00+00:00",
            "value_gbp": "10"}]}]}],
        "verification": {"ok": True, "performed": True, "chain_breaks": [], "mismatches": []},
        "source": "journal", "as_of": None, "events_read": 3, "events_rejected": 0}
    write(report, tmp_path)
    totals = _csv((tmp_path / "totals.csv").read_text())
    lineage = _csv((tmp_path / "lineage.csv").read_text())
    assert totals[1][2] == "'=unit"
    assert lineage[1][2] == "'" + HYPERLINK and lineage[1][7] == "'@mgr"
    assert lineage[1][3] == "1"
    assert all(not c.startswith(FORMULA_STARTS) for r in totals + lineage for c in r)


def test_csv_import_error_report_is_formula_safe() -> None:
    # got is the value's repr: a description of "=..." comes back as "'=...'", but the
    # message starts with the field name, and a CSV row's cell may be the value itself
    err = SchemaError(HYPERLINK, "an id", HYPERLINK)
    out = _csv(error_rows([ItemError(2, err)]))
    assert out[1][:2] == ["2", "'" + HYPERLINK]
    assert all(not c.startswith(FORMULA_STARTS) for r in out for c in r)
