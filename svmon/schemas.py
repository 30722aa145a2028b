"""Wire schemas of every message, versioned, in one module.

A contract event on the wire (schema version 1) is a JSON object::

    {"schema_version": 1, "type": "EvidenceSubmitted", "event_id": "ev-1",
     "contract_id": "C-001", "occurred_at": "2025-03-31T17:00:00+00:00",
     "actor": "supplier:S01", "data": {"evidence_id": "ev-1", "measure": "NT1", ...}}

Quantities and money travel as strings ("12.5") or JSON numbers; either way they are
read as :class:`~decimal.Decimal`, never float. Decoding is the edge where untrusted
bytes become core types: every problem raises :class:`SchemaError` naming the field,
what was expected and what came.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from svmon.core import events as ev
from svmon.core.errors import SchemaError
from svmon.core.fast import builder

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MAX_MESSAGE_BYTES = 64 * 1024
MAX_QUANTITY = Decimal("1e12")
MAX_DECIMAL_PLACES = 6
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4000


# ------------------------------------------------------------------ field readers
# Each reader takes (raw value, field name, ids) and returns the core value.

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
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


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


def _date(v: Any, f: str, ids: Ids) -> date:
    if not isinstance(v, str):
        raise _err(f, "a date as YYYY-MM-DD", v, ids)
    try:
        d = date.fromisoformat(v)
    except ValueError:
        raise _err(f, "a date as YYYY-MM-DD", v, ids) from None
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise _err(f, f"a date in the years {MIN_YEAR}-{MAX_YEAR}", v, ids)
    return d


def _datetime(v: Any, f: str, ids: Ids) -> datetime:
    if not isinstance(v, str):
        raise _err(f, "an ISO 8601 timestamp with a UTC offset", v, ids)
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise _err(f, "an ISO 8601 timestamp with a UTC offset", v, ids) from None
    if dt.tzinfo is None:
        raise _err(f, "an ISO 8601 timestamp with a UTC offset", v, ids)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:
        dt = datetime.min.replace(tzinfo=UTC)  # out of range: refused just below
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise _err(f, f"a timestamp in the years {MIN_YEAR}-{MAX_YEAR}", v, ids)
    return dt


def _days(v: Any, f: str, ids: Ids) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 3660:
        raise _err(f, "a whole number of days from 1 to 3660", v, ids)
    return v


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


Reader = Callable[[Any, str, Ids], Any]
REQUIRED = object()

# Per event type: data field -> (reader, default or REQUIRED)
_DATA: dict[type[ev.ContractEvent], dict[str, tuple[Reader, Any]]] = {
    ev.ContractRegistered: {
        "title": (_name, REQUIRED), "buyer": (_name, REQUIRED),
        "buyer_department": (_text, ""), "supplier_id": (_id, REQUIRED),
        "supplier_name": (_name, REQUIRED), "start": (_date, REQUIRED), "end": (_date, REQUIRED),
        "value_gbp": (_non_negative, REQUIRED), "catalogue_edition": (_ident, REQUIRED),
        "manager": (_ident, REQUIRED), "reporting_cadence_days": (_days, 90),
        "deputy": (_optional_ident, ""), "supplier_contact": (_optional_ident, ""),
        "policy": (_policy, ()),
    },
    ev.CommitmentMade: {"measure": (_id, REQUIRED), "target": (_positive, REQUIRED)},
    ev.MilestoneScheduled: {
        "milestone_id": (_id, REQUIRED), "measure": (_id, REQUIRED),
        "due": (_date, REQUIRED), "cumulative_target": (_positive, REQUIRED),
    },
    ev.EvidenceSubmitted: {
        "evidence_id": (_id, REQUIRED), "measure": (_id, REQUIRED),
        "quantity": (_positive, REQUIRED), "period_start": (_date, REQUIRED),
        "period_end": (_date, REQUIRED), "description": (_text, ""),
        "attachments": (_attachments, ()), "unit": (_unit, ""),
    },
    ev.EvidenceVerified: {"evidence_id": (_id, REQUIRED), "note": (_text, "")},
    ev.EvidenceRejected: {"evidence_id": (_id, REQUIRED), "reason": (_name, REQUIRED)},
    ev.EvidenceRetracted: {"evidence_id": (_id, REQUIRED), "reason": (_text, "")},
    ev.ClockTicked: {"at": (_datetime, REQUIRED)},
}
_BY_NAME = {t.__name__: t for t in _DATA}
EVENT_TYPE_NAMES = tuple(_BY_NAME)


# ------------------------------------------------------------- JSON Schema
# What each reader accepts, as JSON Schema, for the HTTP API's OpenAPI document. The
# readers stay the authority: they also check what JSON Schema cannot say (printable
# characters, valid calendar dates in range, at most 6 decimal places).

_NUMBER = {"anyOf": [{"type": "string", "pattern": f"^{_DECIMAL.pattern}$"},
                     {"type": "number"}],
           "description": "a decimal number; a string keeps it exact"}
IDENT_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
                 "pattern": "^\\S+$"}
ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
             "pattern": f"^{ID_PATTERN}$", "description": ID_EXPECTED}
_JSON: dict[Reader, dict[str, Any]] = {
    _ident: IDENT_SCHEMA,
    _id: ID_SCHEMA,
    _optional_ident: {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": "^\\S*$"},
    _text: {"type": "string", "maxLength": MAX_TEXT_LENGTH},
    _name: {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
    _unit: {"type": "string", "maxLength": 60},
    _positive: {**_NUMBER, "description": "a decimal number greater than 0"},
    _non_negative: {**_NUMBER, "description": "a decimal number, 0 or more"},
    _date: {"type": "string", "format": "date"},
    _datetime: {"type": "string", "format": "date-time"},
    _days: {"type": "integer", "minimum": 1, "maximum": 3660},
    _attachments: {"type": "array", "maxItems": 50, "items": {
        "type": "object", "required": ["name", "sha256"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1},
                       "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                       "uri": {"type": "string"}}}},
}


def data_json_schema(type_name: str, *, required: tuple[str, ...] = (),
                     exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """JSON Schema of one event type's ``data`` object (``required`` adds to its own)."""
    from svmon.core.rules import POLICY_KEYS

    spec = _DATA[_BY_NAME[type_name]]
    props: dict[str, Any] = {}
    for name, (reader, _) in spec.items():
        if name in exclude:
            continue
        if reader is _policy:
            props[name] = {"type": "object", "additionalProperties": False,
                           "properties": {k: _JSON[_non_negative] for k in POLICY_KEYS}}
        else:
            props[name] = dict(_JSON[reader])
    needed = [n for n, (_, default) in spec.items() if default is REQUIRED and n not in exclude]
    needed += [n for n in required if n not in needed]
    return {"type": "object", "properties": props, "required": needed,
            "additionalProperties": False}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)

