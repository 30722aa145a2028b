"""The ingestion service: who may send what, checked against the contract's state, and
stored durably before anyone is told "accepted".

No web framework here: the HTTP app (``svmon.api.http``), the CSV import and the
command line call the same methods. Every event is built in its wire form, decoded by
the wire schema and folded against the contract's current state (``ContractViews``),
so a request is refused for the same reasons, with the same messages, as the stream
would refuse it. Only then is it written to the inbox (``svmon.models.ingest``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from svmon.api.ids import check_own_id, default_event_id
from svmon.api.views import ContractViews
from svmon.core import authority
from svmon.core import events as ev
from svmon.core.decisions import AlreadyDecided, ManagersDecision
from svmon.core.errors import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    RejectedEvent,
    SchemaError,
    SvmonError,
    Unauthorized,
)
from svmon.core.fold import fold
from svmon.core.state import ContractState
from svmon.models.ingest import Incoming, IngestStore, Principal, request_digest
from svmon.schemas import SCHEMA_VERSION, decode_event, encode_event, is_id, now_utc

MAX_BATCH = 500
LAST_USED_SECONDS = 60.0  # default of Settings.token_last_used_seconds

log = logging.getLogger(__name__)


@dataclass
class ItemError:
    index: int  # position in the batch (or the CSV row number)
    error: Exception

    def as_dict(self, label: str = "item") -> dict[str, Any]:
        err = self.error
        base = err.as_dict() if isinstance(err, InvalidInput) else \
            {"error": type(err).__name__, "message": str(err)}
        return {label: self.index, **base}


@dataclass
class ItemErrors(SvmonError):
    """Some items of a request were refused; nothing of the request was stored."""

    errors: list[ItemError] = field(default_factory=list)
    label: str = "item"

    def __str__(self) -> str:
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"{self.label} {first.index}: {first.error}{more}"


# which kind of party may send each event type over the API: the core's table
# (svmon.core.authority), less what only the system asserts (time passing)
SENDERS: dict[type[ev.ContractEvent], str] = {
    t: kind for t, kind in authority.SENDERS.items() if kind != "system"}


@dataclass
class Draft:
    """One request turned into an event, before it is checked and stored."""

    event: ev.ContractEvent
    incoming: Incoming


class IngestService:
    def __init__(self, store: IngestStore, views: ContractViews,
                 clock: Callable[[], datetime] = now_utc,
                 last_used_seconds: float = LAST_USED_SECONDS) -> None:
        self.store, self.views, self.clock = store, views, clock
        # a token's last-used time is written at most once per token per this interval:
        # when this process last wrote it, per token id
        self.last_used_every = timedelta(seconds=last_used_seconds)
        self._last_used_written: dict[str, datetime] = {}
        self._last_used_lock = threading.Lock()
        # a request's check and its write happen under its contracts' locks, so two
        # requests on one contract cannot both pass a check that only one may pass
        self._stripes = [threading.Lock() for _ in range(64)]

    # ----------------------------------------------------------- identity

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("send 'Authorization: Bearer <token>' (tokens come from "
                               "'svmon token create')")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 200:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        found = self.store.principal(token)
        if isinstance(found, str):
            raise Unauthorized(found)
        self._note_use(found.token_id)
        return found

    def _note_use(self, token_id: str) -> None:
        """Record the token's use, throttled; a failed write is logged, never raised."""
        now = self.clock()
        with self._last_used_lock:
            last = self._last_used_written.get(token_id)
            # due after the interval, or at once if the clock went back past the last write
            if last is not None and last <= now < last + self.last_used_every:
                return
            self._last_used_written[token_id] = now  # claimed: concurrent requests skip
        try:
            self.store.touch_token(token_id, now)
        except Exception:  # the request goes on; the next interval writes again
            log.warning("could not record the use of token %s", token_id, exc_info=True)

    # ------------------------------------------------------------- drafts

    def draft(self, p: Principal, type_name: str, contract_id: Any, data: Any,
              event_id: Any = None, default_id: str | None = None) -> Draft:
        """The event a request asks for, decoded by the wire schema (SchemaError names
        the request's own field, without the envelope's ``data.`` prefix)."""
        if event_id is not None:
            check_own_id(type_name, event_id)
        now = self.clock()
        wire = {"schema_version": SCHEMA_VERSION, "type": type_name,
                "event_id": event_id if event_id is not None else default_id,
                "contract_id": contract_id, "occurred_at": now.isoformat(),
                "actor": p.actor, "data": data}
        try:
            e = decode_event(wire)
        except SchemaError as err:
            f = err.field.removeprefix("data.")
            raise SchemaError(f, err.expected, err.got, contract_id=err.contract_id,
                              event_id=err.event_id) from None
        digest = request_digest(type_name, p.actor, data)
        return Draft(e, Incoming(e.contract_id, e.event_id, type_name,
                                 encode_event(e).decode(), digest))

    # -------------------------------------------------------------- checks

    def _authorise(self, p: Principal, state: ContractState, e: ev.ContractEvent) -> None:
        kind = SENDERS.get(type(e))
        if kind is None:
            raise NotAllowed(f"{type(e).__name__} cannot be sent over the API")
        if p.kind != kind:
            raise NotAllowed(f"only a {kind} may send {type(e).__name__} "
                             f"(this token is a {p.kind}'s)")
        if authority.parse_actor(p.actor)[0] != kind:  # e.g. a manager named "system"
            raise NotAllowed(f"{p.kind} {p.party!r} cannot send events: its actor "
                             f"{p.actor!r} reads as another party's")
        terms = state.terms
        if terms is None:
            if isinstance(e, ev.ContractRegistered):
                if not authority.manages(p.party, e):
                    raise NotAllowed(f"{p.party} may register only contracts they manage "
                                     f"(manager {e.manager!r})")
                return
            raise NotFound(f"no contract {e.contract_id!r}")
        if kind == "supplier" and not authority.supplies(p.party, terms):
            raise NotAllowed(f"contract {e.contract_id} is not supplier {p.party}'s")
        if kind == "manager" and not authority.manages(p.party, terms):
            raise NotAllowed(f"contract {e.contract_id} is not managed by {p.party}")

    def _check(self, p: Principal, state: ContractState, d: Draft) -> ContractState:
        """Authorise, then fold: the state after the event, or the reason it is refused."""
        e = d.event
        self._authorise(p, state, e)
        if isinstance(e, ev.EvidenceSubmitted):
            rec = state.evidence.get(e.evidence_id)
            if rec is not None and e.event_id not in rec.event_ids:
                raise Conflict("evidence_id", "an evidence id not used before on this "
                               f"contract (it was sent by event {rec.event_ids[0]!r})",
                               e.evidence_id, contract_id=e.contract_id, event_id=e.event_id)
        try:
            new, _ = fold(state, e, self.views.catalogue, self.views.policy)
        except (AlreadyDecided, ManagersDecision) as err:
            # a conflict with the decision on record (docs/measurement.md, decisions): 409
            raise Conflict(err.field, err.expected, err.got, contract_id=e.contract_id,
                           event_id=e.event_id) from err
        except RejectedEvent as err:
            if isinstance(e, ev.MilestoneScheduled) and err.field == "milestone_id":
                # the fold refuses a milestone id reused with another body; over HTTP
                # that is a conflict with the milestone already there (409)
                raise Conflict(err.field, err.expected, err.got, contract_id=e.contract_id,
                               event_id=e.event_id) from err
            raise
        return new

    def accept(self, p: Principal, drafts: Sequence[tuple[int, Draft | InvalidInput]],
               channel: str, *, partial: bool = False,
               progress: Callable[[int], None] | None = None
               ) -> tuple[list[dict[str, Any]], list[ItemError]]:
        """Check every (index, draft), then store the drafts in one transaction.

        Without ``partial`` one refused item refuses the request (:class:`ItemErrors`,
        nothing stored); with it the valid items are stored and the refused ones
        returned. Retries (an event id already received with the same request) get their
        original receipt back without being checked again.
        """
        ready = [(i, d) for i, d in drafts if isinstance(d, Draft)]
        stripes = sorted({hash(d.incoming.contract_id) % len(self._stripes) for _, d in ready})
        with contextlib.ExitStack() as held:
            for n in stripes:
                held.enter_context(self._stripes[n])
            return self._accept(p, drafts, ready, channel, partial, progress)

    def _accept(self, p: Principal, drafts: Sequence[tuple[int, Draft | InvalidInput]],
                ready: list[tuple[int, Draft]], channel: str, partial: bool,
                progress: Callable[[int], None] | None
                ) -> tuple[list[dict[str, Any]], list[ItemError]]:
        errors = [ItemError(i, d) for i, d in drafts if not isinstance(d, Draft)]
        known = self.store.known([(d.incoming.contract_id, d.incoming.event_id)
                                  for _, d in ready])
        states: dict[str, ContractState] = {}
        keep: list[Draft] = []
        for n, (i, d) in enumerate(ready, start=1):
            if progress is not None and n % 100 == 0:
                progress(100)
            inc = d.incoming
            old = known.get((inc.contract_id, inc.event_id))
            if old is not None:  # a retry, unless the id was used for something else
                try:
                    self._authorise(p, states.get(inc.contract_id)
                                    or self.views.state(inc.contract_id), d.event)
                except (NotAllowed, NotFound) as err:
                    errors.append(ItemError(i, err))
                    continue
                if old != inc.request_sha256:
                    how = "for a different request" if old else \
                        "(an event sent straight to the topic used it)"
                    errors.append(ItemError(i, Conflict(
                        "event_id", f"an id not already used on this contract {how}",
                        inc.event_id, contract_id=inc.contract_id, event_id=inc.event_id)))
                else:
                    keep.append(d)
                continue
            cid = inc.contract_id
            state = states.get(cid) or self.views.state(cid)
            try:
                states[cid] = self._check(p, state, d)
            except (InvalidInput, NotAllowed, NotFound) as err:
                errors.append(ItemError(i, err))
                continue
            keep.append(d)
        errors.sort(key=lambda x: x.index)
        if errors and not partial:
            raise ItemErrors(errors)
        if not keep:
            return [], errors
        stored = self.store.receive([d.incoming for d in keep], p, channel)
        return [r for r, _ in stored], errors

    # ------------------------------------------------------------ requests

    def submit_evidence(self, p: Principal, items: Sequence[tuple[int, Any]],
                        channel: str = "http", *, partial: bool = False,
                        progress: Callable[[int], None] | None = None
                        ) -> tuple[list[dict[str, Any]], list[ItemError]]:
        """(index, item) pairs, each item an object with ``contract_id`` and the
        evidence's fields; the index names the item in errors (a CSV row number)."""
        if len(items) > MAX_BATCH and channel == "http":
            raise InvalidInput("items", f"at most {MAX_BATCH} items per request",
                               f"{len(items)} items")
        drafts: list[tuple[int, Draft | InvalidInput]] = []
        for n, item in items:
            if isinstance(item, InvalidInput):  # known bad already (a malformed CSV row)
                drafts.append((n, item))
                continue
            try:
                drafts.append((n, self.evidence_draft(p, item)))
            except InvalidInput as err:
                drafts.append((n, err))
        return self.accept(p, drafts, channel, partial=partial, progress=progress)

    def evidence_draft(self, p: Principal, item: Any) -> Draft:
        if not isinstance(item, Mapping):
            raise SchemaError("item", "an object with the evidence's fields", item)
        data = {k: v for k, v in item.items() if k not in ("contract_id", "event_id")}
        if "unit" not in data:
            raise SchemaError("unit", "present (the unit of the measure, e.g. 'hours'; "
                              "it guards against numbers in the wrong unit)", None)
        return self.draft(p, "EvidenceSubmitted", item.get("contract_id"), data,
                          item.get("event_id"),
                          default_event_id("evidence", data.get("evidence_id")))

    def one(self, p: Principal, type_name: str, contract_id: str, body: Any,
            default_parts: tuple[object, ...] | None = None,
            extra: Mapping[str, Any] | None = None, channel: str = "http"
            ) -> dict[str, Any]:
        """A single event from a JSON object (the object's ``event_id`` is optional);
        ``channel`` (``http``, ``kafka``) is recorded in the inbox."""
        if not isinstance(body, Mapping):
            raise SchemaError("body", "a JSON object", type(body).__name__)
        data = {k: v for k, v in body.items() if k != "event_id"}
        data.update(extra or {})
        if default_parts is None:
            default_parts = self._amendment_parts(type_name, contract_id, data)
        draft = self.draft(p, type_name, contract_id, data, body.get("event_id"),
                           default_event_id(*default_parts))
        return self._single(p, draft, channel)

    def _amendment_parts(self, type_name: str, contract_id: Any, data: Mapping[str, Any]
                         ) -> tuple[object, ...]:
        """The default id of a registration, commitment or milestone: its values and the
        version it would make. A retry of the latest version gets that version's id back
        (the original receipt); going back to an earlier value is a new version, not a
        retry of the old one."""
        state = self.views.state(contract_id) if is_id(contract_id) else None
        what: tuple[Any, ...]
        if type_name == "CommitmentMade":
            what = ("commitment", data.get("measure"), data.get("target"))
            key = data.get("measure")
            c = state.commitments.get(key) if state and isinstance(key, str) else None
            ids, same = (c.event_ids, str(c.target) == str(data.get("target"))) if c \
                else ((), False)
        elif type_name == "MilestoneScheduled":
            what = ("milestone", data.get("milestone_id"), data.get("due"),
                    data.get("cumulative_target"))
            key = data.get("milestone_id")
            m = state.milestones.get(key) if state and isinstance(key, str) else None
            ids, same = (m.event_ids, (m.measure, str(m.due), str(m.cumulative_target)) ==
                         (data.get("measure"), str(data.get("due")),
                          str(data.get("cumulative_target")))) if m \
                else ((), False)
        else:
            what = ("registered", request_digest(type_name, "", data)[:16])
            t = state.terms if state else None
            ids, same = (t.event_ids, False) if t else ((), False)
        version = len(ids) - 1 if same else len(ids)
        return (*what, f"v{version}")

    def _single(self, p: Principal, draft: Draft, channel: str) -> dict[str, Any]:
        try:
            receipts, _ = self.accept(p, [(0, draft)], channel)
        except ItemErrors as err:
            raise err.errors[0].error from None
        return receipts[0]

    def register(self, p: Principal, body: Any, channel: str = "http") -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise SchemaError("body", "a JSON object", type(body).__name__)
        cid = body.get("contract_id")
        data = {k: v for k, v in body.items() if k not in ("contract_id", "event_id")}
        draft = self.draft(p, "ContractRegistered", cid, data, body.get("event_id"),
                           default_event_id(*self._amendment_parts(
                               "ContractRegistered", cid, data)))
        return self._single(p, draft, channel)

    def decide(self, p: Principal, contract_id: str, evidence_id: str, decision: str,
               body: Any, channel: str = "http") -> dict[str, Any]:
        type_name = {"verify": "EvidenceVerified", "reject": "EvidenceRejected",
                     "retract": "EvidenceRetracted"}[decision]
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            raise SchemaError("body", "a JSON object", type(body).__name__)
        if "evidence_id" in body and body["evidence_id"] != evidence_id:
            raise SchemaError("evidence_id", f"the id in the path, {evidence_id!r}",
                              body["evidence_id"])
        return self.one(p, type_name, contract_id, body, (decision, evidence_id),
                        {"evidence_id": evidence_id}, channel)

    # ------------------------------------------------------------ reading

    def visible_contract(self, p: Principal, contract_id: str) -> ContractState:
        state = self.views.state(contract_id)
        t = state.terms
        if t is None:
            raise NotFound(f"no contract {contract_id!r}")
        allowed = authority.supplies(p.party, t) if p.kind == "supplier" else \
            authority.manages(p.party, t)
        if not allowed:
            raise NotAllowed(f"contract {contract_id} is not visible to {p.kind} {p.party}")
        return state

    def contract_ids(self, p: Principal, contract_id: str | None) -> list[str]:
        if contract_id:
            self.visible_contract(p, contract_id)
            return [contract_id]
        return [c["contract_id"] for c in self.store.contracts_of(p)]

    def receipt(self, p: Principal, contract_id: str, event_id: str) -> dict[str, Any]:
        self.visible_contract(p, contract_id)
        r = self.store.receipt(contract_id, event_id)
        if r is None:
            raise NotFound(f"no event {event_id!r} received on contract {contract_id}")
        return r

