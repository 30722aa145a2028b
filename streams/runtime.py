"""Process-wide settings for the batch writer process (``svmon.streams.writer``): what a
long-running process wants that a test process does not. Faust's side of the worker
keeps Python's defaults: the same setting there measured +1% in bench/pipeline.py."""

from __future__ import annotations

import gc

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