# msgspec parses the same JSON 2-3 times faster. What it accepts, the standard library
# parses to the same objects (numbers with a fraction or exponent to the same Decimal,
# duplicate keys last-wins, the same nesting limit); what it refuses (NaN, Infinity,
# lone surrogates, integers past 64 bits, bad UTF-8, ...) goes to the standard
# library, whose verdict and error message are the wire format's, as before.
try:
    import msgspec

    _FAST_JSON: Callable[[bytes | str], Any] | None = \
        msgspec.json.Decoder(float_hook=Decimal).decode
except ImportError:  # pragma: no cover - a dependency; the standard library alone works
    _FAST_JSON = None


def parse_json(raw: bytes | str, limit: int = MAX_MESSAGE_BYTES) -> Any:
    """Parse JSON with decimals kept exact and NaN/Infinity refused."""
    size = len(raw) if isinstance(raw, bytes | bytearray) else len(raw.encode("utf-8", "replace"))
    if size > limit:
        raise SchemaError("message", f"at most {limit} bytes", f"{size} bytes")
    if _FAST_JSON is not None:
        try:
            return _FAST_JSON(raw)
        except Exception:  # the standard library judges it, just below
            pass
    try:
        text = raw.decode() if isinstance(raw, bytes | bytearray) else raw
        return _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise SchemaError("message", "a UTF-8 JSON object", str(err)) from None


