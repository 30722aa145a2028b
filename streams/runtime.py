"""What long-running parts of a process share: the background loop the inbox relay and
the Kafka intake run in, and process-wide settings for the batch writer process
(``svmon.streams.writer``) that a test process does not want. Faust's side of the
worker keeps Python's defaults: the same garbage setting there measured +1% in
bench/pipeline.py."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

YOUNG_GARBAGE = 50_000  # allocations between collections of the youngest objects


def collect_garbage_seldom(young: int = YOUNG_GARBAGE) -> None:
    """Let Python's cycle collector run less often in this process, and never over what
    is loaded by now.

    A batch makes and drops many small objects, nearly all freed by their reference
    counts. In one process running 60,000 events through ``bench/stages.py``, the
    collector ran 1,345 / 122 / 8 times (youngest, middle, full) with the defaults and
    213 / 18 / 2 with this, start-up included. A full collection walks every object the
    process holds (modules, compiled statements, the state cache), bar frozen ones.
    Moving the start-up objects out of its sight (``gc.freeze``) and collecting the
    youngest generation every ``young`` allocations cut the batch writer's time per
    event by 9-15% in ``bench/stages.py`` (side by side, twice). Cycles are still
    collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 20, 100)


# what to do when a round raised: log it and let go of what may be broken (a client
# whose broker went away), given the error and the seconds until the next round
OnError = Callable[[Exception, float], None]


class BackgroundLoop:
    """Run ``step`` round after round until stopped, in a daemon thread (:meth:`start`)
    or in the caller's (:meth:`run`).

    ``step`` returns how long to pause before the next round (0: at once, there is more
    to do). A round that raises does not end the loop: ``on_error`` is told (by default
    the error is logged with its traceback) and the next round waits with backoff,
    ``first_backoff`` doubling to ``max_backoff``, reset by a round that succeeds. Why a
    loop that never gives up: its work (the inbox, the intake topic) waits durably for
    a database or broker that is away, and the process's supervisor should not have to
    restart a process for an outage that ends by itself. ``on_exit`` runs once when
    the loop ends (close clients)."""

    def __init__(self, name: str, step: Callable[[], float], *,
                 on_error: OnError | None = None, on_exit: Callable[[], None] | None = None,
                 first_backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        self.name, self.step = name, step
        self.on_error, self.on_exit = on_error, on_exit
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # rounds that raised, since the start

    def run(self, should_stop: Callable[[], bool] | None = None) -> None:
        backoff = self.first_backoff
        try:
            while not self._stop.is_set() and not (should_stop and should_stop()):
                try:
                    pause = self.step()
                except Exception as err:
                    self.failures += 1
                    self._failed(err, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                backoff = self.first_backoff
                if pause > 0:
                    self._stop.wait(pause)
        finally:
            if self.on_exit is not None:
                self.on_exit()

    def _failed(self, err: Exception, backoff: float) -> None:
        if self.on_error is None:
            log.error("%s: round failed; retrying in %.1fs", self.name, backoff,
                      exc_info=err)
            return
        try:
            self.on_error(err, backoff)
        except Exception:  # the handler's own cleanup failed: the loop must go on
            log.exception("%s: handling a failed round failed too", self.name)

    def start(self) -> BackgroundLoop:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the loop to end after the round in progress and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
