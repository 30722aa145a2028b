"""Consumers the benchmarks compare, one per process: ``python bench/agents.py ROLE FILE``.

Settings come from the environment (``SVMON_*``, as for a worker); progress goes to FILE
(:class:`bench.common.Progress`). Every role uses the same Faust app settings as the live
worker (``svmon.streams.app.faust_app``), on the same topic, and all but the two stock ones
the same fixes to Faust's consumer:

  noop   a Faust agent that reads each event and does nothing with it: the framework's
         own ceiling on this machine.
  table  the naive way: per event, parse the JSON and add the event to a running count
         and quantity total in a Faust table (a table update per event).
  shell  the live worker's agent around a pipeline that does nothing (no database
         writes, every record taken as it comes): the agent's own cost.
  live   the real worker (``svmon.streams.app.build_app``: decode, validate, fold, journal,
         projections, alert rules, all in the database), counting committed batches;
         with ``BENCH_COMMITS=FILE`` it also writes there, for each event, when its
         batch committed and when that batch was taken from Faust's buffer. Its
         batches are written where ``SVMON_BATCH_WRITER`` says (by default in a
         process beside the worker's, as a real worker does).
  thread the live worker with its batches written on its own threads
         (``SVMON_BATCH_WRITER=thread``, the one-process worker).
  stock-noop, stock-table
         noop and table on Faust as it comes (``faust_app(tuned=False)``): the anchors
         as a Faust user meets them, without this project's fixes to the consumer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust

from bench.common import Progress
from svmon.settings import Settings


def noop(settings: Settings, progress: Progress, tuned: bool = True) -> faust.App:
    from svmon.streams.app import faust_app

    app = faust_app(settings, tuned=tuned)
    topic = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="noop")
    async def read(stream: Any) -> None:
        async for _ in stream:
            progress.add()

    return app


def table(settings: Settings, progress: Progress, tuned: bool = True) -> faust.App:
    from svmon.streams.app import faust_app

    app = faust_app(settings, tuned=tuned)
    topic = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")
    totals = app.Table("bench-totals", default=lambda: [0, 0.0],
                       partitions=settings.partitions)

    @app.agent(topic, name="table")
    async def add(stream: Any) -> None:
        async for key, value in stream.items():
            body = json.loads(value)
            cid = key.decode()
            count, quantity = totals[cid]
            totals[cid] = [count + 1, quantity + float(body.get("quantity") or 0)]
            progress.add()

    return app


def live(settings: Settings, progress: Progress) -> faust.App:
    from svmon.bootstrap import init_database
    from svmon.models.repository import Batch
    from svmon.streams.app import build_app

    # file: "event id<TAB>commit time<TAB>time its batch was sent" a line
    commits = os.environ.get("BENCH_COMMITS")
    out = open(commits, "a", buffering=1) if commits else None  # noqa: SIM115 - process-long

    taken: deque[float] = deque()  # when each batch in flight was sent, oldest first

    async def committed(batch: Batch) -> None:
        progress.add(len(batch.journal) + len(batch.dead_letters))
        if out is not None:
            now = time.time()  # the batch's transaction has committed: projections visible
            sent = taken.popleft() if taken else now
            out.write("".join(f"{r['event_id']}\t{now}\t{sent}\n" for r in batch.journal))

    from svmon.bootstrap import repository

    app, pipeline = build_app(settings, init_database(settings, checkpoint_behind=True),
                              on_batch=committed, writer=settings.batch_writer,
                              open_repository=repository)
    submit = pipeline.submit

    def timed_submit(records: Any) -> Any:
        if out is not None:
            taken.append(time.time())  # the batch left Faust's buffer
        return submit(records)

    pipeline.submit = timed_submit  # type: ignore[method-assign]
    return app


def shell(settings: Settings, progress: Progress) -> faust.App:
    """The live worker's agent with a pipeline that does nothing: what the agent's own
    batching, offset checks and acknowledgements cost over the no-op agent."""
    from svmon.bootstrap import init_database
    from svmon.models.repository import Batch
    from svmon.streams.app import build_app

    app, pipeline = build_app(settings, init_database(settings))

    async def nothing(records: Any) -> Batch:
        progress.add(len(records))
        return Batch(consumer=settings.app_id)

    async def from_the_start(records: list[Any], owned: Any) -> tuple[list[Any], dict]:
        return records, {}  # nothing is written, so every partition starts at 0

    pipeline.handle = nothing  # type: ignore[method-assign]
    pipeline.follow_on = from_the_start  # type: ignore[method-assign]
    return app


def thread(settings: Settings, progress: Progress) -> faust.App:
    return live(settings.with_(batch_writer="thread"), progress)


def stock_noop(settings: Settings, progress: Progress) -> faust.App:
    return noop(settings, progress, tuned=False)


def stock_table(settings: Settings, progress: Progress) -> faust.App:
    return table(settings, progress, tuned=False)


ROLES = {"noop": noop, "table": table, "live": live, "shell": shell, "thread": thread,
         "stock-noop": stock_noop, "stock-table": stock_table}


def main() -> None:
    role, path = sys.argv[1], Path(sys.argv[2])
    settings = Settings.from_env()
    app = ROLES[role](settings, Progress(path))
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