def decode_event(raw: bytes | str | Mapping[str, Any]) -> ev.ContractEvent:
    """Bytes (or a parsed object) from the wire to a core event, or SchemaError."""
    obj = raw if isinstance(raw, Mapping) else parse_json(raw)
    if type(obj) is dict:
        e = _decode_fast(obj)
        if e is not None:
            return e
    return _decode_checked(obj)


def _decode_checked(obj: Any) -> ev.ContractEvent:
    """The decoder that judges everything: every field through its reader, each
    problem a SchemaError naming the field. The fast path below hands it whatever it
    is not sure of."""
    if not isinstance(obj, Mapping):
        raise SchemaError("message", "a JSON object", type(obj).__name__)
    ids: Ids = {"event_id": None, "contract_id": None}
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) \
            or version not in SUPPORTED_VERSIONS:
        raise SchemaError("schema_version", f"one of {sorted(SUPPORTED_VERSIONS)}", version)
    # the event id is checked against the id grammar last: an id the API derived from
    # the body (see svmon.api.service.default_event_id) fails only when a field it was
    # made of fails, and that field's own error is the one to report
    event_id = _ident(obj.get("event_id"), "event_id", ids)
    ids["event_id"] = event_id
    contract_id = _id(obj.get("contract_id"), "contract_id", ids)
    ids["contract_id"] = contract_id
    type_name = obj.get("type")
    cls = _BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise _err("type", f"one of {', '.join(EVENT_TYPE_NAMES)}", type_name, ids)
    occurred_at = _datetime(obj.get("occurred_at"), "occurred_at", ids)
    actor = _ident(obj.get("actor", "system"), "actor", ids)
    data = obj.get("data")
    if not isinstance(data, Mapping):
        raise _err("data", "an object", data, ids)
    spec = _DATA[cls]
    unknown = sorted(str(k) for k in set(data) - set(spec))
    if unknown:
        raise _err(f"data.{unknown[0]}", f"one of the fields {sorted(spec)}", unknown[0], ids)
    values: dict[str, Any] = {}
    for name, (reader, default) in spec.items():
        if name not in data:
            if default is REQUIRED:
                raise _err(f"data.{name}", "present", None, ids)
            values[name] = default
            continue
        values[name] = reader(data[name], f"data.{name}", ids)
    if cls is ev.EvidenceSubmitted and values["period_end"] < values["period_start"]:
        raise _err("data.period_end", f"on or after period_start {values['period_start']}",
                   values["period_end"].isoformat(), ids)
    _id(event_id, "event_id", ids)
    return cls(event_id=event_id, contract_id=contract_id, occurred_at=occurred_at,
               actor=actor, **values)


# ------------------------------------------------------------------ fast path
# Most records are one of a few event types with plain ASCII identifiers, canonical
# decimals and UTC timestamps. ``_decode_fast`` decodes exactly those with cheap,
# inline checks, and returns None for anything else -- anything it is not sure the
# checked decoder accepts -- which then goes through ``_decode_checked``, so every
# refusal and every error message comes from one place. The fast path only ever
# accepts a subset of what the checked decoder accepts, and builds the same event
# (tests/unit/test_schemas.py checks both on random inputs).

# digits, then at most 6 places; 13 digits reach past MAX_QUANTITY, checked below
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,13}(?:\.[0-9]{1,6})?", re.ASCII)
_DATES: dict[str, date] = {}  # wire text -> date, for dates in the supported years
_TIMES: dict[str, datetime] = {}  # wire text -> UTC datetime, in the supported years
_CACHE_LIMIT = 8192


def _fast_ident(v: Any) -> TypeGuard[str]:
    """1-128 printable ASCII characters, no space: what _ident accepts first."""
    return type(v) is str and 0 < len(v) <= MAX_ID_LENGTH and v.isascii() \
        and v.isprintable() and " " not in v


