"""The supplier portal's queries and commands: what a signed-in supplier owes on each
contract, evidence submitted by form or by CSV/XLSX file, their submissions and the
reviewers' reasons, and retracting their own evidence.

Everything goes through :class:`~svmon.api.service.IngestService` with the supplier's
principal, so a form is checked exactly as the HTTP API checks a request (the measure
is one of the contract's, the unit is the measure's, the period lies in the term...).
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from svmon.api import csvio
from svmon.api.service import IngestService, ItemError
from svmon.core.errors import SchemaError
from svmon.dashboards.session import CHANNEL
from svmon.models.ingest import Principal

ZERO = Decimal(0)
ERROR_COLUMN = "error"  # added to the refused rows' file; dropped when it comes back


def unit_of(service: IngestService, edition: str, measure: str) -> tuple[str, str]:
    """(unit, title) of a measure in the contract's catalogue edition."""
    cat = service.views.catalogue
    if not cat.has(edition, measure):
        return "", measure
    m = cat.measure(edition, measure)
    return m.unit, m.title


def contracts(service: IngestService, p: Principal) -> list[dict[str, Any]]:
    """One row per commitment on the supplier's contracts: target, delivered (verified
    and claimed, evidence awaiting review included), the next milestone and what is
    still needed to meet it (or the target, when no milestone is ahead)."""
    out: list[dict[str, Any]] = []
    for c in service.store.contracts_of(p):
        state = service.visible_contract(p, c["contract_id"])
        t = state.terms
        assert t is not None  # visible_contract refuses unregistered contracts
        for code, com in sorted(state.commitments.items()):
            unit, title = unit_of(service, t.catalogue_edition, code)
            tot = state.totals.get(code)
            verified = tot.verified if tot else ZERO
            claimed = tot.claimed if tot else ZERO
            ahead = sorted((m for m in state.milestones.values()
                            if m.measure == code and m.status == "scheduled"),
                           key=lambda m: m.due)
            nxt = ahead[0] if ahead else None
            goal = nxt.cumulative_target if nxt else com.target
            out.append({
                "contract_id": state.contract_id, "title": t.title, "measure": code,
                "measure_title": title, "unit": unit, "target": com.target,
                "verified": verified, "claimed": claimed,
                "awaiting": claimed - verified,
                "next_due": nxt.due if nxt else None,
                "next_target": nxt.cumulative_target if nxt else None,
                "needed": max(goal - verified, ZERO),
                "start": t.start, "end": t.end})
    return out


def measures_of(rows: Sequence[dict[str, Any]], contract_id: str) -> list[tuple[str, str]]:
    """(label with unit, code) of a contract's commitments, for the form's dropdown."""
    return [(f"{r['measure']} – {r['measure_title']} ({r['unit']})", r["measure"])
            for r in rows if r["contract_id"] == contract_id]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def new_evidence_id(today: date) -> str:
    """A reference for evidence sent without one: unique, and readable in a list."""
    return f"WEB-{today:%Y%m%d}-{secrets.token_hex(3).upper()}"


def submit(service: IngestService, p: Principal, *, contract_id: str, measure: str,
           quantity: str, period_start: date | None, period_end: date | None,
           description: str = "", attachments: Sequence[tuple[str, bytes]] = (),
           evidence_id: str = "", unit: str | None = None) -> dict[str, Any]:
    """Submit one piece of evidence from the form; its receipt, or ItemErrors naming
    the refused field. Attachments are recorded by name and SHA-256 (the files stay
    with the supplier; the hash proves later which file was meant)."""
    if unit is None:
        state = service.visible_contract(p, contract_id)
        edition = state.terms.catalogue_edition if state.terms else ""
        unit = unit_of(service, edition, measure)[0]
    item: dict[str, Any] = {
        "contract_id": contract_id,
        "evidence_id": evidence_id.strip() or new_evidence_id(service.clock().date()),
        "measure": measure, "quantity": quantity.strip(), "unit": unit,
        "period_start": period_start.isoformat() if period_start else None,
        "period_end": period_end.isoformat() if period_end else None,
    }
    if description.strip():
        item["description"] = description.strip()
    if attachments:
        item["attachments"] = [{"name": name, "sha256": sha256(content)}
                               for name, content in attachments]
    receipts, _ = service.submit_evidence(p, [(1, item)], CHANNEL)
    return {**receipts[0], "evidence_id": item["evidence_id"],
            "attachments": item.get("attachments", [])}


# ------------------------------------------------------------------ upload

