"""Wire schemas of every message, versioned.

A contract event on the wire (schema version 1) is a JSON object::

    {"schema_version": 1, "type": "EvidenceSubmitted", "event_id": "ev-1",
     "contract_id": "C-001", "occurred_at": "2025-03-31T17:00:00+00:00",
     "actor": "supplier:S01", "data": {"evidence_id": "ev-1", "measure": "NT1", ...}}

The package is split along its seams: :mod:`.identifiers` (the one id grammar and the
text readers), :mod:`.values` (decimals, dates, timestamps, policy, attachments),
:mod:`.fields` (each event type's data fields), :mod:`.json_schema` (the same rules as
JSON Schema for the OpenAPI document), :mod:`.codec` (decode and encode) and
:mod:`.fast_path` (the decoder's shortcut for the common records). Everything callers
use is importable from ``svmon.schemas`` itself (and the decoder's two halves, which
the tests compare).
"""

from __future__ import annotations

from svmon.schemas.codec import (
    _DECODER,
    _decode_checked,
    decode_event,
    derived_to_dict,
    encode_derived,
    encode_event,
    event_to_dict,
    now_utc,
    parse_json,
    to_jsonable,
)
from svmon.schemas.fast_path import (
    _FAST,
    _decode_fast,
)
from svmon.schemas.fields import (
    EVENT_TYPE_NAMES,
    MAX_MESSAGE_BYTES,
    REQUIRED,
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    Reader,
)
from svmon.schemas.identifiers import (
    ID_EXPECTED,
    ID_PATTERN,
    ID_RE,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    Ids,
    is_id,
)
from svmon.schemas.json_schema import (
    ID_SCHEMA,
    IDENT_SCHEMA,
    data_json_schema,
)
from svmon.schemas.values import (
    MAX_DECIMAL_PLACES,
    MAX_QUANTITY,
    MAX_YEAR,
    MIN_YEAR,
)

__all__ = [
    "EVENT_TYPE_NAMES",
    "IDENT_SCHEMA",
    "ID_EXPECTED",
    "ID_PATTERN",
    "ID_RE",
    "ID_SCHEMA",
    "MAX_DECIMAL_PLACES",
    "MAX_ID_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_QUANTITY",
    "MAX_TEXT_LENGTH",
    "MAX_YEAR",
    "MIN_YEAR",
    "REQUIRED",
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "_DECODER",
    "_FAST",
    "Ids",
    "Reader",
    "_decode_checked",
    "_decode_fast",
    "data_json_schema",
    "decode_event",
    "derived_to_dict",
    "encode_derived",
    "encode_event",
    "event_to_dict",
    "is_id",
    "now_utc",
    "parse_json",
    "to_jsonable",
]
