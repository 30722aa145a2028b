"""The contract event codec: JSON bytes to core events and back, derived facts out.

Decoding is the edge where untrusted bytes become core types: every problem raises
:class:`SchemaError` naming the field, what was expected and what came.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from svmon.core import events as ev
from svmon.core.errors import SchemaError
from svmon.schemas.fast_path import _decode_fast
from svmon.schemas.fields import (
    _BY_NAME,
    _DATA,
    EVENT_TYPE_NAMES,
    MAX_MESSAGE_BYTES,
    REQUIRED,
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
)
from svmon.schemas.identifiers import Ids, _err, _id, _ident
from svmon.schemas.values import _datetime


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)

# msgspec parses first: a compiled parser, for the common well-formed message. What it
# accepts, the standard library parses to the same objects (numbers with a fraction or
# exponent to the same Decimal, duplicate keys last-wins, the same nesting limit); what
# it refuses (NaN, Infinity, lone surrogates, integers past 64 bits, bad UTF-8, ...)
# goes to the standard library, whose verdict and error message are the wire format's.
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
