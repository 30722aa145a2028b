"""Event ids the API gives, and the ids a client may not choose.

A client may name its event's id (a retry is then recognised by it); without one the
API derives a deterministic id from what the event is, so a retry without an id is
still recognised. Ids are unique per contract, among all parties' events, so one
party must not be able to take the id the other party's next event will get.
"""

from __future__ import annotations

import hashlib
from typing import Any

from svmon.core.errors import SchemaError
from svmon.schemas import is_id


def default_event_id(*parts: object) -> str:
    """A deterministic id, so a retry without a client id is still recognised."""
    text = ":".join(str(p) for p in parts)
    if is_id(text):
        return text
    # too long or not an identifier: a digest keeps it valid, so the field's own check
    # (not the derived id's) reports what is wrong
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:40]
    return f"{parts[0]}:{digest}"


# the first part of the ids the API gives each type's events when the client gives none
# (``default_event_id``): a client's own id may not start like another type's, or a
# party could take the id the other party's next event will get (a supplier sending
# evidence under ``verify:E1`` would have the manager's verification of E1 refused)
DEFAULT_ID_PREFIXES = {"evidence": "EvidenceSubmitted", "verify": "EvidenceVerified",
                       "reject": "EvidenceRejected", "retract": "EvidenceRetracted",
                       "commitment": "CommitmentMade", "milestone": "MilestoneScheduled",
                       "registered": "ContractRegistered"}


def check_own_id(type_name: str, event_id: Any) -> None:
    """Refuse a client's event id that starts as the API's ids of another type do."""
    if not isinstance(event_id, str):
        return  # the wire schema says what is wrong with it
    prefix, colon, _ = event_id.partition(":")
    owner = DEFAULT_ID_PREFIXES.get(prefix.lower()) if colon else None
    if owner is not None and owner != type_name:
        raise SchemaError("event_id", f"an id that does not begin '{prefix}:' (the form of "
                          f"the ids the API gives {owner} events)", event_id)