def _fast_id(v: Any) -> TypeGuard[str]:
    return type(v) is str and ID_RE.fullmatch(v) is not None


def _fast_text(v: Any) -> TypeGuard[str]:
    """ASCII text without NUL within the limit (ASCII is always storable)."""
    return type(v) is str and len(v) <= MAX_TEXT_LENGTH and v.isascii() and "\x00" not in v


def _fast_positive(v: Any) -> Decimal | None:
    if type(v) is not str or not _PLAIN_DECIMAL.fullmatch(v):
        return None
    d = Decimal(v)
    return d if 0 < d <= MAX_QUANTITY else None


def _fast_date(v: Any) -> date | None:
    if type(v) is not str:
        return None
    d = _DATES.get(v)
    if d is None and len(v) == 10:
        try:
            d = date.fromisoformat(v)
        except ValueError:
            return None
        if not MIN_YEAR <= d.year <= MAX_YEAR:
            return None
        if len(_DATES) < _CACHE_LIMIT:
            _DATES[v] = d
    return d


def _fast_datetime(v: Any) -> datetime | None:
    """Only timestamps already in UTC ("+00:00" or "Z"), parsed and range-checked once."""
    if type(v) is not str:
        return None
    dt = _TIMES.get(v)
    if dt is None:
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            return None
        if dt.tzinfo is not UTC or not MIN_YEAR <= dt.year <= MAX_YEAR:
            return None
        if len(_TIMES) < _CACHE_LIMIT:
            _TIMES[v] = dt
    return dt


_new_submitted = builder(ev.EvidenceSubmitted)
_new_verified = builder(ev.EvidenceVerified)
_new_scheduled = builder(ev.MilestoneScheduled)
_new_ticked = builder(ev.ClockTicked)
_new_committed = builder(ev.CommitmentMade)
_new_attachment = builder(ev.Attachment)
_KEYS = {cls: frozenset(spec) for cls, spec in _DATA.items()}
_SUBMITTED_KEYS = _KEYS[ev.EvidenceSubmitted]
_VERIFIED_KEYS = _KEYS[ev.EvidenceVerified]
_SCHEDULED_KEYS = _KEYS[ev.MilestoneScheduled]
_TICKED_KEYS = _KEYS[ev.ClockTicked]
_COMMITTED_KEYS = _KEYS[ev.CommitmentMade]


def _fast_attachments(v: Any) -> tuple[ev.Attachment, ...] | None:
    if type(v) is not list or len(v) > 50:
        return None
    out = []
    for a in v:
        if type(a) is not dict:
            return None
        name, sha, uri = a.get("name"), a.get("sha256"), a.get("uri", "")
        if type(sha) is not str or not _SHA256.fullmatch(sha) or not _fast_text(name) \
                or not name.strip() or not _fast_text(uri):
            return None
        out.append(_new_attachment(name, sha, uri))
    return tuple(out)


