"""Where the worker's time goes per event, stage by stage, without the broker.

    python bench/stages.py [--events 40000] [--database-url URL]

Feeds the demo log in batches of ``SVMON_BATCH_SIZE`` (500) to the agent's own
``Pipeline.handle`` (the same decode, event-id gate and evidence read, fold and batch
write the worker runs), on SQLite in a temporary folder or on ``--database-url``, and
times each stage the pipeline calls. Prints microseconds per event for each, their
sum, the events/s that sum allows one core, and each stage's share. The broker and
Faust's own per-event cost are not in it: bench/pipeline.py measures the worker whole
beside a no-op agent. Its ratios are within one run, so they compare on a noisy
machine; the absolute figures do not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import demo_events, record_result
from svmon.settings import Settings

# stage -> what it covers
STAGES = {
    "decode": "bytes to a validated event (the edge)",
    "before_batch": "which event ids were decided before; the evidence the batch names",
    "state_versions": "the database's version of contracts met the first time",
    "process": "the fold: totals, milestones, alert rules",
    "apply_batch": "the batch's transaction: journal, chain, projections, alerts",
}


class Sinks:
    """Dead letters and notices are counted, not sent (no broker here)."""

    def __init__(self) -> None:
        self.dead_letters = 0

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self.dead_letters += 1

    async def notice(self, contract_id: str, body: str) -> None:
        pass

    async def tick(self, event: Any) -> None:
        pass


def timed(seconds: Counter[str], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def run(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            seconds[name] += time.perf_counter() - t0
    return run


async def feed(pipeline: Any, records: list[Any], batch_size: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(records), batch_size):
        chunk = records[i:i + batch_size]
        await pipeline.handle(chunk)
        pipeline.applied(chunk)
        done = i + len(chunk)
        if done % (batch_size * 20) == 0 or done == len(records):
            print(f"  {done:,} of {len(records):,}", flush=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--database-url", default="",
                    help="an empty database to write to (default: SQLite in a temporary "
                         "folder)")
    args = ap.parse_args()

    import svmon.streams.pipeline as app_module
    from svmon.bootstrap import init_database
    from svmon.schemas import encode_event
    from svmon.streams.pipeline import LocalStore, Pipeline
    from svmon.streams.processor import Record, partition_for

    events = demo_events(args.events)
    partitions = 4
    records = [Record("events", partition_for(e.contract_id.encode(), partitions), i,
                      e.contract_id.encode(), encode_event(e)) for i, e in enumerate(events)]
    folder = Path(tempfile.mkdtemp(prefix="svmon-stages-bench-"))
    settings = Settings(data_dir=folder, database_url=args.database_url,
                        partitions=partitions)
    repo = init_database(settings, checkpoint_behind=True)
    seconds: Counter[str] = Counter()
    for name in ("decode_all", "process"):  # the names the pipeline calls them by
        setattr(app_module, name, timed(seconds, "decode" if name == "decode_all" else name,
                                        getattr(app_module, name)))
    for name in ("before_batch", "state_versions", "apply_batch"):
        setattr(repo, name, timed(seconds, name, getattr(repo, name)))
    sinks = Sinks()
    pipeline = Pipeline(settings, repo, LocalStore(), sinks)
    database = "PostgreSQL" if repo.engine.dialect.name == "postgresql" else "SQLite"
    print(f"{len(records):,} events over {len({e.contract_id for e in events}):,} contracts, "
          f"batches of {settings.batch_size}, {database}")
    wall = asyncio.run(feed(pipeline, records, settings.batch_size))
    n = len(records)
    staged = sum(seconds.values())
    per_event = {s: 1e6 * seconds[s] / n for s in STAGES}
    for s, what in STAGES.items():
        print(f"  {s:<15} {per_event[s]:7.1f} µs/event  {seconds[s] / staged:5.1%}  ({what})")
    print(f"  {'stages':<15} {1e6 * staged / n:7.1f} µs/event, at most "
          f"{n / staged:,.0f} events/s on one core")
    print(f"  {'whole handle()':<15} {1e6 * wall / n:7.1f} µs/event (stages plus the hops "
          f"between them); {sinks.dead_letters} dead letters")
    figures: dict[str, Any] = {"events": n, "database": database,
                               "stages_us_per_event": round(1e6 * staged / n, 1),
                               "handle_us_per_event": round(1e6 * wall / n, 1),
                               "stages_events_s": round(n / staged),
                               **{f"{s}_us": round(v, 1) for s, v in per_event.items()},
                               **{f"{s}_share": round(seconds[s] / staged, 3)
                                  for s in STAGES}}
    record_result("stages", figures)


if __name__ == "__main__":
    main()
