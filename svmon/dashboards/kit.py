"""What every dashboard notebook needs besides its layout: the repository from the
environment, money formatting, HTML tables and CSV/XLSX download links."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from svmon.models.repository import Repository
from svmon.safe_output import csv_writer, safe_name, xlsx_append


def open_repository() -> Repository:
    from svmon.bootstrap import repository
    from svmon.settings import Settings

    return repository(Settings.from_env())


def when_journal_grows(repo: Repository, fn: Any, every: float = 3.0) -> Any:
    """Call ``fn`` whenever new events were journalled (checked every ``every`` s) on the
    kernel's event loop, so a page shows new evidence without a reload; returns the
    task. A preheated kernel ran its notebook before the visitor came: this also brings
    such a page up to date."""
    import asyncio

    async def watch() -> None:
        seen = repo.counts()["journal"]
        while True:
            await asyncio.sleep(every)
            now = repo.counts()["journal"]
            if now != seen:
                seen = now
                fn()

    return asyncio.get_event_loop().create_task(watch())


def gbp(v: Decimal | None) -> str:
    return "–" if v is None else f"£{v:,.2f}"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
          table_id: str = "") -> str:
    """An HTML table of ``rows`` with (key, heading) columns, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = "".join(
        "<tr>" + "".join(f"<td data-col='{html.escape(k)}'>{html.escape(cell(r.get(k)))}</td>"
                         for k, _ in columns) + "</tr>" for r in rows)
    ident = f" id='{html.escape(table_id)}'" if table_id else ""
    return (f"<table{ident} class='svmon-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def cell(v: Any) -> str:
    """A value as a table shows it: decimals without trailing zeros, with separators."""
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return f"{v:,.0f}" if v == v.to_integral_value() else f"{v.normalize():,f}"
    if isinstance(v, list | tuple | set):
        return ", ".join(str(x) for x in v)
    return str(v)


def download_links(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                   name: str) -> str:
    """Links that download ``rows`` as CSV and XLSX (built in the kernel, no server).

    Both are formula-safe (svmon.safe_output): text that a spreadsheet would run as a
    formula (a description starting with ``=``) is quoted; numbers stay numbers. The
    file name is made safe too (``name`` often holds a contract id)."""
    name = safe_name(name)
    out = io.StringIO()
    w = csv_writer(out)
    w.writerow([h for _, h in columns])
    for r in rows:
        w.writerow([cell(r.get(k)) for k, _ in columns])
    csv_b64 = base64.b64encode(out.getvalue().encode()).decode()
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    xlsx_append(ws, [h for _, h in columns])
    for r in rows:
        xlsx_append(ws, [float(v) if isinstance(v, Decimal) else cell(v) if not
                         isinstance(v, int | float) else v
                         for v in (r.get(k) for k, _ in columns)])
    buf = io.BytesIO()
    wb.save(buf)
    xlsx_b64 = base64.b64encode(buf.getvalue()).decode()
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return (f"<a download='{html.escape(name)}.csv' href='data:text/csv;base64,{csv_b64}'>"
            f"CSV</a> · <a download='{html.escape(name)}.xlsx' "
            f"href='data:{xlsx};base64,{xlsx_b64}'>XLSX</a>")


def printable(title: str, sections: Sequence[tuple[str, Sequence[dict[str, Any]],
                                                     Sequence[tuple[str, str]]]],
              name: str) -> str:
    """A link to a self-contained HTML page of ``sections`` (heading, rows, columns),
    laid out for printing (or saving as PDF from the browser's print dialogue)."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{table(rows, cols)}" for h, rows, cols in sections)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title>{STYLE}<style>body{{font-family:sans-serif;margin:2em}}"
           f"@media print{{a{{display:none}}}}</style></head><body>"
           f"<h1>{html.escape(title)}</h1>{body}</body></html>")
    b64 = base64.b64encode(doc.encode()).decode()
    return (f"<a id='printable' download='{html.escape(name)}.html' "
            f"href='data:text/html;base64,{b64}'>Printable summary</a>")


STYLE = """<style>
.svmon-table {border-collapse: collapse; font-size: 13px}
.svmon-table th, .svmon-table td {border-bottom: 1px solid #ddd; padding: 3px 8px;
  text-align: left}
.svmon-kpi {display: inline-block; margin-right: 28px} .svmon-kpi b {font-size: 20px}
.rag-red {color: #b00020} .rag-amber {color: #b36b00} .rag-green {color: #1b7f3b}
</style>"""
