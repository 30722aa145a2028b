"""The envelope's version and size, and each event type's data fields with their readers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from svmon.core import events as ev
from svmon.schemas.identifiers import Ids, _id, _ident, _name, _optional_ident, _text, _unit
from svmon.schemas.values import (
    _attachments,
    _date,
    _datetime,
    _days,
    _non_negative,
    _policy,
    _positive,
)

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MAX_MESSAGE_BYTES = 64 * 1024

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
