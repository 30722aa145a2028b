"""Create the three topics when they are missing (kafka-python admin client)."""

from __future__ import annotations

import contextlib
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from svmon.settings import Settings


def topic_configs(settings: Settings) -> dict[str, str]:
    """Per-topic settings: with replicas, a write needs ``min.insync.replicas`` of them.

    The embedded broker has one replica, so nothing is set there.
    """
    if settings.replication_factor <= 1:
        return {}
    return {"min.insync.replicas": str(settings.min_insync_replicas)}


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    wanted = {settings.events_topic: settings.partitions,
              settings.alerts_topic: settings.partitions,
              settings.dead_letter_topic: 1}
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap,
                                     client_id=f"{settings.app_id}-admin",
                                     request_timeout_ms=10_000)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, num_partitions=n,
                        replication_factor=settings.replication_factor,
                        topic_configs=topic_configs(settings))
               for name, n in wanted.items() if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(new)
    finally:
        admin.close()
