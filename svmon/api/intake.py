"""The gate of the Kafka intake: one intake message -> the same ``IngestService`` calls
as the HTTP API's handlers, and the reply the sender gets back.

See :mod:`svmon.streams.intake` for the design (authentication by the API token in the
``authorization`` header, the ACLs, replies, delivery). The message value is the wire
envelope ``EventPublisher`` sends (``type``, ``contract_id``, ``event_id``, ``data``;
``schema_version``, ``occurred_at`` and ``actor`` may be present), keyed by contract id:

- the token is checked by ``IngestService.authenticate``, as for every HTTP request;
- ``actor``, when present, must be the token's actor (the identity is the token's);
- ``occurred_at`` is ignored: the record time is the system's, as over HTTP;
- each type goes through the ``IngestService`` method its HTTP route calls, with the
  channel ``"kafka"`` (recorded in the inbox): evidence through ``submit_evidence``,
  registrations through ``register``, verifications, rejections and retractions
  through ``decide``, commitments and milestones through ``one``. So the authority
  rules, the schema, the fold against the contract's state and the default event ids
  are the HTTP API's, by construction: this module checks only the envelope.

A refusal's body is the HTTP API's error body for the same error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from svmon.api.http import _failure
from svmon.api.service import (
    IngestService,
    ItemErrors,
)
from svmon.core.errors import InvalidInput, NotAllowed, NotFound, SchemaError, Unauthorized
from svmon.models.engine import TRANSIENT
from svmon.models.ingest import Principal
from svmon.models.repository import Repository
from svmon.schemas import MAX_MESSAGE_BYTES, SCHEMA_VERSION, parse_json
from svmon.settings import Settings
from svmon.streams.intake import TOKEN_HEADER, IntakeConsumer, IntakeMessage

log = logging.getLogger(__name__)
CHANNEL = "kafka"
DECISIONS = {"EvidenceVerified": "verify", "EvidenceRejected": "reject",
             "EvidenceRetracted": "retract"}
ENVELOPE = {"schema_version", "type", "event_id", "contract_id", "occurred_at", "actor",
            "data"}


class IntakeGate:
    def __init__(self, service: IngestService) -> None:
        self.service = service

    def __call__(self, m: IntakeMessage) -> dict[str, Any]:
        """The reply to ``m``; raises only a transient database error (nothing stored)."""
        principal: Principal | None = None
        try:
            principal = self.service.authenticate(m.header(TOKEN_HEADER))
            receipt = self._submit(principal, m)
        except (Unauthorized, NotAllowed, NotFound, InvalidInput, ItemErrors) as err:
            return self._refused(err, principal)
        except TRANSIENT:
            raise
        except Exception:  # a defect costs this message, never the intake
            log.exception("internal error on intake message %s/%s@%s", m.topic, m.partition,
                          m.offset)
            return {"status": "refused", "http_status": 500, "error": "internal",
                    "message": "internal error; it has been logged; nothing was stored",
                    "sender": principal.actor if principal else None}
        return {"status": "accepted", "sender": principal.actor, "receipt": receipt}

    @staticmethod
    def _refused(err: Exception, principal: Principal | None) -> dict[str, Any]:
        response = _failure(err)
        body = json.loads(bytes(response.body))
        return {"status": "refused", "http_status": response.status_code, **body,
                "sender": principal.actor if principal else None}

    def _submit(self, p: Principal, m: IntakeMessage) -> dict[str, Any]:
        if m.value is None:
            raise SchemaError("value", "a UTF-8 JSON object (the event)", None)
        try:
            msg = parse_json(m.value, MAX_MESSAGE_BYTES)
        except SchemaError as err:
            raise SchemaError("value", "a UTF-8 JSON object (the event)", str(err.got)) \
                from None
        if not isinstance(msg, Mapping):
            raise SchemaError("value", "a JSON object (the event)", type(msg).__name__)
        extra = sorted(set(msg) - ENVELOPE)
        if extra:
            raise SchemaError(extra[0], f"absent (an event has {', '.join(sorted(ENVELOPE))})",
                              msg[extra[0]])
        if "schema_version" in msg and msg["schema_version"] != SCHEMA_VERSION:
            raise SchemaError("schema_version", str(SCHEMA_VERSION), msg["schema_version"])
        if "actor" in msg and msg["actor"] != p.actor:
            raise InvalidInput("actor", f"absent or {p.actor!r}, the actor of the token "
                               "(the token decides who sends)", msg["actor"])
        type_name, data = msg.get("type"), msg.get("data")
        cid: Any = msg.get("contract_id")  # the wire schema (the service's) says if it is one
        event_id = msg.get("event_id")
        if not isinstance(type_name, str):
            raise SchemaError("type", "an event type, e.g. EvidenceSubmitted", type_name)
        if not isinstance(data, Mapping):
            raise SchemaError("data", "a JSON object (the event's fields)",
                              type(data).__name__)
        key = m.key.decode("utf-8", "replace") if m.key is not None else None
        if key != cid:
            raise InvalidInput("key", f"the contract id {cid!r} (the key keeps a contract's "
                               "events in order)", key, contract_id=cid if
                               isinstance(cid, str) else None)
        for bad in ("contract_id", "event_id"):
            if bad in data:
                raise SchemaError(f"data.{bad}", "absent (it is in the envelope)", data[bad])
        body: dict[str, Any] = dict(data)
        if event_id is not None:
            body["event_id"] = event_id
        # each type through the method its HTTP route calls, with this channel
        if type_name == "EvidenceSubmitted":
            try:
                receipts, _ = self.service.submit_evidence(
                    p, [(0, {**body, "contract_id": cid})], CHANNEL)
            except ItemErrors as err:
                raise err.errors[0].error from None
            return receipts[0]
        if type_name == "ContractRegistered":
            return self.service.register(p, {**body, "contract_id": cid}, CHANNEL)
        decision = DECISIONS.get(type_name)
        if decision is not None:
            evidence_id = body.pop("evidence_id", None)
            if not isinstance(evidence_id, str):
                raise SchemaError("data.evidence_id", "the id of the evidence decided",
                                  evidence_id)
            return self.service.decide(p, cid, evidence_id, decision, body, CHANNEL)
        # commitments, milestones; and what no route takes (the clock's ticks, unknown
        # types), which the same method refuses as the API would
        return self.service.one(p, type_name, cid, body, channel=CHANNEL)


def build_intake(settings: Settings, repo: Repository) -> IntakeConsumer:
    """The intake consumer with its gate over the API's service (the composition)."""
    from svmon.api.server import build_service

    return IntakeConsumer(settings, IntakeGate(build_service(repo, settings)),
                          retry=TRANSIENT)


def serve(settings: Settings, *, relay: bool = False) -> None:
    """Run the intake in the foreground (``svmon intake``); with ``relay`` this process
    also publishes the inbox (when no API process runs one)."""
    import signal

    from svmon.api.relay import InboxRelay
    from svmon.api.server import build_service
    from svmon.bootstrap import init_database
    from svmon.streams.topics import ensure_topics

    # an accepted message's offset is committed only after its inbox row: SQLite syncs
    # every commit to disk, as for the API
    repo = init_database(settings, fsync_each_commit=True)
    ensure_topics(settings)
    service = build_service(repo, settings)
    intake = IntakeConsumer(settings, IntakeGate(service), retry=TRANSIENT)
    r = InboxRelay(service.store, settings).start() if relay else None
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        intake.run_forever(should_stop=lambda: stop)
    finally:
        if r is not None:
            r.stop()
