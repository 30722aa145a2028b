"""Event-to-alert latency at a steady event rate, on the real broker and worker.

    python bench/alert_latency.py [--rate 500] [--seconds 20] [--contracts 200]

Starts an embedded broker and one worker (SQLite), registers contracts whose first
milestone is already past due, then sends a steady stream of evidence at ``--rate``
events/s in which, every so often, a clock tick for one contract makes its milestone
due: that tick must become a MilestoneMissed alert in the inbox. Latency is from the
moment the tick was handed to the producer to the alert's ``created_at`` (same
machine, same clock). Prints p50/p99 and the achieved rate. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import record_result
from svmon.bootstrap import init_database
from svmon.core import events as ev
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child, python_module
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics

# the bench contracts' parties, as the API writes their actors (svmon.core.authority)
MANAGER, SUPPLIER = "mgr-bench", "supplier:S1"


def setup_events(cid: str, start: date) -> list[ev.ContractEvent]:
    t0 = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    return [
        ev.ContractRegistered(event_id="reg", contract_id=cid, occurred_at=t0, actor=MANAGER,
                              title=cid,
                              buyer="Bench Council", buyer_department="Bench",
                              supplier_id="S1", supplier_name="Bench Ltd", start=start,
                              end=start + timedelta(days=729), value_gbp=Decimal(10**6),
                              catalogue_edition="DEMO-2025", manager=MANAGER),
        ev.CommitmentMade(event_id="commit", contract_id=cid, occurred_at=t0, actor=MANAGER,
                          measure="L-VOL", target=Decimal(10_000)),
        ev.MilestoneScheduled(event_id="ms", contract_id=cid, occurred_at=t0, actor=MANAGER,
                              milestone_id="Q1", measure="L-VOL",
                              due=start + timedelta(days=89), cumulative_target=Decimal(2000)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--contracts", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="svmon-alert-bench-"))
    port = free_port()
    s = Settings(broker_url=f"kafka://127.0.0.1:{port}", data_dir=tmp, app_id="bench",
                 topic_prefix="bench", tick_seconds=3600, session_timeout=6.0,
                 batch_seconds=0.02)
    start = (datetime.now(UTC) - timedelta(days=300)).date()
    with EmbeddedBroker(port=port, log_path=tmp / "broker.log"):
        ensure_topics(s)
        repo = init_database(s)
        worker = Child("worker", python_module("svmon.streams.worker"), s.to_env(), tmp / "w.log")
        try:
            pub = EventPublisher(s.bootstrap, s.events_topic, linger_ms=0)
            cids = [f"B-{i:04d}" for i in range(args.contracts)]
            for cid in cids:
                for e in setup_events(cid, start):
                    pub.send(e)
            pub.flush()
            while repo.counts()["journal"] < 3 * len(cids):
                time.sleep(0.5)
            total = int(args.rate * args.seconds)
            tick_every = max(1, total // len(cids))
            sent_at: dict[str, float] = {}
            t_start = time.perf_counter()
            wall0 = time.time()
            ticks = 0
            for n in range(total):
                cid = cids[n % len(cids)]
                now = datetime.now(UTC)
                if n % tick_every == 0 and ticks < len(cids):
                    target = cids[ticks]
                    e: ev.ContractEvent = ev.ClockTicked(event_id="tick", contract_id=target,
                                                         occurred_at=now, at=now)
                    sent_at[target] = time.time()
                    ticks += 1
                else:
                    e = ev.EvidenceSubmitted(
                        event_id=f"e{n}", contract_id=cid, occurred_at=now, actor=SUPPLIER,
                        evidence_id=f"e{n}", measure="L-VOL", quantity=Decimal(1),
                        period_start=start, period_end=start + timedelta(days=1))
                pub.send(e)
                # hold the steady rate
                delay = t_start + (n + 1) / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            pub.flush()
            achieved = total / (time.perf_counter() - t_start)
            deadline = time.time() + 60
            while time.time() < deadline:
                alerts = [a for a in repo.alerts("all") if a["kind"] == "MilestoneMissed"]
                if len(alerts) >= ticks:
                    break
                time.sleep(0.5)
            lat = sorted((a["created_at"].timestamp() - sent_at[a["contract_id"]]) * 1000
                         for a in alerts if a["contract_id"] in sent_at)
            # where the time goes: until the worker picked the tick up (its batch began)
            picked = sorted((e["recorded_at"].timestamp() - sent_at[e["contract_id"]]) * 1000
                            for e in repo.journal_rows(event_id="tick"))
        finally:
            worker.stop()
            pub.close()
    print(f"{total} events at {achieved:,.0f}/s requested {args.rate:,.0f}/s; "
          f"{len(lat)} of {ticks} alerts (run started {wall0:.0f})")
    if lat:
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"event-to-alert latency: p50 {statistics.median(lat):.0f} ms, "
              f"p99 {p99:.0f} ms, max {lat[-1]:.0f} ms")
        print(f"  of which until the worker's batch began: p50 "
              f"{statistics.median(picked):.0f} ms, p99 "
              f"{picked[min(len(picked) - 1, int(len(picked) * 0.99))]:.0f} ms")
        record_result("alert_latency", {"rate": round(achieved), "alerts": len(lat),
                                        "p50_ms": round(statistics.median(lat)),
                                        "p99_ms": round(p99), "max_ms": round(lat[-1])})


if __name__ == "__main__":
    main()
