"""A small kafka-python client for integrations that send events over Kafka.

    from svmon.streams.client import submit_evidence
    reply = submit_evidence(settings, "svm_...", contract_id="C-001", evidence_id="E1",
                            measure="NT1", quantity="2", unit="no. people FTE",
                            period_start="2026-03-01", period_end="2026-03-31")
    reply["status"]          # "accepted" (with the receipt) or "refused" (with why)

``send_via_intake`` sends any event envelope the same way and waits for its reply;
``EventPublisher`` streams many without waiting (read the replies topic for them):

    with EventPublisher("127.0.0.1:19092", token="svm_...") as pub:
        pub.send(event)          # a core event or a wire-format dict

By default it produces to the intake topic (``<prefix>.intake``) with the API token in
the ``authorization: Bearer <token>`` header: the intake consumer (``svmon.streams.intake``)
authenticates it, takes the actor from the token, applies the HTTP API's checks and
answers on ``<prefix>.intake-replies``. Any Kafka client can do the same (librdkafka,
the Java client): the header and the key are all that matter, not the partitioner.

Only the system writes the contract-events topic (the inbox relay, with this class and
``topic=settings.events_topic``; tests and benchmarks that feed the worker directly);
the broker's ACLs refuse integrations there, and the worker dead-letters a record on
another partition than kafka-python's murmur2 of its key.

Events are keyed by contract id so each contract's log stays in order; the producer
waits for every replica (``acks="all"``) and keeps one request in flight so retries
cannot reorder a contract's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaProducer

from svmon.core.errors import SchemaError, SvmonError
from svmon.core.events import ContractEvent
from svmon.schemas import decode_event, encode_event
from svmon.settings import Settings

TOKEN_HEADER = "authorization"  # as svmon.streams.intake reads it


class EventPublisher:
    def __init__(self, bootstrap: str, topic: str = Settings().intake_topic,
                 token: str | None = None, **producer_config: Any) -> None:
        """``token``: the API token the intake authenticates the sender by (sent in a
        header with every record); the system's own writers to contract-events pass
        that topic and no token."""
        config: dict[str, Any] = dict(bootstrap_servers=bootstrap, acks="all", retries=10,
                                      max_in_flight_requests_per_connection=1, linger_ms=5,
                                      batch_size=256 * 1024)
        config.update(producer_config)
        self.topic = topic
        self._headers = [(TOKEN_HEADER, f"Bearer {token}".encode())] if token else None
        self._producer = KafkaProducer(**config)

    def send(self, event: ContractEvent | Mapping[str, Any]) -> Any:
        """Validate against the wire schema, then send; returns the send future."""
        if not isinstance(event, ContractEvent):
            event = decode_event(event)  # raises SchemaError before anything is sent
        return self.send_raw(event.contract_id, encode_event(event))

    def send_raw(self, key: str | None, value: bytes,
                 headers: list[tuple[str, bytes]] | None = None) -> Any:
        """Send bytes as they are (tests use this to put bad input on the topic), with
        the token's header unless ``headers`` are given."""
        return self._producer.send(self.topic, key=key.encode() if key is not None else None,
                                   value=value, headers=headers if headers is not None
                                   else self._headers)

    def flush(self, timeout: float | None = 60) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()


def publish(events: Iterable[ContractEvent], settings: Settings,
            progress: Callable[[int], None] | None = None,
            offsets: dict[int, tuple[int, int]] | None = None) -> int:
    """Send events in order, wait until the broker has them all, return the count.

    ``offsets``, when given, is filled with partition -> (first, last) offset written.
    """
    n = 0

    def note(md: Any) -> None:
        if offsets is not None:
            first, last = offsets.get(md.partition, (md.offset, md.offset))
            offsets[md.partition] = (min(first, md.offset), max(last, md.offset))

    with EventPublisher(settings.bootstrap, settings.events_topic) as pub:
        for e in events:
            pub.send(e).add_callback(note)
            n += 1
            if progress and n % 500 == 0:
                progress(500)
        pub.flush()
    if progress:
        progress(n % 500)
    return n


class NoReply(SvmonError, TimeoutError):
    """The intake did not answer in time (it may be down); the message may still be
    answered later: send it again with the same event id, which the inbox recognises."""


