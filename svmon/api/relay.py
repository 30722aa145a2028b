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
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kafka.errors import KafkaError

from svmon.models.ingest import IngestStore
from svmon.schemas import now_utc
from svmon.settings import Settings
from svmon.streams.runtime import BackgroundLoop

log = logging.getLogger(__name__)


class InboxRelay:
    def __init__(self, store: IngestStore, settings: Settings,
                 redeliver: timedelta | None = None, batch: int = 2000) -> None:
        self.store, self.settings = store, settings
        self.redeliver = max(redeliver or timedelta(seconds=settings.redeliver_seconds),
                             timedelta(seconds=0.5))  # 0 would republish without pause
        self.batch = batch
        self._publisher: Any = None
        self._runner: BackgroundLoop | None = None
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
        """Relay until stopped, in this thread (``svmon intake --relay`` runs it in its
        own; :meth:`start` in a daemon thread)."""
        self._loop(interval).run(should_stop)

    def _loop(self, interval: float) -> BackgroundLoop:
        def step() -> float:
            return 0.0 if self.run_once() >= self.batch else interval
        return BackgroundLoop("inbox-relay", step, on_error=self._failed,
                              on_exit=self._close)

    def _failed(self, err: Exception, backoff: float) -> None:
        if isinstance(err, KafkaError | OSError):
            log.warning("relay: broker unavailable (%s); retrying in %.1fs", err, backoff)
            self._close()
            # it may come back empty: offer everything again, in order of receipt (the
            # database may be down too: the loop logs that and tries again)
            self.store.republish_all()
        else:  # the database may be down: keep trying, loudly
            log.error("relay round failed; retrying in %.1fs", backoff, exc_info=err)

    def start(self, interval: float = 0.05) -> InboxRelay:
        self._runner = self._loop(interval).start()
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        self._close()

    def _close(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            except Exception:  # closing a producer whose broker is gone may fail: fine
                log.debug("closing the relay's producer failed", exc_info=True)
            self._publisher = None
