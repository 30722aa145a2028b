"""What every dashboard notebook needs besides its layout: the repository from the
environment, the page's deep link (``?contract=``...), HTML tables formatted by
``svmon.dashboards.format`` and CSV/XLSX download links (raw numbers)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from svmon.dashboards import format as fmt
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


def query_params() -> dict[str, str]:
    """The page's query string (``?contract=C-004``) as {name: first value}.

    A preheated Voila kernel ran the notebook before anyone asked for it: Voila hands it
    the visitor's request when one comes, so this waits for that (call it last, after
    the default view is on screen). In JupyterLab, or a kernel Voila started for the
    request, it returns at once."""
    import os

    try:
        from voila.utils import get_query_string  # type: ignore[import-untyped]

        query = get_query_string() or ""
    except ImportError:  # JupyterLab without Voila
        query = os.environ.get("QUERY_STRING", "")
    return {k: v[0] for k, v in parse_qs(query).items() if v}


def gbp(v: Decimal | None) -> str:
    """Whole pounds (``fmt.gbp``), kept here for the notebooks that call ``kit.gbp``."""
    return fmt.gbp(v)


Formatter = Callable[[Any, dict[str, Any]], str]
Column = tuple[str, str] | tuple[str, str, Formatter]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column],
          table_id: str = "", caption: str = "") -> str:
    """An HTML table of ``rows`` with (key, heading[, formatter]) columns. A formatter
    gets (value, row); its text is escaped unless it is ``fmt.Html``. Numbers are
    right-aligned."""
    head = "".join(f"<th scope='col'>{html.escape(c[1])}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_td(c, r) for c in columns) + "</tr>" for r in rows)
    ident = f" id='{html.escape(table_id)}'" if table_id else ""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<table{ident} class='svmon-table'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _td(c: Column, r: dict[str, Any]) -> str:
    v = r.get(c[0])
    text = c[2](v, r) if len(c) == 3 else cell(v)
    shown = text if isinstance(text, fmt.Html) else html.escape(text)
    num = " class='num'" if isinstance(v, int | float | Decimal) and not isinstance(v, bool) \
        else ""
    return f"<td data-col='{html.escape(c[0])}'{num}>{shown}</td>"


def cell(v: Any) -> str:
    """A value as a table shows it when its column names no formatter: at most two
    decimal places, with separators; dates the UK way."""
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return fmt.units(v) if v == v.to_integral_value() or abs(v) >= 100 \
            else f"{v.quantize(Decimal('0.01')).normalize():,f}"
    if isinstance(v, datetime):
        return fmt.uk_datetime(v)
    if isinstance(v, date):
        return fmt.uk_date(v)
    if isinstance(v, list | tuple | set):
        return ", ".join(str(x) for x in v)
    return str(v)


def download_links(rows: Sequence[dict[str, Any]], columns: Sequence[Column],
                   name: str) -> str:
    """Links that download ``rows`` as CSV and XLSX (built in the kernel, no server).

    Both are formula-safe (svmon.safe_output): text that a spreadsheet would run as a
    formula (a description starting with ``=``) is quoted; numbers stay numbers. The
    file name is made safe too (``name`` often holds a contract id)."""
    name = safe_name(name)
    out = io.StringIO()
    w = csv_writer(out)
    w.writerow([c[1] for c in columns])
    for r in rows:
        w.writerow([_raw(r.get(c[0])) for c in columns])
    csv_b64 = base64.b64encode(out.getvalue().encode()).decode()
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    xlsx_append(ws, [c[1] for c in columns])
    for r in rows:
        xlsx_append(ws, [float(v) if isinstance(v, Decimal) else _raw(v) if not
                         isinstance(v, int | float) else v
                         for v in (r.get(c[0]) for c in columns)])
    buf = io.BytesIO()
    wb.save(buf)
    xlsx_b64 = base64.b64encode(buf.getvalue()).decode()
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return (f"<a download='{html.escape(name)}.csv' href='data:text/csv;base64,{csv_b64}'>"
            f"CSV</a> · <a download='{html.escape(name)}.xlsx' "
            f"href='data:{xlsx};base64,{xlsx_b64}'>XLSX</a>")


def _raw(v: Any) -> str:
    """A value as a download holds it: exact decimals, ISO dates (a spreadsheet
    parses those), lists joined."""
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return f"{v.normalize():f}"
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list | tuple | set):
        return ", ".join(str(x) for x in v)
    return str(v)


def printable(title: str, sections: Sequence[tuple[str, Sequence[dict[str, Any]],
                                                     Sequence[Column]]],
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


def hint(text: str) -> str:
    """The one line under a page's title that says what to do there."""
    return f"<p class='svmon-hint' id='hint'>{html.escape(text)}</p>"


