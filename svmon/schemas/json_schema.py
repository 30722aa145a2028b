"""What each field reader accepts, as JSON Schema, for the HTTP API's OpenAPI document.

The readers stay the authority: they also check what JSON Schema cannot say (printable
characters, valid calendar dates in range, at most 6 decimal places).
"""

from __future__ import annotations

from typing import Any

from svmon.schemas.fields import _BY_NAME, _DATA, REQUIRED, Reader
from svmon.schemas.identifiers import (
    ID_EXPECTED,
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    _id,
    _ident,
    _name,
    _optional_ident,
    _text,
    _unit,
)
from svmon.schemas.values import (
    _DECIMAL,
    _attachments,
    _date,
    _datetime,
    _days,
    _non_negative,
    _policy,
    _positive,
)

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
