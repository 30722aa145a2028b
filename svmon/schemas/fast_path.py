"""The fast path of the event decoder."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeGuard

from svmon.core import events as ev
from svmon.schemas.fields import _DATA, SCHEMA_VERSION
from svmon.schemas.identifiers import ID_RE, MAX_ID_LENGTH, MAX_TEXT_LENGTH
from svmon.schemas.values import _SHA256, MAX_QUANTITY, MAX_YEAR, MIN_YEAR

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
        out.append(ev.Attachment(name, sha, uri))
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
    attachments: tuple[ev.Attachment, ...] = ()
    if "attachments" in d:
        listed = _fast_attachments(d["attachments"])
        if listed is None:
            return None
        attachments = listed
    return ev.EvidenceSubmitted(event_id=eid, contract_id=cid, occurred_at=at, actor=actor,
                                evidence_id=evidence_id, measure=measure, quantity=quantity,
                                period_start=start, period_end=end, description=description,
                                attachments=attachments, unit=unit)


def _fast_verified(d: dict[str, Any], eid: str, cid: str, at: datetime,
                   actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _VERIFIED_KEYS:
        return None
    evidence_id, note = d.get("evidence_id"), d.get("note", "")
    if not _fast_id(evidence_id) or not _fast_text(note):
        return None
    return ev.EvidenceVerified(event_id=eid, contract_id=cid, occurred_at=at, actor=actor,
                               evidence_id=evidence_id, note=note)


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
    return ev.MilestoneScheduled(event_id=eid, contract_id=cid, occurred_at=at, actor=actor,
                                 milestone_id=milestone_id, measure=measure, due=due,
                                 cumulative_target=target)


def _fast_ticked(d: dict[str, Any], eid: str, cid: str, at: datetime,
                 actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _TICKED_KEYS:
        return None
    when = _fast_datetime(d.get("at"))
    if when is None:
        return None
    return ev.ClockTicked(event_id=eid, contract_id=cid, occurred_at=at, actor=actor, at=when)


def _fast_committed(d: dict[str, Any], eid: str, cid: str, at: datetime,
                    actor: str) -> ev.ContractEvent | None:
    if not d.keys() <= _COMMITTED_KEYS:
        return None
    measure, target = d.get("measure"), _fast_positive(d.get("target"))
    if not _fast_id(measure) or target is None:
        return None
    return ev.CommitmentMade(event_id=eid, contract_id=cid, occurred_at=at, actor=actor,
                             measure=measure, target=target)


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
