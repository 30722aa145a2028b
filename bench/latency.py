"""Event-to-projection latency at a steady event rate, on the real broker and worker.

    python bench/latency.py [--rate 500] [--seconds 30] [--contracts 200]

Starts an embedded broker and one live worker (SQLite), registers ``--contracts``
contracts, then sends evidence at ``--rate`` events/s for ``--seconds``. The worker
notes when each event's batch committed (journal and projections are one transaction,
so that is when dashboards and replay can see it); latency is from the moment the
event was handed to the producer to that commit, on the same machine's clock. Prints
p50, p99 and max, the achieved rate and the mean batch size (target: p99 ≤ 250 ms at
500 events/s). ``SVMON_*`` variables (``SVMON_BATCH_SECONDS``, say) reach the worker.
Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.alert_latency import SUPPLIER, setup_events
from bench.common import read_progress, record_result, summary
from svmon.core import events as ev
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics

AGENTS = str(Path(__file__).resolve().parent / "agents.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--contracts", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="svmon-latency-bench-"))
    commits, progress = tmp / "commits.tsv", tmp / "progress.json"
    with EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log") as broker:
        s = Settings.from_env().with_(
            broker_url=broker.url, data_dir=tmp, database_url="", app_id="bench-latency",
            topic_prefix="latency", tick_seconds=3600.0, session_timeout=6.0)
        ensure_topics(s)
        worker = Child("live", [sys.executable, AGENTS, "live", str(progress)],
                       {**s.to_env(), "BENCH_COMMITS": str(commits)}, tmp / "worker.log")
        pub = EventPublisher(s.bootstrap, s.events_topic, linger_ms=0)
        try:
            start = (datetime.now(UTC) - timedelta(days=300)).date()
            cids = [f"L-{i:04d}" for i in range(args.contracts)]
            setup = [e for cid in cids for e in setup_events(cid, start)]
            for e in setup:
                pub.send(e)
            pub.flush()
            while read_progress([progress])[0]["n"] < len(setup):
                if not worker.alive:
                    raise SystemExit(f"the worker exited; see {worker.log_path}")
                time.sleep(0.2)
            total = int(args.rate * args.seconds)
            sent: dict[str, float] = {}
            t0 = time.perf_counter()
            for n in range(total):
                now = datetime.now(UTC)
                eid = f"e{n}"
                e = ev.EvidenceSubmitted(
                    event_id=eid, contract_id=cids[n % len(cids)], occurred_at=now,
                    actor=SUPPLIER, evidence_id=eid, measure="L-VOL", quantity=Decimal(1),
                    unit="hours", period_start=start, period_end=start + timedelta(days=1))
                sent[eid] = time.time()
                pub.send(e)
                delay = t0 + (n + 1) / args.rate - time.perf_counter()  # hold the rate
                if delay > 0:
                    time.sleep(delay)
            achieved = total / (time.perf_counter() - t0)
            pub.flush()
            deadline = time.time() + 60
            while read_progress([progress])[0]["n"] < len(setup) + total \
                    and time.time() < deadline:
                time.sleep(0.2)
            done = read_progress([progress])[0]
        finally:
            pub.close()
            worker.stop()
    at, taken = {}, {}
    for line in commits.read_text().splitlines():
        eid, t, t_taken = line.split("\t")
        at[eid], taken[eid] = float(t), float(t_taken)
    lat = [(at[e] - sent[e]) * 1000 for e in sent if e in at]
    waited = summary([(taken[e] - sent[e]) * 1000 for e in sent if e in at])
    if not lat:
        raise SystemExit(f"no event reached the projections; see {tmp / 'worker.log'}")
    got = summary(lat)
    batches = done["batches"] or 1
    print(f"{total:,} events at {achieved:,.0f}/s (asked {args.rate:,.0f}/s); "
          f"{len(lat):,} committed; mean batch {done['n'] / batches:.0f} events")
    print(f"event-to-projection latency: p50 {got['p50']:.0f} ms, p99 {got['p99']:.0f} ms, "
          f"max {got['max']:.0f} ms (target p99 ≤ 250 ms)")
    print(f"  of which until the worker took the event's batch: p50 {waited['p50']:.0f} ms, "
          f"p99 {waited['p99']:.0f} ms")
    record_result("latency", {"rate": round(achieved), "events": total,
                              "committed": len(lat), "p50_ms": round(got["p50"]),
                              "p99_ms": round(got["p99"]), "max_ms": round(got["max"]),
                              "waited_p50_ms": round(waited["p50"]),
                              "waited_p99_ms": round(waited["p99"])})


if __name__ == "__main__":
    main()
