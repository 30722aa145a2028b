"""Process-wide settings of the worker's two processes (Faust's side and the batch
writer): what a long-running stream process wants that a test process does not."""

from __future__ import annotations

import gc

YOUNG_GARBAGE = 50_000  # allocations between collections of the youngest objects


def collect_garbage_seldom(young: int = YOUNG_GARBAGE) -> None:
    """Let Python's cycle collector run less often in this process, and never over what
    is loaded by now.

    A batch makes and drops hundreds of thousands of small objects, nearly all freed by
    their reference counts; with the default threshold (700 allocations) the collector
    ran every few events, and its full collections walked every object the process
    holds (modules, compiled statements, the state cache). Moving
    the imports out of its sight (``gc.freeze``) and collecting the youngest generation
    every ``young`` allocations cut the batch writer's time per event by 9-15% in
    ``bench/stages.py`` (side by side, twice). Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 20, 100)
