"""Readers of decimals, dates, timestamps and the structured values of event data.

Quantities and money travel as strings ("12.5") or JSON numbers; either way they are
read as :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from svmon.core import events as ev
from svmon.schemas.identifiers import Ids, _err, _name, _text

MAX_QUANTITY = Decimal("1e12")
MAX_DECIMAL_PLACES = 6

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _decimal(v: Any, f: str, ids: Ids, *, positive: bool) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int | Decimal):
        raise _err(f, "a decimal number as a string or JSON number", v, ids)
    if isinstance(v, str) and not _DECIMAL.fullmatch(v):  # no "1_000", spaces, other digits
        finite = v.strip().lstrip("+-").lower() not in ("nan", "snan", "inf", "infinity")
        raise _err(f, "a decimal number such as 12 or 12.5" if finite else "a finite number",
                   v, ids)
    try:
        d = Decimal(v)
    except (InvalidOperation, ValueError):
        raise _err(f, "a decimal number", v, ids) from None
    if not d.is_finite():
        raise _err(f, "a finite number", v, ids)
    if positive and d <= 0:
        raise _err(f, "greater than 0", v, ids)
    if d < 0:
        raise _err(f, "at least 0", v, ids)
    if d > MAX_QUANTITY:
        raise _err(f, f"at most {MAX_QUANTITY:,.0f}", v, ids)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise _err(f, f"at most {MAX_DECIMAL_PLACES} decimal places", v, ids)
    return d


def _positive(v: Any, f: str, ids: Ids) -> Decimal:
    return _decimal(v, f, ids, positive=True)


def _non_negative(v: Any, f: str, ids: Ids) -> Decimal:
    return _decimal(v, f, ids, positive=False)


MIN_YEAR, MAX_YEAR = 1900, 2200


def _iso(v: Any, f: str, ids: Ids, parse: Any, expected: str) -> Any:
    """``v`` parsed by ``parse`` (``date``/``datetime.fromisoformat``), or the field's
    error saying ``expected``."""
    if not isinstance(v, str):
        raise _err(f, expected, v, ids)
    try:
        return parse(v)
    except ValueError:
        raise _err(f, expected, v, ids) from None


def _date(v: Any, f: str, ids: Ids) -> date:
    d: date = _iso(v, f, ids, date.fromisoformat, "a date as YYYY-MM-DD")
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise _err(f, f"a date in the years {MIN_YEAR}-{MAX_YEAR}", v, ids)
    return d


_TIMESTAMP = "an ISO 8601 timestamp with a UTC offset"


def _datetime(v: Any, f: str, ids: Ids) -> datetime:
    dt: datetime = _iso(v, f, ids, datetime.fromisoformat, _TIMESTAMP)
    if dt.tzinfo is None:
        raise _err(f, _TIMESTAMP, v, ids)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:
        dt = datetime.min.replace(tzinfo=UTC)  # out of range: refused just below
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise _err(f, f"a timestamp in the years {MIN_YEAR}-{MAX_YEAR}", v, ids)
    return dt


def _days(v: Any, f: str, ids: Ids) -> int:
    # 90.0 is a whole number too (JSON has one number type; JSON Schema counts it an
    # integer, and so does the API's document)
    if (isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value()) \
            or (isinstance(v, float) and v.is_integer()):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 3660:
        raise _err(f, "a whole number of days from 1 to 3660", v, ids)
    return v



def _policy(v: Any, f: str, ids: Ids) -> tuple[tuple[str, Decimal], ...]:
    """A contract's own alert thresholds: {"at_risk_threshold": "0.8", ...}."""
    from svmon.core.rules import POLICY_KEYS

    if not isinstance(v, Mapping):
        raise _err(f, f"an object with some of {', '.join(POLICY_KEYS)}", v, ids)
    out = []
    for k in sorted(v, key=str):
        if k not in POLICY_KEYS:
            raise _err(f"{f}.{k}", f"one of {', '.join(POLICY_KEYS)}", k, ids)
        d = _non_negative(v[k], f"{f}.{k}", ids)
        if k == "reporting_lag_days" and (d != d.to_integral_value() or d > 365):
            raise _err(f"{f}.{k}", "a whole number of days from 0 to 365", v[k], ids)
        if k != "reporting_lag_days" and d > 10:
            raise _err(f"{f}.{k}", "a ratio of at most 10", v[k], ids)
        out.append((k, d))
    return tuple(out)



def _attachments(v: Any, f: str, ids: Ids) -> tuple[ev.Attachment, ...]:
    if not isinstance(v, list) or len(v) > 50:
        raise _err(f, "a list of at most 50 attachments", v, ids)
    out = []
    for i, a in enumerate(v):
        if not isinstance(a, Mapping):
            raise _err(f"{f}[{i}]", "an object with name and sha256", a, ids)
        sha = a.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise _err(f"{f}[{i}].sha256", "64 lowercase hex digits (SHA-256)", sha, ids)
        out.append(ev.Attachment(_name(a.get("name"), f"{f}[{i}].name", ids), sha,
                                 _text(a.get("uri", ""), f"{f}[{i}].uri", ids)))
    return tuple(out)
