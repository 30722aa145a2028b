"""Load measure catalogues from CSV or XLSX files (the edge; the core never reads files).

Columns (a header row, any order): ``edition, set_name, code, theme, outcome, category,
title, unit, proxy_gbp, illustrative, source``. ``proxy_gbp`` empty means a record-only
measure. A value with ``illustrative`` false must name its source.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from svmon.core.catalogue import Catalogue, Measure
from svmon.core.errors import InvalidInput
from svmon.schemas import MAX_DECIMAL_PLACES

COLUMNS = ("edition", "set_name", "code", "theme", "outcome", "category", "title", "unit",
           "proxy_gbp", "illustrative", "source")
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


class CatalogueFileError(InvalidInput):
    """A catalogue file with a bad row; the message names file, row and column."""


def demo_catalogue_path() -> Path:
    return Path(str(resources.files("svmon") / "data" / "catalogue-demo.csv"))


def _rows_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number as a spreadsheet or editor shows it, row)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, row


def _rows_xlsx(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook  # imported here: only XLSX users pay for it

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = wb.active
        if sheet is None:
            raise CatalogueFileError(f"{path.name}: sheet", "a workbook with a worksheet", None)
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        for number, row in enumerate(rows, start=2):
            if all(c is None for c in row):
                continue
            yield number, {h: ("" if c is None else c)
                           for h, c in zip(header, row, strict=False)}
    finally:
        wb.close()


def _measure(row: Mapping[str, Any], where: str) -> Measure:
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise CatalogueFileError(f"{where}: column {missing[0]}", "present", None)
    raw = {k: ("" if v is None else str(v).strip()) for k, v in row.items() if k}
    proxy: Decimal | None = None
    if raw["proxy_gbp"]:
        try:
            proxy = Decimal(raw["proxy_gbp"])
        except InvalidOperation:
            raise CatalogueFileError(f"{where}: proxy_gbp", "a decimal amount or empty",
                                     raw["proxy_gbp"]) from None
        # units carry at most 6 places, so units × proxy fits the 12 places that every
        # database stores exactly (PostgreSQL NUMERIC(38,12) would round a 13th away)
        exponent = proxy.as_tuple().exponent
        if not isinstance(exponent, int) or -exponent > MAX_DECIMAL_PLACES:
            raise CatalogueFileError(f"{where}: proxy_gbp",
                                     f"at most {MAX_DECIMAL_PLACES} decimal places",
                                     raw["proxy_gbp"])
    flag = raw["illustrative"].lower()
    if flag not in _TRUE | _FALSE:
        raise CatalogueFileError(f"{where}: illustrative", "true or false", raw["illustrative"])
    try:
        return Measure(edition=raw["edition"], code=raw["code"], title=raw["title"],
                       unit=raw["unit"], theme=raw["theme"], outcome=raw["outcome"],
                       category=raw["category"],  # type: ignore[arg-type]
                       proxy_gbp=proxy, source=raw["source"], illustrative=flag in _TRUE,
                       set_name=raw["set_name"] or "national")
    except InvalidInput as err:
        raise CatalogueFileError(f"{where}: {err.field}", err.expected, err.got) from err


def read_measures(path: str | Path) -> list[Measure]:
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        rows: Iterable[tuple[int, dict[str, Any]]] = _rows_xlsx(p)
    elif p.suffix.lower() == ".csv":
        rows = _rows_csv(p)
    else:
        raise CatalogueFileError("path", "a .csv or .xlsx file", str(p))
    return [_measure(r, f"{p.name} row {i}") for i, r in rows]


def load_catalogue(paths: Iterable[str | Path] = ()) -> Catalogue:
    """The demo catalogue plus any extra files (later editions, local sets)."""
    measures = []
    where: dict[tuple[str, str], str] = {}
    for path in (demo_catalogue_path(), *paths):
        for i, m in enumerate(read_measures(path), start=1):
            key = (m.edition, m.code)
            if key in where:
                raise CatalogueFileError(
                    f"{Path(path).name} measure {i}: code",
                    f"unique within edition {m.edition!r} (already in {where[key]})", m.code)
            where[key] = Path(path).name
            measures.append(m)
    return Catalogue(measures)