def loading(what: str) -> str:
    """What a panel shows while its query runs (the kernel sends it before the query)."""
    return (f"<p class='svmon-loading' role='status' aria-live='polite'>"
            f"Loading {html.escape(what)}…</p>")


def link(page: str, text: str, **params: str) -> fmt.Html:
    """A link to another dashboard, deep-linked (``contract.ipynb?contract=C-004``)."""
    from urllib.parse import urlencode

    query = f"?{urlencode(params)}" if params else ""
    return fmt.Html(f"<a href='{html.escape(page + '.ipynb' + query)}'>{html.escape(text)}</a>")


def kpi(label: str, value: str, ident: str) -> str:
    return (f"<span class='svmon-kpi'>{html.escape(label)}<br>"
            f"<b id='{html.escape(ident)}'>{html.escape(value)}</b></span>")


C = fmt.COLOURS
STYLE = f"""<style>
.svmon-table {{border-collapse: collapse; font-size: 13px; margin-bottom: 6px}}
.svmon-table th, .svmon-table td {{border-bottom: 1px solid #ccc; padding: 3px 8px;
  text-align: left; vertical-align: top}}
.svmon-table th {{white-space: nowrap}}
.svmon-table td[data-col='title'] {{min-width: 260px}}
.svmon-table td[data-col='alert_id'], .svmon-table td[data-col='evidence_id'] {{
  font-size: 11px; color: #3d3d3d; word-break: break-all; max-width: 260px}}
.svmon-table td.num {{text-align: right; font-variant-numeric: tabular-nums}}
.svmon-table caption {{text-align: left; font-weight: bold; padding: 4px 0}}
.svmon-kpi {{display: inline-block; margin: 0 28px 8px 0}} .svmon-kpi b {{font-size: 20px}}
.svmon-hint {{color: #3d3d3d; margin: 2px 0 10px}}
.svmon-loading {{color: #3d3d3d; font-style: italic}}
.rag-red, .rag-amber, .rag-green {{white-space: nowrap}}
.rag-red {{color: {C['red']}; font-weight: bold}} .rag-amber {{color: {C['amber']};
  font-weight: bold}} .rag-green {{color: {C['green']}; font-weight: bold}}
.svmon-rule {{color: #3d3d3d; font-size: 12px}}
a {{color: #1d4f91 !important; text-decoration: underline !important}}
.svmon-legend span {{margin-right: 18px; font-size: 13px; white-space: nowrap}}
.svmon-legend svg {{vertical-align: middle}}
</style>"""


def legend(items: Sequence[tuple[str, str, str]], ident: str = "") -> str:
    """A chart's legend as HTML beside the chart, never over its data: (colour, label,
    "line" | "dashed" | "bar" | "diamond") items."""
    def swatch(colour: str, shape: str) -> str:
        if shape == "diamond":
            return (f"<svg width='14' height='14' aria-hidden='true'><rect x='3' y='3' "
                    f"width='8' height='8' transform='rotate(45 7 7)' fill='{colour}'/></svg>")
        if shape == "bar":
            return (f"<svg width='14' height='14' aria-hidden='true'><rect x='1' y='1' "
                    f"width='12' height='12' fill='{colour}' stroke='{fmt.COLOURS['verified']}'"
                    "/></svg>")
        dash = " stroke-dasharray='4 3'" if shape == "dashed" else ""
        return (f"<svg width='22' height='14' aria-hidden='true'><line x1='1' y1='7' x2='21' "
                f"y2='7' stroke='{colour}' stroke-width='3'{dash}/></svg>")
    ident_attr = f" id='{html.escape(ident)}'" if ident else ""
    return (f"<div class='svmon-legend'{ident_attr}>" + "".join(
        f"<span>{swatch(c, s)} {html.escape(label)}</span>" for c, label, s in items)
        + "</div>")


# room for the y axis's tick labels (£ millions) and its label, so none is cut off
MARGIN = {"top": 40, "bottom": 60, "left": 90, "right": 45}
