"""The Kafka intake: integrations produce to ``<prefix>.intake``; this consumer puts
each message through the API's gate and answers on ``<prefix>.intake-replies``.

Nobody but the system writes the contract-events topic. An integration (a supplier's
system, a council's case-management tool) produces its events to the intake topic
instead, with its API token in a header; this consumer, the only reader of that topic,
hands each message to a *gate* (``svmon.api.intake.IntakeGate``, built by the
composition in that module: this layer does not import the API) which authenticates
the token, takes the actor from it, applies the HTTP API's checks and authority rules
by calling the same ``IngestService`` methods, and stores an accepted event in the
inbox. From there the inbox relay publishes it to contract-events keyed by contract id
with kafka-python's partitioner, exactly as an event received over HTTP.

Authentication
--------------
The message carries the sender's API token in a Kafka header, ``authorization:
Bearer <token>``, verified exactly as the HTTP API verifies it (tokens are stored only
as SHA-256 hashes; revocation takes effect on the next message). The identity, and so
the actor written on the event, comes from the token alone: a payload ``actor`` that
differs is refused. Why a token and not the broker's own principal (SASL/mTLS): the
token is the identity the HTTP API, the token list, revocation and the inbox's
``submitted_by``/``token_id`` already use, so both channels have one identity, one
revocation and one audit trail, and the check is the same code; broker principals
would need a second mapping from principal to supplier kept in step with the tokens.
A header is not secret from whoever can read the topic, hence the ACLs below: only
the system reads the intake topic, so a supplier cannot lift another's token from it.

Broker ACLs (production; the embedded broker has none)
------------------------------------------------------
- ``<prefix>.intake``: WRITE (and DESCRIBE) for every integration principal; READ
  only for the system principal (consumer group ``<app_id>-intake``: READ on that group).
- ``<prefix>.intake-replies``: WRITE only for the system principal; READ (and
  DESCRIBE) for integration principals, each with its own consumer group.
- ``<prefix>.contract-events``: WRITE only for the system principal (the API's relay
  and the workers' clock); READ for the workers; no integration has any access.
- ``<prefix>.alerts``, ``<prefix>.dead-letter``: the system principal only.

Replies
-------
Every message gets one reply on ``<prefix>.intake-replies``, keyed by the message's
key, carrying the intake partition and offset and either the receipt (``status``
``"accepted"``) or the refusal with the HTTP API's error body (``error``, ``message``,
``field``, ``expected``, ``got``; ``http_status`` says which status HTTP would have
answered). A topic of its own rather than the dead-letter topic: the dead-letter topic
is the worker's record of contract events the stream refused (journalled in the
database, listed by ``/v1/rejections``), a forged intake message never became a
contract event, acceptances are no dead letters, and the two need different readers
(suppliers read replies; only the system reads dead letters). Replies are visible to
every integration allowed to read the topic (Kafka ACLs are per topic, not per key):
they carry no token, only what the sender sent and the verdict.

Delivery
--------
Offsets are committed only after the inbox write has committed and every reply of
the batch has been acknowledged by the broker (``acks="all"``). A crash in between
delivers the message again; the inbox recognises the event id with the same request
and returns the original receipt (nothing stored twice), so the sender gets the same
answer again. A database outage stops the intake (nothing committed past the last
stored message) and it resumes from the committed offsets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from svmon.settings import Settings
from svmon.streams.runtime import BackgroundLoop

log = logging.getLogger(__name__)
TOKEN_HEADER = "authorization"


@dataclass(frozen=True, slots=True)
class IntakeMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]

    def header(self, name: str) -> str | None:
        """The last header of this name (case-insensitive), as text, or None."""
        found = None
        for k, v in self.headers:
            if k.lower() == name and v is not None:
                found = v.decode("utf-8", "replace")
        return found


# the gate: a message -> the reply's body; it raises only what ``retry`` names (the
# database is unavailable) and then nothing of the message was stored
Gate = Callable[[IntakeMessage], dict[str, Any]]


class IntakeConsumer:
    def __init__(self, settings: Settings, gate: Gate,
                 retry: tuple[type[BaseException], ...] = (),
                 max_records: int = 200) -> None:
        self.settings, self.gate, self.retry = settings, gate, retry
        self.max_records = max_records
        self._runner: BackgroundLoop | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self.handled = 0  # messages answered and committed
        self.accepted = 0
        self.refused = 0

    # ------------------------------------------------------------ clients

    def _clients(self) -> tuple[Any, Any]:
        if self._consumer is None:
            s = self.settings
            self._producer = KafkaProducer(
                bootstrap_servers=s.bootstrap, acks="all", retries=10, linger_ms=2,
                max_in_flight_requests_per_connection=1, request_timeout_ms=10_000,
                client_id=f"{s.app_id}-intake-replies")
            self._consumer = KafkaConsumer(
                s.intake_topic, bootstrap_servers=s.bootstrap, group_id=f"{s.app_id}-intake",
                client_id=f"{s.app_id}-intake", enable_auto_commit=False,
                auto_offset_reset="earliest", session_timeout_ms=int(s.session_timeout * 1000),
                heartbeat_interval_ms=max(500, int(s.session_timeout * 1000) // 4),
                max_poll_interval_ms=max(60_000, int(s.session_timeout * 1000) + 1000),
                fetch_max_wait_ms=s.fetch_max_wait_ms, request_timeout_ms=30_000)
        return self._consumer, self._producer

    def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # the broker may be gone: nothing to keep
                    log.debug("closing an intake client failed", exc_info=True)
        self._consumer = self._producer = None

    # -------------------------------------------------------------- rounds

    def run_once(self, timeout_ms: int = 500) -> int:
        """One poll: answer every message, then commit; returns messages committed.

        On a database outage the messages answered so far are committed and the
        exception propagates: the caller reconnects, and the rest comes again."""
        consumer, producer = self._clients()
        polled = consumer.poll(timeout_ms=timeout_ms, max_records=self.max_records)
        done: dict[TopicPartition, int] = {}
        futures: list[Any] = []
        failure: BaseException | None = None
        for tp, records in polled.items():
            for r in records:
                m = IntakeMessage(r.topic, r.partition, r.offset, r.key, r.value,
                                  list(r.headers or []))
                try:
                    body = self.gate(m)
                except self.retry as err:
                    failure = err
                    break
                body = {**body, "intake": {"topic": m.topic, "partition": m.partition,
                                           "offset": m.offset},
                        "key": m.key.decode("utf-8", "replace") if m.key is not None else None}
                if body.get("status") == "accepted":
                    self.accepted += 1
                else:
                    self.refused += 1
                futures.append(producer.send(
                    self.settings.intake_replies_topic, key=m.key,
                    value=json.dumps(body, default=str, separators=(",", ":")).encode()))
                done[tp] = r.offset + 1
            if failure is not None:
                break
        if futures:
            producer.flush(timeout=30)
            for f in futures:
                f.get(timeout=0)  # raises if the broker did not take a reply: no commit
        if done:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in done.items()})
        n = sum(1 for _ in futures)
        self.handled += n
        if failure is not None:
            raise failure
        return n

    def run_forever(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Answer messages until stopped, in this thread (:meth:`start`: a daemon's)."""
        self._loop().run(should_stop)

    def _loop(self) -> BackgroundLoop:
        def step() -> float:
            self.run_once()
            return 0.0  # the poll itself waits for the next messages
        return BackgroundLoop("kafka-intake", step, on_error=self._failed,
                              on_exit=self._close)

    def _failed(self, err: Exception, backoff: float) -> None:
        if isinstance(err, self.retry):
            log.warning("intake: database unavailable (%s); reading again from the last "
                        "commit in %.1fs", err, backoff)
        elif isinstance(err, KafkaError | OSError):
            log.warning("intake: broker unavailable (%s); retrying in %.1fs", err, backoff)
        else:
            log.error("intake round failed; retrying in %.1fs", backoff, exc_info=err)
        self._close()  # uncommitted messages are read again: the inbox dedupes them

    def start(self) -> IntakeConsumer:
        self._runner = self._loop().start()
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
