"""A small kafka-python client for integrations that send events over Kafka.

    from svmon.streams.client import EventPublisher
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


def send_evidence(settings: Settings, *, contract_id: str, supplier: str, evidence_id: str,
                  measure: str, quantity: str, period_start: str, period_end: str,
                  unit: str = "", description: str = "", event_id: str | None = None,
                  publisher: EventPublisher | None = None) -> ContractEvent:
    """Validate one evidence event against the wire schema and send it to the topic.

    The importable form of ``svmon evidence send``. Checks that need the contract's
    state (its term, the measure, the unit) are the stream's: a refusal becomes a dead
    letter that the supplier can list (``svmon evidence rejections``, ``/v1/rejections``).
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
