"""Worker memory: RSS after a national-size load, then over a soak at a steady rate.

    python bench/memory.py [--events 1000000] [--contracts 5000] [--soak-seconds 600]
                           [--soak-rate 1000]

Starts an embedded broker and one live worker (SQLite), publishes the demo log for
``--contracts`` contracts (about 180 events each: registrations, commitments,
milestones, evidence and reviews), topped up with evidence to exactly ``--events``,
and waits until the worker has journalled all of it, sampling the worker's resident
memory (``VmRSS`` in ``/proc``) every few seconds. Then it sends evidence at
``--soak-rate`` events/s for ``--soak-seconds`` and fits a line to the RSS over the
soak: flat means the slope is within the noise (targets: ≤ 500 MB after 1M events over
5,000 contracts; flat over a 10-minute soak at 1,000 events/s). The samples are
written to ``rss.csv`` beside the logs. Not a test: it takes about half an hour.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import read_progress, record_result
from svmon.core import events as ev
from svmon.demo import generate
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics

AGENTS = str(Path(__file__).resolve().parent / "agents.py")
TODAY = date(2026, 11, 1)


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children and so on (the worker's batch writer)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                out += [int(child), *descendants(int(child))]
    return out


def rss_mb(pid: int) -> float:
    """The resident memory of the worker and of every process it started, in MB."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def top_up(cids: list[str], n: int, rng: random.Random, tag: str,
           suppliers: dict[str, str]) -> list[ev.ContractEvent]:
    """``n`` more pieces of evidence spread over the demo contracts (volunteer hours,
    a measure every demo contract's catalogue has), each from its contract's supplier
    (``suppliers``: contract id -> supplier id)."""
    at = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC) - timedelta(days=40)
    period = at.date() - timedelta(days=30)
    return [ev.EvidenceSubmitted(event_id=f"{tag}{i}", contract_id=(cid := rng.choice(cids)),
                                 occurred_at=at, actor=f"supplier:{suppliers.get(cid, '')}",
                                 evidence_id=f"{tag}{i}",
                                 measure="L-VOL", quantity=Decimal(rng.randint(1, 40)),
                                 unit="hours", period_start=period,
                                 period_end=period + timedelta(days=27))
            for i in range(n)]


class Sampler(threading.Thread):
    """RSS of the worker every ``every`` seconds, with the events handled by then."""

    def __init__(self, progress: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.progress, self.every = progress, every
        self.samples: list[tuple[float, int, float]] = []  # (time, events, MB)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            p = read_progress([self.progress])[0]
            if p.get("pid"):
                try:
                    self.samples.append((time.time(), p["n"], rss_mb(p["pid"])))
                except FileNotFoundError:
                    return


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(m for _, m in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (m - my) for t, m in points) / var if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--contracts", type=int, default=5000)
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--soak-rate", type=float, default=1000.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="svmon-memory-bench-"))
    print(f"generating {args.events:,} events over {args.contracts:,} contracts; logs in {tmp}")
    rng = random.Random(5)
    events = generate(seed=41, today=TODAY, contracts=args.contracts)[:args.events]
    cids = sorted({e.contract_id for e in events})
    suppliers = {e.contract_id: e.supplier_id for e in events
                 if isinstance(e, ev.ContractRegistered)}
    events += top_up(cids, args.events - len(events), rng, "top-", suppliers)
    progress = tmp / "progress-0.json"  # one file per worker started: their sum counts
    with EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log") as broker:
        s = Settings.from_env().with_(
            broker_url=broker.url, data_dir=tmp, database_url="", app_id="bench-memory",
            topic_prefix="memory", tick_seconds=3600.0)  # the default session timeout
        ensure_topics(s)
        pub = EventPublisher(s.bootstrap, s.events_topic, max_in_flight_requests_per_connection=5)
        t0 = time.time()
        for e in events:  # published before the worker starts: a catch-up, not a race
            pub.send_raw(e.contract_id, encode_event(e))
        pub.flush()
        del events
        print(f"published in {time.time() - t0:.0f} s")
        worker = Child("live", [sys.executable, AGENTS, "live", str(progress)], s.to_env(),
                       tmp / "worker.log")
        sampler = Sampler(progress, 5.0)
        sampler.start()
        try:
            t0 = time.time()
            shown = 0.0
            restarts = 0
            files = [progress]
            while (n := sum(p["n"] for p in read_progress(files))) < args.events:
                if not worker.alive:  # the rebalance watchdog ended it: start it again,
                    restarts += 1      # as a supervisor would (its RSS starts again too)
                    print(f"  the worker exited ({worker.proc.returncode}); starting it again")
                    progress = tmp / f"progress-{restarts}.json"
                    files.append(progress)
                    sampler.progress = progress
                    worker = Child("live", [sys.executable, AGENTS, "live", str(progress)],
                                   s.to_env(), tmp / f"worker-{restarts}.log")
                if time.time() - shown > 30:
                    last = sampler.samples[-1][2] if sampler.samples else 0
                    print(f"  {n:,} of {args.events:,} journalled; worker RSS {last:.0f} MB",
                          flush=True)
                    shown = time.time()
                time.sleep(1)
            load_s = time.time() - t0
            pid = read_progress([progress])[0]["pid"]
            after_load = rss_mb(pid)
            print(f"{args.events:,} events journalled in {load_s:.0f} s; "
                  f"worker RSS {after_load:.0f} MB (target ≤ 500 MB); worker restarts "
                  f"{restarts}")
            soak_start = time.time()
            soak = top_up(cids, int(args.soak_rate * args.soak_seconds), rng, "soak-",
                          suppliers)
            for i, e in enumerate(soak):
                pub.send_raw(e.contract_id, encode_event(e))
                delay = soak_start + (i + 1) / args.soak_rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                if i and i % int(args.soak_rate * 60) == 0:
                    print(f"  soak: {i:,} sent; worker RSS {rss_mb(pid):.0f} MB", flush=True)
            pub.flush()
            soak_end = time.time()
            time.sleep(5)
            end_rss = rss_mb(pid)
        finally:
            sampler.stop.set()
            pub.close()
            worker.stop()
    with (tmp / "rss.csv").open("w") as f:
        f.write("unix_time,events_handled,rss_mb\n")
        f.writelines(f"{t:.1f},{n},{m:.1f}\n" for t, n, m in sampler.samples)
    soak_points = [(t, m) for t, _, m in sampler.samples if soak_start <= t <= soak_end]
    soak_rss = [m for _, m in soak_points] or [end_rss]
    slope = slope_mb_per_min(soak_points)
    print(f"soak: {args.soak_seconds:.0f} s at {args.soak_rate:,.0f} events/s; RSS "
          f"{min(soak_rss):.0f}-{max(soak_rss):.0f} MB, slope {slope:+.2f} MB/min; "
          f"at the end {end_rss:.0f} MB")
    record_result("memory", {"events": args.events, "contracts": len(cids),
                             "worker_restarts": restarts,
                             "load_seconds": round(load_s), "rss_after_load_mb": round(after_load),
                             "soak_seconds": args.soak_seconds, "soak_rate": args.soak_rate,
                             "soak_rss_min_mb": round(min(soak_rss)),
                             "soak_rss_max_mb": round(max(soak_rss)),
                             "soak_slope_mb_per_min": round(slope, 2),
                             "rss_end_mb": round(end_rss)})


if __name__ == "__main__":
    main()
