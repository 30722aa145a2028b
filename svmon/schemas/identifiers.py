"""The one identifier grammar, and the readers of ids and text.

Each reader takes (raw value, field name, ids) and returns the core value, or raises
:class:`SchemaError` naming the field, what was expected and what came.
"""

from __future__ import annotations

import re
from typing import Any

from svmon.core.errors import SchemaError

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4000

Ids = dict[str, str | None]


def _err(field: str, expected: str, got: Any, ids: Ids) -> SchemaError:
    return SchemaError(field, expected, got, contract_id=ids.get("contract_id"),
                       event_id=ids.get("event_id"))


# The one grammar of the ids that name things: contracts, suppliers, measures, evidence,
# milestones and events. They end up in file names (``<contract>.ocds.json``), URL paths
# and spreadsheet cells, so: ASCII letters and digits and ``. _ : + -``, starting with a
# letter or digit (so never ``=``, ``+``, ``-`` or ``@`` first, which a spreadsheet reads
# as a formula), without ``..``, and no ``/``, ``\``, whitespace or control characters.
# Every id the project makes fits: ``C-001``, ``NT1``, ``L-VOL-2026``,
# ``C-001:evidence:NT1:2025-03``, ``tick:2025-05-01T00:00:00+00:00``,
# ``commitment:NT1:1E+3:v0``. The OpenAPI document's patterns are made from it.
ID_PATTERN = rf"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._:+-]{{0,{MAX_ID_LENGTH - 1}}}"
ID_RE = re.compile(ID_PATTERN, re.ASCII)
ID_EXPECTED = (f"an identifier of 1-{MAX_ID_LENGTH} characters: ASCII letters, digits and "
               "'.', '_', ':', '+', '-', starting with a letter or digit, without '..'")

_IDENT = re.compile(rf"\S{{1,{MAX_ID_LENGTH}}}")


_ASCII_IDENT = re.compile(rf"[!-~]{{1,{MAX_ID_LENGTH}}}")  # the common case, in one step


def _ident(v: Any, f: str, ids: Ids) -> str:
    if isinstance(v, str) and _ASCII_IDENT.fullmatch(v):
        return v
    if not isinstance(v, str) or not _IDENT.fullmatch(v) or not v.isprintable() \
            or not _storable(v):
        raise _err(f, f"an identifier of 1-{MAX_ID_LENGTH} printable characters without spaces",
                   v, ids)
    return v


def _id(v: Any, f: str, ids: Ids) -> str:
    """An id in the one grammar (``ID_PATTERN``)."""
    if type(v) is not str or not ID_RE.fullmatch(v):
        raise _err(f, ID_EXPECTED, v, ids)
    return v


def is_id(v: Any) -> bool:
    """Whether ``v`` is an id in the one grammar."""
    return type(v) is str and ID_RE.fullmatch(v) is not None


def _storable(v: str) -> bool:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (not encodable as UTF-8)."""
    if "\x00" in v:
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional_ident(v: Any, f: str, ids: Ids) -> str:
    return "" if v == "" else _ident(v, f, ids)


def _text(v: Any, f: str, ids: Ids) -> str:
    if not isinstance(v, str) or len(v) > MAX_TEXT_LENGTH or not _storable(v):
        raise _err(f, f"a string of at most {MAX_TEXT_LENGTH} characters without NUL or "
                   "lone surrogates", v, ids)
    return v


def _unit(v: Any, f: str, ids: Ids) -> str:
    if not isinstance(v, str) or len(v) > 60 or not v.isprintable() or not _storable(v):
        raise _err(f, "a unit of at most 60 printable characters, such as 'hours'", v, ids)
    return v


def _name(v: Any, f: str, ids: Ids) -> str:
    s = _text(v, f, ids)
    if not s.strip():
        raise _err(f, "a non-empty string", v, ids)
    return s
