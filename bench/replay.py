"""Replay throughput: journal and topic replay beside a raw aiokafka consumer, one run.

    python bench/replay.py [--contracts 600] [--database-url postgresql://...]

Starts its own embedded broker, publishes the demo log for N contracts, journals it
through the live code path (processor + repository), then times, on the same data:

  raw      aiokafka consumer reading every record of the topic, doing nothing
  topic    svmon replay from the topic (kafka-python scan, decode, fold), in one
           process and in one process per core (partitions split between them)
  journal  svmon replay from the database journal (read, decode, fold)

and prints events/s and the ratios (target: topic ≥ 0.2 × raw). Not a test: shared
machines are noisy, so only ratios measured side by side mean anything.

    python bench/replay.py --stages [--contracts 600]

times the stages of a topic replay in this process instead, without a broker (CPU
time per event, best of five): kafka-python unpacking a record batch, JSON parsing,
decoding to core events, and folding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import record_result
from svmon.audit.replay import rebuild, rebuild_from_topic
from svmon.bootstrap import init_database
from svmon.core.state import ContractState
from svmon.demo import generate
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import publish
from svmon.streams.processor import Record, process
from svmon.streams.topics import ensure_topics


async def raw_consume(bootstrap: str, topic: str, expected: int, idle_ms: int = 2000) -> int:
    """Read until ``expected`` records arrived (no idle wait counted), or the topic ends."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        n = 0
        while True:
            batch = await c.getmany(timeout_ms=idle_ms, max_records=10_000)
            n += sum(len(v) for v in batch.values())
            if not batch or n >= expected:
                return n
    finally:
        await c.stop()


def timed(label: str, fn, n_expected: int | None = None) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    n = fn()
    dt = time.perf_counter() - t0
    if n_expected is not None and n != n_expected:
        print(f"  warning: {label} read {n}, expected {n_expected}")
    return n / dt, n


def stages(contracts: int) -> None:
    """Per-stage CPU time of a topic replay, in this process (no broker)."""
    from kafka.record import MemoryRecords, MemoryRecordsBuilder

    from svmon.audit.replay import event_from_record
    from svmon.catalogue_files import load_catalogue
    from svmon.schemas import parse_json

    catalogue = load_catalogue()
    events = generate(seed=1, contracts=contracts, today=datetime(2026, 6, 1, tzinfo=UTC).date())
    records = [(e.contract_id.encode(), encode_event(e)) for e in events]
    n = len(records)
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 30)
    for i, (k, v) in enumerate(records):
        builder.append(timestamp=1_700_000_000_000 + i, key=k, value=v, headers=[])
    builder.close()
    batch_bytes = bytes(builder.buffer())

    def unpack() -> None:
        m = MemoryRecords(batch_bytes)
        while m.has_next():
            for _ in m.next_batch():  # type: ignore[union-attr]
                pass

    def best(fn) -> float:  # type: ignore[no-untyped-def]
        times = []
        for _ in range(5):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return min(times) / n * 1e6

    print(f"{n} events over {contracts} contracts; CPU µs per event, best of 5")
    print(f"{'kafka-python record unpack':<28}{best(unpack):8.2f}")
    print(f"{'JSON parse':<28}{best(lambda: [parse_json(v) for _, v in records]):8.2f}")
    print(f"{'record to event (+ JSON)':<28}"
          f"{best(lambda: [event_from_record(k, v) for k, v in records]):8.2f}")
    print(f"{'fold (rebuild)':<28}{best(lambda: rebuild(events, catalogue)):8.2f}")
    print(f"{'record to event + fold':<28}"
          f"{best(lambda: rebuild((event_from_record(k, v) for k, v in records), catalogue)):8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contracts", type=int, default=600)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--stages", action="store_true",
                    help="time the stages in this process instead (no broker)")
    args = ap.parse_args()
    if args.stages:
        stages(args.contracts)
        return
    tmp = Path(tempfile.mkdtemp(prefix="svmon-bench-"))
    port = free_port()
    s = Settings(broker_url=f"kafka://127.0.0.1:{port}", data_dir=tmp,
                 database_url=args.database_url, app_id="bench", topic_prefix="bench")
    events = generate(seed=1, contracts=args.contracts, today=datetime.now(UTC).date())
    print(f"{len(events)} events over {args.contracts} contracts; python "
          f"{platform.python_version()} on {platform.machine()}, {platform.node()}")
    with EmbeddedBroker(port=port, log_path=tmp / "broker.log"):
        ensure_topics(s)
        publish(events, s)
        repo = init_database(s)
        store: dict[str, ContractState] = {}
        for i in range(0, len(events), 1000):
            chunk = events[i:i + 1000]
            b = process([Record(s.events_topic, 0, i + k, e.contract_id.encode(),
                                encode_event(e)) for k, e in enumerate(chunk)],
                        store.get, repo.catalogue, "bench")
            repo.apply_batch(b)
            store.update(b.states)
        n = len(events)
        raw, _ = timed("raw", lambda: asyncio.run(raw_consume(s.bootstrap, s.events_topic, n)), n)
        one, _ = timed("topic", lambda: rebuild_from_topic(s.bootstrap, s.events_topic,
                                                           repo.catalogue, processes=1).events, n)
        cores = os.cpu_count() or 1
        topic, _ = timed("topic", lambda: rebuild_from_topic(s.bootstrap, s.events_topic,
                                                             repo.catalogue).events, n)
        journal, _ = timed("journal", lambda: rebuild(repo.journal_events(),
                                                      repo.catalogue).events, n)
    print(f"{'raw aiokafka consumer':<28}{raw:>12,.0f} events/s")
    print(f"{'replay from topic, 1 process':<28}{one:>12,.0f} events/s   {one / raw:6.3f} × raw")
    print(f"{f'replay from topic, {cores} processes':<28}{topic:>12,.0f} events/s   "
          f"{topic / raw:6.3f} × raw (target ≥ 0.2)")
    print(f"{'replay from journal':<28}{journal:>12,.0f} events/s   {journal / raw:6.3f} × raw")
    record_result("replay", {"events": len(events), "contracts": args.contracts,
                             "raw_events_s": round(raw), "topic_1p_events_s": round(one),
                             "topic_events_s": round(topic), "processes": cores,
                             "topic_vs_raw": round(topic / raw, 3),
                             "journal_events_s": round(journal)})


if __name__ == "__main__":
    main()
