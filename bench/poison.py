"""Worker throughput with poison and duplicates mixed in, beside a clean log, one run.

    python bench/poison.py [--events 20000] [--poison 0.01] [--duplicates 0.05]

Starts one embedded broker and, for each of two logs, a fresh SQLite database, topics
of their own and one worker: first the clean demo log, then the same log with
``--poison`` bad records (not JSON, oversized, wrong version, NaN, wrong key) and
``--duplicates`` events sent again. The worker is started and ready before the load
is published all at once; the time runs from the first record sent until every record
is journalled or dead-lettered. Prints records/s and good events/s of each, and the
ratio of good events/s (mixed ÷ clean): the cost of the bad input beyond its own
records. Not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import record_result
from svmon import chaos
from svmon.bootstrap import init_database
from svmon.demo import generate
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child, python_module
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics


def run(broker: EmbeddedBroker, tmp: Path, name: str,
        messages: list[chaos.Message], expect: int) -> float:
    """Seconds from the first record sent until ``expect`` records are handled."""
    folder = tmp / name
    s = Settings(broker_url=broker.url, data_dir=folder, app_id=f"bench-{name}",
                 topic_prefix=f"bench-{name}", tick_seconds=3600, session_timeout=6.0)
    repo = init_database(s)
    ensure_topics(s)
    worker = Child("worker", python_module("svmon.streams.worker"), s.to_env(), folder / "w.log")
    try:
        log = folder / "w.log"
        while "Worker ready" not in log.read_text(errors="replace"):
            if not worker.alive:
                raise SystemExit(f"the worker exited; see {log}")
            time.sleep(0.2)
        t0 = time.perf_counter()
        with EventPublisher(s.bootstrap, s.events_topic) as pub:
            for key, value in messages:
                pub.send_raw(key, value)
        while True:
            c = repo.counts()
            if c["journal"] + c["dead_letters"] >= expect:
                return time.perf_counter() - t0
            time.sleep(0.05)
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--poison", type=float, default=0.01)
    ap.add_argument("--duplicates", type=float, default=0.05)
    args = ap.parse_args()
    events = generate(seed=23, today=date(2026, 11, 1),
                      contracts=max(2, args.events // 150))[:args.events]
    clean: list[chaos.Message] = [(e.contract_id, encode_event(e)) for e in events]
    mixed, bad = chaos.mixed(events, random.Random(3), args.poison, args.duplicates)
    tmp = Path(tempfile.mkdtemp(prefix="svmon-poison-bench-"))
    with EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log") as broker:
        t_clean = run(broker, tmp, "clean", clean, len(events))
        t_mixed = run(broker, tmp, "mixed", mixed, len(events) + len(bad))
    print(f"{len(events):,} good events; mixed in: {len(bad):,} poison, "
          f"{len(mixed) - len(events) - len(bad):,} duplicates")
    print(f"clean: {len(clean) / t_clean:,.0f} records/s ({t_clean:.1f} s)")
    print(f"mixed: {len(mixed) / t_mixed:,.0f} records/s, "
          f"{len(events) / t_mixed:,.0f} good events/s ({t_mixed:.1f} s)")
    print(f"good events/s mixed ÷ clean: {t_clean / t_mixed:.2f}")
    record_result("poison", {"good": len(events), "poison": len(bad),
                             "duplicates": len(mixed) - len(events) - len(bad),
                             "clean_records_s": round(len(clean) / t_clean),
                             "mixed_good_events_s": round(len(events) / t_mixed),
                             "mixed_vs_clean": round(t_clean / t_mixed, 3)})


if __name__ == "__main__":
    main()
