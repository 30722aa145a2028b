"""The replay report: every total with its lineage, as JSON, CSV and HTML.

Lineage of a total: the evidence events behind it, who submitted and who verified
each one and when, and the catalogue edition and proxy value that priced it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from svmon.audit.chain import ChainBreak
from svmon.audit.replay import Mismatch, Rebuild
from svmon.core.catalogue import Catalogue
from svmon.core.rules import shortfall
from svmon.core.state import ContractState
from svmon.safe_output import csv_writer


def _s(v: Any) -> Any:
    return None if v is None else str(v)


def contract_lineage(s: ContractState, catalogue: Catalogue) -> dict[str, Any]:
    assert s.terms is not None
    edition = s.terms.catalogue_edition
    measures = []
    for code in s.measures():
        m = catalogue.measure(edition, code)
        t = s.totals_for(code)
        c = s.commitments.get(code)
        evidence = [{
            "evidence_id": r.evidence_id, "quantity": str(r.quantity), "status": r.status,
            "period": f"{r.period_start}..{r.period_end}", "submitted_by": r.submitted_by,
            "submitted_at": r.submitted_at.isoformat(), "decided_by": r.decided_by or None,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None,
            "reason": r.reason or None, "value_gbp": str(m.value_gbp(r.quantity))
            if r.status == "verified" else "0", "events": list(r.event_ids),
        } for r in sorted(s.evidence.values(), key=lambda r: (r.submitted_at, r.evidence_id))
            if r.measure == code]
        measures.append({
            "measure": code, "title": m.title, "unit": m.unit, "edition": edition,
            "proxy_gbp": _s(m.proxy_gbp), "proxy_source": m.source,
            "proxy_illustrative": m.illustrative, "target": _s(c.target if c else None),
            "claimed": str(t.claimed), "verified": str(t.verified),
            "verified_gbp": str(m.value_gbp(t.verified)),
            "shortfall": _s(shortfall(c.target, t.verified) if c else None),
            "commitment_events": list(c.event_ids) if c else [], "evidence": evidence,
        })
    return {"contract_id": s.contract_id, "title": s.terms.title,
            "supplier": s.terms.supplier_name, "as_of": _s(s.as_of and s.as_of.isoformat()),
            "events_applied": s.version, "measures": measures}


def build(rebuilt: Rebuild, catalogue: Catalogue, *, source: str, as_of: datetime | None,
          breaks: Sequence[ChainBreak] = (), mismatches: Sequence[Mismatch] = (),
          verified: bool = False) -> dict[str, Any]:
    return {
        "source": source, "as_of": as_of.isoformat() if as_of else None,
        "events_read": rebuilt.events, "events_rejected": rebuilt.rejected,
        "records_undecodable": rebuilt.undecodable,
        "verification": {"performed": verified, "chain_breaks": [str(b) for b in breaks],
                         "mismatches": [str(m) for m in mismatches],
                         "ok": verified and not breaks and not mismatches},
        "open_alerts": [list(a) for a in sorted(rebuilt.open_alerts())],
        "contracts": [contract_lineage(s, catalogue) for _, s in sorted(rebuilt.states.items())
                      if s.terms is not None],
    }


def write(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.json, totals.csv, lineage.csv and report.html in ``out_dir``; the CSV files
    are formula-safe (text a spreadsheet would run as a formula is quoted)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in ("report.json", "totals.csv", "lineage.csv", "report.html")]
    paths[0].write_text(json.dumps(report, indent=2))
    with paths[1].open("w", newline="") as fh:
        w = csv_writer(fh)
        w.writerow(["contract_id", "measure", "unit", "edition", "proxy_gbp", "target",
                    "claimed", "verified", "verified_gbp", "shortfall"])
        for c in report["contracts"]:
            for m in c["measures"]:
                w.writerow([c["contract_id"], m["measure"], m["unit"], m["edition"],
                            m["proxy_gbp"], m["target"], m["claimed"], m["verified"],
                            m["verified_gbp"], m["shortfall"]])
    with paths[2].open("w", newline="") as fh:
        w = csv_writer(fh)
        w.writerow(["contract_id", "measure", "evidence_id", "quantity", "status",
                    "submitted_by", "submitted_at", "decided_by", "decided_at", "value_gbp"])
        for c in report["contracts"]:
            for m in c["measures"]:
                for e in m["evidence"]:
                    w.writerow([c["contract_id"], m["measure"], e["evidence_id"],
                                e["quantity"], e["status"], e["submitted_by"],
                                e["submitted_at"], e["decided_by"], e["decided_at"],
                                e["value_gbp"]])
    paths[3].write_text(to_html(report))
    return paths


def to_html(report: dict[str, Any]) -> str:
    e = html.escape
    v = report["verification"]
    status = ("verified: chain intact, figures match" if v["ok"] else
              "NOT VERIFIED" if v["performed"] else "not verified (run with --verify)")
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        "<title>svmon replay report</title><style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".bad{color:#b00}.ok{color:#060}details{margin-left:1em}</style>",
        "<h1>Replay report</h1>",
        f"<p>Source: {e(report['source'])}; as at: {e(str(report['as_of'] or 'now'))}; "
        f"events read: {report['events_read']}; rejected: {report['events_rejected']}.</p>",
        f"<p class='{'ok' if v['ok'] else 'bad'}'>{e(status)}</p>",
    ]
    if report.get("time_axes"):  # set by `svmon replay`: which cut each figure is on
        parts.append(f"<p>Figures on {e(report['time_axes']['record'])}; "
                     f"{e(report['time_axes']['delivery'])}.</p>")
    for title, items in (("Chain breaks", v["chain_breaks"]), ("Mismatches", v["mismatches"])):
        if items:
            parts.append(f"<h2>{title}</h2><ul class='bad'>")
            parts.extend(f"<li>{e(i)}</li>" for i in items)
            parts.append("</ul>")
    for c in report["contracts"]:
        parts.append(f"<h2>{e(c['contract_id'])}: {e(c['title'])}</h2>"
                     f"<p>{e(c['supplier'])}; clock {e(str(c['as_of']))}</p><table>"
                     "<tr><th>measure</th><th>target</th><th>claimed</th><th>verified</th>"
                     "<th>£ verified</th><th>shortfall</th><th>proxy (edition)</th></tr>")
        for m in c["measures"]:
            parts.append(
                f"<tr><td>{e(m['measure'])}</td><td>{e(str(m['target']))}</td>"
                f"<td>{e(m['claimed'])}</td><td>{e(m['verified'])}</td>"
                f"<td>{e(m['verified_gbp'])}</td><td>{e(str(m['shortfall']))}</td>"
                f"<td>{e(str(m['proxy_gbp']))} ({e(m['edition'])})</td></tr>")
        parts.append("</table>")
    parts.append("</html>")
    return "\n".join(parts)
