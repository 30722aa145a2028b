"""Evidence in a CSV file: one row per evidence item, the same fields as the API.

    contract_id,evidence_id,measure,quantity,unit,period_start,period_end,description
    C-001,INV-0042,NT1,2.5,no. people FTE,2025-03-01,2025-03-31,Two apprentices hired

Rows are numbered as a spreadsheet shows them (the header is row 1). Empty optional
cells are left out; quantities stay text until the wire schema reads them as exact
decimals. Semantics of a partly valid file: by default nothing is stored when any row
is refused (fix and send the whole file again: rows already stored are recognised by
their event ids and counted once); with the ``valid`` mode the valid rows are stored
and every refused row is reported.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from svmon.core.errors import SchemaError
from svmon.safe_output import csv_writer

COLUMNS = ("contract_id", "evidence_id", "measure", "quantity", "unit", "period_start",
           "period_end", "description", "event_id")
REQUIRED = COLUMNS[:7]
MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
MODES = ("all", "valid")


def read_rows(raw: bytes | str) -> list[tuple[int, dict[str, Any] | SchemaError]]:
    """(row number, evidence item or what is wrong with the row) per data row;
    SchemaError for the file as a whole."""
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_CSV_BYTES:
            raise SchemaError("file", f"at most {MAX_CSV_BYTES // (1024 * 1024)} MiB",
                              f"{len(raw)} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise SchemaError("file", "UTF-8 text", f"a byte that is not UTF-8 at position "
                              f"{err.start}") from None
    else:
        text = raw.removeprefix("\ufeff")
    if "\x00" in text:
        raise SchemaError("file", "text without NUL characters", "a NUL character")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SchemaError("file", f"a header row with {', '.join(REQUIRED)}", "an empty file") \
            from None
    except csv.Error as err:
        raise SchemaError("file", "CSV", str(err)) from None
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise SchemaError("header", f"columns among {', '.join(COLUMNS)}", unknown[0])
    if len(set(names)) != len(names):
        raise SchemaError("header", "each column once", ",".join(names))
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise SchemaError("header", f"the columns {', '.join(REQUIRED)}",
                          f"no {missing[0]} column")
    rows: list[tuple[int, dict[str, Any] | SchemaError]] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank lines, common at the end of exported files
            if len(rows) >= MAX_ROWS:
                raise SchemaError("file", f"at most {MAX_ROWS} rows", "more")
            if len(cells) != len(names):
                rows.append((number, SchemaError("row", f"{len(names)} cells like the header",
                                                 f"{len(cells)} cells")))
                continue
            item = {n: c.strip() for n, c in zip(names, cells, strict=True)
                    if c.strip() or n in REQUIRED}
            rows.append((number, item))
    except csv.Error as err:
        raise SchemaError("file", "CSV", f"{err} (row {reader.line_num})") from None
    return rows


def error_rows(errors: list[Any]) -> str:
    """The per-row error report as CSV (row, field, expected, got, message), formula-safe:
    it quotes what came, and what came may start with ``=``."""
    out = io.StringIO()
    w = csv_writer(out)
    w.writerow(["row", "field", "expected", "got", "message"])
    for e in errors:
        d = e.as_dict("row")
        w.writerow([d["row"], d.get("field", ""), d.get("expected", ""), d.get("got", ""),
                    d["message"]])
    return out.getvalue()