def send_via_intake(settings: Settings, token: str, event: Mapping[str, Any], *,
                    timeout: float = 30.0, bootstrap: str | None = None) -> dict[str, Any]:
    """Produce one event to the intake with ``token`` in its header and wait for the
    intake's reply to that very message (matched by its partition and offset).

    ``event`` is the envelope the intake reads: ``type``, ``contract_id``, ``data`` and
    optionally ``event_id`` (no ``actor``: the token decides who sends). Returns the
    reply: ``status`` ``"accepted"`` with the ``receipt``, or ``"refused"`` with the
    HTTP API's error body (``error``, ``message``, ``field``, ``expected``, ``got``,
    ``http_status``). Raises :class:`NoReply` when none came within ``timeout``.
    """
    import json
    import time

    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    servers = bootstrap or settings.bootstrap
    cid = event.get("contract_id")
    if not isinstance(cid, str):
        raise SchemaError("contract_id", "a contract id (the message's key)", cid)
    replies = KafkaConsumer(bootstrap_servers=servers, group_id=None,
                            enable_auto_commit=False, request_timeout_ms=30_000)
    try:
        parts = replies.partitions_for_topic(settings.intake_replies_topic) or set()
        tps = [TopicPartition(settings.intake_replies_topic, n) for n in sorted(parts)]
        if not tps:
            raise NoReply(f"no topic {settings.intake_replies_topic!r} on {servers}")
        replies.assign(tps)
        replies.seek_to_end(*tps)
        for tp in tps:  # resolve the end now: a reply must not come before we look
            replies.position(tp)
        with EventPublisher(servers, settings.intake_topic, token=token) as pub:
            md = pub.send_raw(cid, json.dumps(dict(event), default=str).encode()) \
                .get(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in replies.poll(timeout_ms=200).values():
                for r in records:
                    body = json.loads(r.value)
                    at = body.get("intake") or {}
                    if (at.get("partition"), at.get("offset")) == (md.partition, md.offset):
                        return dict(body)
        raise NoReply(f"no reply from the intake within {timeout:g}s to the message at "
                      f"{settings.intake_topic}/{md.partition}@{md.offset}")
    finally:
        replies.close()


def submit_evidence(settings: Settings, token: str, *, contract_id: str, evidence_id: str,
                    measure: str, quantity: str, unit: str, period_start: str,
                    period_end: str, description: str = "", event_id: str | None = None,
                    timeout: float = 30.0) -> dict[str, Any]:
    """Send one piece of evidence through the intake as the supplier ``token`` is for,
    and return the intake's reply (see :func:`send_via_intake`): the importable form
    of ``svmon evidence send``. Every check is the HTTP API's, made before anything is
    stored, so a refusal comes back in the reply (the field, what was expected and
    what came) rather than as a dead letter to look up."""
    data = {"evidence_id": evidence_id, "measure": measure, "quantity": quantity,
            "unit": unit, "period_start": period_start, "period_end": period_end}
    if description:
        data["description"] = description
    envelope: dict[str, Any] = {"type": "EvidenceSubmitted", "contract_id": contract_id,
                                "data": data}
    if event_id is not None:
        envelope["event_id"] = event_id
    return send_via_intake(settings, token, envelope, timeout=timeout)


def send_evidence(settings: Settings, *, contract_id: str, supplier: str, evidence_id: str,
                  measure: str, quantity: str, period_start: str, period_end: str,
                  unit: str = "", description: str = "", event_id: str | None = None,
                  publisher: EventPublisher | None = None) -> ContractEvent:
    """Validate one evidence event against the wire schema and send it straight to the
    contract-events topic, with the actor the caller names.

    Deprecated for suppliers: use :func:`submit_evidence`, which goes through the
    intake with the supplier's token. This path only works where the producer may
    write contract-events (the embedded broker has no ACLs; in production only the
    system may), and only the fold's authority check stands between it and a forged
    actor. Checks that need the contract's state are the stream's: a refusal becomes
    a dead letter the supplier can list (``svmon evidence rejections``).
    """
    from svmon.schemas import SCHEMA_VERSION, now_utc

    event = decode_event({
        "schema_version": SCHEMA_VERSION, "type": "EvidenceSubmitted",
        "event_id": event_id or f"evidence:{evidence_id}", "contract_id": contract_id,
        "occurred_at": now_utc().isoformat(), "actor": f"supplier:{supplier}",
        "data": {"evidence_id": evidence_id, "measure": measure, "quantity": quantity,
                 "unit": unit, "period_start": period_start, "period_end": period_end,
                 "description": description}})
    if publisher is not None:
        publisher.send(event).get(timeout=30)
        return event
    with EventPublisher(settings.bootstrap, settings.events_topic) as pub:
        pub.send(event).get(timeout=30)
    return event