def _fast_submitted(d: dict[str, Any], eid: str, cid: str, at: datetime,
                    actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _SUBMITTED_KEYS:
        return None
    evidence_id, measure = d.get("evidence_id"), d.get("measure")
    if not _fast_id(evidence_id) or not _fast_id(measure):
        return None
    quantity = _fast_positive(d.get("quantity"))
    start, end = _fast_date(d.get("period_start")), _fast_date(d.get("period_end"))
    if quantity is None or start is None or end is None or end < start:
        return None
    description, unit = d.get("description", ""), d.get("unit", "")
    if not _fast_text(description) or not _fast_text(unit) or not unit.isprintable() \
            or len(unit) > 60:
        return None
    attachments: tuple[ev.Attachment, ...] | None = ()
    if "attachments" in d:
        attachments = _fast_attachments(d["attachments"])
        if attachments is None:
            return None
    return _new_submitted(eid, cid, at, actor, evidence_id, measure, quantity, start, end,
                          description, attachments, unit)


def _fast_verified(d: dict[str, Any], eid: str, cid: str, at: datetime,
                   actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _VERIFIED_KEYS:
        return None
    evidence_id, note = d.get("evidence_id"), d.get("note", "")
    if not _fast_id(evidence_id) or not _fast_text(note):
        return None
    return _new_verified(eid, cid, at, actor, evidence_id, note)


def _fast_scheduled(d: dict[str, Any], eid: str, cid: str, at: datetime,
                    actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _SCHEDULED_KEYS:
        return None
    milestone_id, measure = d.get("milestone_id"), d.get("measure")
    if not _fast_id(milestone_id) or not _fast_id(measure):
        return None
    due, target = _fast_date(d.get("due")), _fast_positive(d.get("cumulative_target"))
    if due is None or target is None:
        return None
    return _new_scheduled(eid, cid, at, actor, milestone_id, measure, due, target)


def _fast_ticked(d: dict[str, Any], eid: str, cid: str, at: datetime,
                 actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _TICKED_KEYS:
        return None
    when = _fast_datetime(d.get("at"))
    return None if when is None else _new_ticked(eid, cid, at, actor, when)


def _fast_committed(d: dict[str, Any], eid: str, cid: str, at: datetime,
                    actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _COMMITTED_KEYS:
        return None
    measure, target = d.get("measure"), _fast_positive(d.get("target"))
    if not _fast_id(measure) or target is None:
        return None
    return _new_committed(eid, cid, at, actor, measure, target)


_FAST: dict[str, Callable[[dict[str, Any], str, str, datetime, str],
                          ev.ContractEvent | None]] = {
    "EvidenceSubmitted": _fast_submitted, "EvidenceVerified": _fast_verified,
    "MilestoneScheduled": _fast_scheduled, "ClockTicked": _fast_ticked,
    "CommitmentMade": _fast_committed,
}


def _decode_fast(obj: dict[str, Any]) -> ev.ContractEvent | None:
    """The common event, decoded cheaply; None for anything else (see above)."""
    version, type_name = obj.get("schema_version"), obj.get("type")
    if type(version) is not int or version != SCHEMA_VERSION or type(type_name) is not str:
        return None
    fast = _FAST.get(type_name)
    data = obj.get("data")
    if fast is None or type(data) is not dict:
        return None
    eid, cid, actor = obj.get("event_id"), obj.get("contract_id"), obj.get("actor", "system")
    if not _fast_id(eid) or not _fast_id(cid) or not _fast_ident(actor):
        return None
    at = _fast_datetime(obj.get("occurred_at"))
    if at is None:
        return None
    return fast(data, eid, cid, at, actor)


# --------------------------------------------------------------------- encoding


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, ev.Attachment):
        return {"name": value.name, "sha256": value.sha256, "uri": value.uri}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    return value


def _field_to_wire(name: str, value: Any) -> Any:
    if name == "policy":  # pairs on the core side, an object on the wire
        return {k: str(v) for k, v in value}
    return to_jsonable(value)


_ENVELOPE = ("event_id", "contract_id", "occurred_at", "actor")


def event_to_dict(e: ev.ContractEvent) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": type(e).__name__,
        "event_id": e.event_id,
        "contract_id": e.contract_id,
        "occurred_at": e.occurred_at.isoformat(),
        "actor": e.actor,
        "data": {f.name: _field_to_wire(f.name, getattr(e, f.name)) for f in fields(e)
                 if f.name not in _ENVELOPE},
    }


def encode_event(e: ev.ContractEvent) -> bytes:
    return json.dumps(event_to_dict(e), separators=(",", ":")).encode()


def derived_to_dict(d: ev.Derived) -> dict[str, Any]:
    """An alert-worthy derived fact as it goes onto the alerts topic."""
    body = {f.name: to_jsonable(getattr(d, f.name)) for f in fields(d)}
    return {"schema_version": SCHEMA_VERSION, "kind": d.kind, "derived_id": d.derived_id,
            **body}


def encode_derived(d: ev.Derived) -> bytes:
    return json.dumps(derived_to_dict(d), separators=(",", ":")).encode()


def now_utc() -> datetime:
    return datetime.now(UTC)
