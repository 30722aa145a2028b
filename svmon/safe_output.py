"""Writing files from data safely: file names made from ids, and spreadsheet cells.

Two dangers of data that came from outside (a supplier's evidence, a manager's ids):

* **Paths.** A file named after an id must land in the folder asked for, whatever
  the id holds. The wire schema already refuses ids with ``/``, ``\\`` or ``..``
  (``svmon.schemas.ID_PATTERN``), but journals written before that rule, and future
  callers, go through :func:`safe_name` and :func:`path_in` anyway: the name is made
  portable (every character outside ``A-Z a-z 0-9 . _ -`` is written as ``%XX``, so
  two ids never share a name) and the resolved path is checked to stay inside the
  folder (a symlink planted in it does not lead out).
* **Formulas** (CSV or formula injection, OWASP). Spreadsheet programs run a cell
  that starts with ``=``, ``+``, ``-`` or ``@`` (also tab and carriage return) as a
  formula, e.g. ``=HYPERLINK("http://evil", "click")``. :func:`safe_cell` prefixes such
  text with a single quote, which keeps the text visible and makes it inert. Numbers
  are numbers, not text: a Decimal, int or float (and a string that is nothing but a
  plain number, such as ``-12.5``) is written as it is. Every CSV and XLSX the project
  writes goes through :func:`csv_writer` or :func:`xlsx_append`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from svmon.core.errors import InvalidInput

# ------------------------------------------------------------------ file names

_KEEP = re.compile(r"[A-Za-z0-9._-]")
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                               *(f"LPT{i}" for i in range(10))})
MAX_NAME = 180  # characters of the encoded id; file systems allow 255 bytes in all


class UnsafePath(InvalidInput):
    """A file name made from data would leave the folder it was meant for."""


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def safe_name(identifier: str) -> str:
    """A portable file name (without suffix) for ``identifier``, one to one.

    Characters outside ``A-Za-z0-9._-`` become ``%XX`` (``C-001:x`` ->
    ``C-001%3Ax``), as does a leading dot (no hidden files, no ``..``) and the first
    letter of a name Windows reserves (``CON``). A name longer than MAX_NAME is cut and
    ends with a digest of the whole id, so it stays unique."""
    if not isinstance(identifier, str) or not identifier:
        raise UnsafePath("file name", "a non-empty id", identifier)
    out = "".join(ch if _KEEP.fullmatch(ch) else _escape(ch) for ch in identifier)
    if out.startswith("."):
        out = "%2E" + out[1:]
    if out.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        out = _escape(out[0]) + out[1:]
    if len(out) > MAX_NAME:
        digest = hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        out = f"{out[:MAX_NAME - 17]}~{digest}"
    return out


def path_in(folder: Path, identifier: str, suffix: str = "") -> Path:
    """``folder / (safe_name(identifier) + suffix)``, refused (UnsafePath) unless the
    resolved path is a direct child of the resolved folder."""
    if "/" in suffix or "\\" in suffix:
        raise UnsafePath("suffix", "a suffix without a path separator", suffix)
    path = folder / f"{safe_name(identifier)}{suffix}"
    base = folder.resolve()
    resolved = path.resolve()
    if resolved.parent != base:
        raise UnsafePath("file name", f"a file inside {base}", str(resolved))
    return path


# ------------------------------------------------------------ spreadsheet cells

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9][0-9,]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


def safe_text(text: str) -> str:
    """``text`` made inert for a spreadsheet: a single quote before a formula start."""
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_cell(value: Any) -> Any:
    """A cell value: numbers and empty cells as they are, text made inert."""
    if isinstance(value, str):
        return safe_text(value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


class _SafeWriter:
    """csv.writer with every text cell through :func:`safe_cell`."""

    def __init__(self, fh: TextIO, **kw: Any) -> None:
        self._w = csv.writer(fh, **kw)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for r in rows:
            self.writerow(r)


def csv_writer(fh: TextIO, **kw: Any) -> _SafeWriter:
    """A formula-safe ``csv.writer`` (same arguments)."""
    return _SafeWriter(fh, **kw)


def xlsx_append(ws: Any, row: Iterable[Any]) -> None:
    """Append ``row`` to an openpyxl worksheet: numbers stay numbers, every text cell is
    stored as text (never a formula), a formula start quoted as in CSV."""
    values = [safe_cell(v) for v in row]
    ws.append(values)
    r = ws.max_row
    for i, v in enumerate(values, start=1):
        if isinstance(v, str):
            ws.cell(row=r, column=i).data_type = "s"
