"""Inbox relay: received events go from the database to the contract-events topic.

Each round takes the unsettled events that are due, sends them keyed by contract id
with ``acks="all"``, waits until the broker has every one, and only then records the
publish. An event the worker has not settled after ``redeliver`` is published again,
then after twice as long, and so on (at most every 10 minutes): the embedded broker
loses its log when it restarts, and the worker's event-id gate makes a second copy
harmless. The relay therefore never decides whether an event was lost; it keeps
offering it until the worker's transaction says it was decided.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kafka.errors import KafkaError

from svmon.models.ingest import IngestStore
from svmon.schemas import now_utc
from svmon.settings import Settings

log = logging.getLogger(__name__)


class InboxRelay:
    def __init__(self, store: IngestStore, settings: Settings,
                 redeliver: timedelta | None = None, batch: int = 2000) -> None:
        self.store, self.settings = store, settings
        self.redeliver = max(redeliver or timedelta(seconds=settings.redeliver_seconds),
                             timedelta(seconds=0.5))  # 0 would republish without pause
        self.batch = batch
        self._publisher: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self._next_give_up = 0.0

    def _producer(self) -> Any:
        if self._publisher is None:
            from svmon.streams.client import EventPublisher
            from svmon.streams.topics import ensure_topics

            ensure_topics(self.settings, timeout=10)
            self._publisher = EventPublisher(self.settings.bootstrap,
                                             self.settings.events_topic,
                                             request_timeout_ms=10_000)
        return self._publisher

    def run_once(self) -> int:
        """One round; returns how many events were published."""
        if time.monotonic() >= self._next_give_up:
            self.store.give_up()
            self._next_give_up = time.monotonic() + 10
        rows = self.store.due(now_utc(), self.batch)
        if not rows:
            return 0
        pub = self._producer()
        futures = [pub.send_raw(cid, payload.encode()) for _, cid, payload, _ in rows]
        pub.flush(timeout=30)
        for f in futures:
            f.get(timeout=0)  # raises if the broker did not take it
        self.store.published([(row_id, attempts) for row_id, _, _, attempts in rows],
                             now_utc(), self.redeliver)
        self.published += len(rows)
        return len(rows)

    def run_forever(self, interval: float = 0.05,
                    should_stop: Callable[[], bool] | None = None) -> None:
        backoff = 0.5
        while not self._stop.is_set() and not (should_stop and should_stop()):
            try:
                n = self.run_once()
                backoff = 0.5
            except (KafkaError, OSError) as err:
                log.warning("relay: broker unavailable (%s); retrying in %.1fs", err, backoff)
                self._close()
                try:  # it may come back empty: offer everything again, in order of receipt
                    self.store.republish_all()
                except Exception:
                    log.exception("relay: could not reschedule the inbox")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except Exception:  # the database may be down too: keep trying, loudly
                log.exception("relay round failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if n < self.batch:
                self._stop.wait(interval)

    def start(self) -> InboxRelay:
        self._thread = threading.Thread(target=self.run_forever, name="inbox-relay",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._close()

    def _close(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            except Exception:  # closing a producer whose broker is gone may fail: fine
                log.debug("closing the relay's producer failed", exc_info=True)
            self._publisher = None