@dataclass
class Upload:
    """What became of an uploaded file: receipts of the stored rows, the refused rows
    with their errors, and the refused rows' cells to give back for fixing."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    cells: dict[int, list[str]] = field(default_factory=dict)  # by spreadsheet row

    def refused(self) -> list[dict[str, Any]]:
        """The refused rows as they came, each with its error: the file to fix."""
        out = []
        for e in self.errors:
            row = dict(zip(self.header, self.cells.get(e.index, []), strict=False))
            out.append({**row, ERROR_COLUMN: f"row {e.index}: {e.error}"})
        return out

    def refused_columns(self) -> list[tuple[str, str]]:
        return [(h, h) for h in self.header] + [(ERROR_COLUMN, ERROR_COLUMN)]

    def report(self) -> list[dict[str, Any]]:
        return [e.as_dict("row") for e in self.errors]


def _xlsx_text(raw: bytes) -> str:
    """The first sheet of a workbook as CSV text (dates as ISO dates, numbers exact)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as err:  # not a workbook: say so for the file, not a traceback
        raise SchemaError("file", "an .xlsx workbook", f"unreadable ({err})") from None
    out = io.StringIO()
    w = csv.writer(out)
    for row in wb.worksheets[0].iter_rows(values_only=True):
        w.writerow([_xlsx_cell(v) for v in row])
    return out.getvalue()


def _xlsx_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


def upload(service: IngestService, p: Principal, filename: str, raw: bytes) -> Upload:
    """Store every valid row of a CSV or XLSX evidence file and report the others.

    A refused-rows file made by :meth:`Upload.refused` can come back as it is, fixed:
    its ``error`` column is dropped, and rows stored before are recognised by their
    event ids and counted once. Raises SchemaError for the file as a whole (no header,
    an unknown column, not UTF-8)."""
    if len(raw) > csvio.MAX_CSV_BYTES:
        raise SchemaError("file", f"at most {csvio.MAX_CSV_BYTES // (1024 * 1024)} MiB",
                          f"{len(raw)} bytes")
    if filename.lower().endswith(".xlsx"):
        text = _xlsx_text(raw)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise SchemaError("file", "UTF-8 text (or an .xlsx workbook)",
                              f"a byte that is not UTF-8 at position {err.start}") from None
    lines = list(csv.reader(io.StringIO(text, newline="")))
    if lines and ERROR_COLUMN in [h.strip() for h in lines[0]]:
        drop = [h.strip() for h in lines[0]].index(ERROR_COLUMN)
        lines = [r[:drop] + r[drop + 1:] for r in lines]
        buf = io.StringIO()
        csv.writer(buf).writerows(lines)
        text = buf.getvalue()
    rows = csvio.read_rows(text)
    result = Upload(header=[h.strip() for h in lines[0]] if lines else [],
                    cells={n: cells for n, cells in enumerate(lines[1:], start=2)})
    if not rows:
        return result
    result.accepted, result.errors = service.submit_evidence(
        p, list(rows), "csv", partial=True)
    return result


# ------------------------------------------------------------- submissions

def submissions(service: IngestService, p: Principal, limit: int = 300
                ) -> list[dict[str, Any]]:
    """The supplier's evidence, newest first: where it stands (pending: not yet
    processed; refused by the stream; submitted: awaiting review; verified, rejected,
    retracted) and the reviewer's reason."""
    ids = [c["contract_id"] for c in service.store.contracts_of(p)]
    out = []
    for s in service.store.submissions(ids, limit=limit, submitted_by=p.actor):
        if s["type"] != "EvidenceSubmitted" or s["submitted_by"] != p.actor:
            continue
        d, review = s["data"], s.get("evidence") or {}
        status = review.get("status") or s["status"]
        out.append({
            "contract_id": s["contract_id"], "evidence_id": d.get("evidence_id"),
            "measure": d.get("measure"), "quantity": Decimal(str(d.get("quantity"))),
            "unit": d.get("unit", ""), "period_start": d.get("period_start"),
            "period_end": d.get("period_end"), "received_at": s["received_at"],
            "status": status,
            "reason": review.get("reason") or s.get("reason") or "",
            "decided_by": review.get("decided_by") or "", "channel": s["channel"]})
    return out


def retract(service: IngestService, p: Principal, contract_id: str, evidence_id: str,
            reason: str = "") -> dict[str, Any]:
    """Withdraw the supplier's own evidence (the service refuses anyone else's)."""
    return service.decide(p, contract_id, evidence_id, "retract",
                          {"reason": reason.strip()} if reason.strip() else {})
