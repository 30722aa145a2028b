"""Create the project's topics when they are missing (kafka-python admin client)."""

from __future__ import annotations

import contextlib
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from svmon.settings import Settings


def topic_configs(settings: Settings, topic: str | None = None) -> dict[str, str]:
    """Per-topic settings.

    The contract-events topic is the replayable history (``svmon replay --source
    topic``, and the way back to the present after a database restore), so the broker
    never deletes it by age or size. It is never compacted either: its keys are contract
    ids, and compaction would keep one event per contract. The alerts and dead-letter
    topics keep the broker's default retention: the database holds both durably. So do
    the intake topic (an accepted message is in the inbox before its offset is committed)
    and the intake-replies topic (a sender reads its answers soon or asks the API).

    With replicas, a write needs ``min.insync.replicas`` of them. The embedded broker
    has one replica, so that is not set there.
    """
    configs: dict[str, str] = {}
    if topic is not None and topic == settings.events_topic:
        configs.update({"retention.ms": "-1", "retention.bytes": "-1",
                        "cleanup.policy": "delete"})
    if settings.replication_factor > 1:
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    return configs


def wanted_topics(settings: Settings) -> dict[str, int]:
    """The project's topics and their partition counts."""
    return {settings.events_topic: settings.partitions,
            settings.alerts_topic: settings.partitions,
            settings.dead_letter_topic: 1,
            # integrations' messages, read by the intake consumer only (svmon.streams.intake)
            settings.intake_topic: settings.partitions,
            settings.intake_replies_topic: settings.partitions}


def _admin(settings: Settings, timeout: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=settings.bootstrap,
                                    client_id=f"{settings.app_id}-admin",
                                    request_timeout_ms=10_000)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    admin = _admin(settings, timeout)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, num_partitions=n,
                        replication_factor=settings.replication_factor,
                        topic_configs=topic_configs(settings, name))
               for name, n in wanted_topics(settings).items() if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(new)
    finally:
        admin.close()


def describe_topics(settings: Settings, timeout: float = 30.0) -> dict[str, tuple[int, int]]:
    """name -> (partitions, fewest replicas of any partition) of the project's topics
    that exist on the broker."""
    admin = _admin(settings, timeout)
    try:
        found: dict[str, tuple[int, int]] = {}
        for t in admin.describe_topics(list(wanted_topics(settings))):
            parts = t.get("partitions") or []
            if t.get("error_code") or not parts:
                continue
            replicas = min(len(p.get("replica_nodes", p.get("replicas", []))) for p in parts)
            found[str(t.get("name") or t.get("topic"))] = (len(parts), replicas)
        return found
    finally:
        admin.close()
