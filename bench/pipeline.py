"""Live pipeline throughput beside Faust's own ceiling and a naive table agent, one run.

    python bench/pipeline.py [--events 60000] [--rounds 1] [--skip-scale-out]

Starts one embedded broker and publishes the demo log (about 180 events per contract:
registrations, commitments, milestones, evidence and reviews) once to a 4-partition
topic. Then, one after the other and each in a process of its own reading that same
topic as a new consumer group from its start (a catch-up after an outage):

  stock-noop   a Faust agent doing nothing per event, on Faust as it comes (the
               framework's ceiling here)
  stock-table  a naive Faust agent: parse each event, update a table per event
  noop, table  the same two with the worker's fixes to Faust's consumer (a stricter
               anchor: ``svmon.streams.handoff`` alone makes a no-op agent about twice as fast)
  shell  the real worker's agent with a pipeline that does nothing (its batching,
         offset checks and acknowledgements: what the agent costs beyond Faust's own)
  thread the real worker with its batches written on its own threads (one process)
  live   the real worker: decode, validate, fold, journal and projections in SQLite,
         written by its batch-writer process

Then scale-out on a topic of 8 partitions: one live worker, then two (in one consumer
group, both assigned before the load is published); then the same with the
one-process worker (``thread``), which uses one core where the live worker uses two.
Each consumer measures itself from its first record to its last; the figures are
events/s and the ratios the issue sets: live ÷ stock-noop (target ≥ 0.7), live ÷
stock-table (≥ 3), two workers ÷ one (≥ 1.6); the same two against the tuned anchors;
and what the writer process gives (live ÷ thread).
With ``--rounds N`` the first comparison runs N times, the roles in turn each time, and
each ratio is the median of its N rounds (this machine's speed drifts within minutes).
Not a test: only ratios measured side by side on this shared machine mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Throughput, demo_events, read_progress, record_result, wait_for
from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.client import EventPublisher
from svmon.streams.topics import ensure_topics

AGENTS = str(Path(__file__).resolve().parent / "agents.py")
# the consumers of the first comparison
ROLES = ("stock-noop", "noop", "stock-table", "table", "shell", "thread", "live")


def assigned(log: Path, topic: str) -> int:
    """How many partitions of ``topic`` the worker's latest assignment holds (0: none)."""
    text = log.read_text(errors="replace")
    block = text.rsplit("Setting newly assigned partitions", 1)
    if len(block) < 2:
        return 0
    for line in block[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == topic:
            n = 0
            for part in cells[1].strip("{}").split(","):
                lo, _, hi = part.strip().partition("-")
                n += int(hi or lo) - int(lo) + 1
            return n
    return 0


class Run:
    """Consumers of one role in one consumer group, with their logs and progress."""

    def __init__(self, tmp: Path, broker: str, name: str, role: str, topic_prefix: str,
                 partitions: int, workers: int = 1, profile: bool = False) -> None:
        self.folder = tmp / name
        self.folder.mkdir()
        self.settings = Settings.from_env().with_(  # SVMON_* variables reach the workers
            broker_url=broker, data_dir=self.folder, database_url="", app_id=f"b-{name}",
            topic_prefix=topic_prefix, partitions=partitions, tick_seconds=3600.0,
            session_timeout=6.0)
        self.files = [self.folder / f"progress-{i}.json" for i in range(workers)]
        self.profile = profile
        self.profiles = [self.folder / f"profile-{i}.txt" for i in range(workers)]
        self.children = [
            Child(f"{role}-{i}", [*(py_spy(prof) if profile else []), sys.executable, AGENTS,
                                  role, str(f)],
                  self.settings.to_env(), self.folder / f"worker-{i}.log")
            for i, (f, prof) in enumerate(zip(self.files, self.profiles, strict=True))]

    def wait_assigned(self, partitions: int, timeout: float = 90.0) -> None:
        """Until the workers' latest assignments together hold every partition once."""
        deadline = time.time() + timeout
        topic = self.settings.events_topic
        while sum(assigned(c.log_path, topic) for c in self.children) != partitions \
                or any(assigned(c.log_path, topic) == 0 for c in self.children):
            if time.time() > deadline or not all(c.alive for c in self.children):
                raise SystemExit(f"workers not assigned; see {self.children[0].log_path}")
            time.sleep(0.2)
        time.sleep(1.0)  # the agents start fetching

    def measure(self, expected: int, label: str) -> Throughput:
        try:
            return wait_for(self.files, expected, 900, self.children, label)
        finally:
            for c, f in zip(self.children, self.files, strict=True):
                if self.profile:  # py-spy writes its file on SIGINT; then stop its child
                    c.proc.send_signal(signal.SIGINT)
                    c.proc.wait(30)
                    pid = read_progress([f])[0].get("pid")
                    if pid:
                        stop_pid(pid)
                c.stop(timeout=30)
            for p in self.profiles:
                if p.exists():
                    p.with_suffix(".top.txt").write_text(top_functions(p, 60))
                    print(f"  profile of {label}: {p} (top functions beside it)")


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s: no worker outlives the benchmark."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            os.kill(pid, 0)  # raises once it is gone
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


# the first comparison's ratios: figure name, (numerator, denominator), what it means
RATIOS = (
    ("live_vs_stock_noop", ("live", "stock-noop"), "(target ≥ 0.7; Faust as it comes)"),
    ("live_vs_stock_table", ("live", "stock-table"), "(target ≥ 3; Faust as it comes)"),
    ("live_vs_noop", ("live", "noop"), "(≥ 0.7 asked of the stock anchor; this one has "
                                       "the worker's fixes to Faust's consumer)"),
    ("live_vs_table", ("live", "table"), "(≥ 3 asked of the stock anchor; the same)"),
    ("noop_vs_stock_noop", ("noop", "stock-noop"), "(what the fixes to Faust's consumer "
                                                   "give a no-op agent)"),
    ("live_vs_thread", ("live", "thread"), "(the writer process against the one-process "
                                           "worker)"),
    ("shell_vs_noop", ("shell", "noop"), "(the agent's own batching and acknowledgements)"),
)


def py_spy(out: Path) -> list[str]:
    """Sample the consumer with py-spy (``pip install py-spy``), as collapsed stacks."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [exe, "record", "--subprocesses", "--format", "raw", "--rate", "200", "--output",
            str(out), "--"]


def top_functions(raw: Path, n: int = 25) -> str:
    """The functions with the most samples in them (inclusive), from py-spy's raw file."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    rows = [f"{100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(n)]
    return "\n".join(rows)


def publish(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    with EventPublisher(bootstrap, topic, max_in_flight_requests_per_connection=5) as pub:
        for key, value in messages:
            pub.send_raw(key, value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--skip-scale-out", action="store_true")
    ap.add_argument("--only", choices=ROLES, action="append",
                    help="run only these consumers of the first comparison (repeatable)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the first comparison this many times, each role in turn, and "
                         "report each ratio's median (the machine's speed drifts)")
    ap.add_argument("--profile", action="store_true",
                    help="sample every consumer with py-spy; stacks and top functions are "
                         "written beside its log")
    args = ap.parse_args()
    events = demo_events(args.events)
    messages = [(e.contract_id, encode_event(e)) for e in events]
    n = len(messages)
    tmp = Path(tempfile.mkdtemp(prefix="svmon-pipeline-bench-"))
    print(f"{n:,} events over {len({k for k, _ in messages}):,} contracts; logs in {tmp}")
    figures: dict[str, object] = {"events": n}
    with EmbeddedBroker(port=free_port(), log_path=tmp / "broker.log") as broker:
        shared = Settings(broker_url=broker.url, topic_prefix="same", partitions=4)
        ensure_topics(shared)
        publish(shared.bootstrap, shared.events_topic, messages)
        rounds: list[dict[str, float]] = []  # each round: role -> events/s
        for round_ in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {round_} of {args.rounds}")
            rates: dict[str, float] = {}
            for role in args.only or ROLES:
                run = Run(tmp, broker.url, f"{role}-r{round_}", role, "same", 4,
                          profile=args.profile)
                took = run.measure(n, role)
                rates[role] = took.rate
                print(f"  {role}: {took.rate:,.0f} events/s ({took.events:,} in "
                      f"{took.seconds:.1f} s)")
            rounds.append(rates)
        figures.update({f"{r}_events_s": round(median(x[r] for x in rounds))
                        for r in rounds[0]})
        if args.rounds > 1:
            figures["rounds"] = [{r: round(v) for r, v in x.items()} for x in rounds]
        for name, (a, b), note in RATIOS:
            if {a, b} <= rounds[0].keys():
                each = [x[a] / x[b] for x in rounds]
                mid = median(each)
                spread = (f" (median of {len(each)} rounds: "
                          f"{', '.join(f'{v:.2f}' for v in each)})" if len(each) > 1 else "")
                print(f"{a} ÷ {b}: {mid:.2f} {note}{spread}")
                figures[name] = round(mid, 3)
        if not args.skip_scale_out and not args.only:
            # with the writer process one worker can keep both cores of this machine
            # busy, so the one-process worker is scaled out too (one core per worker)
            for role, key in (("live", "two_vs_one"), ("thread", "two_vs_one_thread")):
                scale: dict[int, Throughput] = {}
                for workers in (1, 2):
                    prefix = f"scale{workers}{role}"
                    s = Settings(broker_url=broker.url, topic_prefix=prefix, partitions=8)
                    ensure_topics(s)
                    run = Run(tmp, broker.url, f"{role}-{workers}w", role, prefix, 8, workers)
                    run.wait_assigned(8)
                    publish(s.bootstrap, s.events_topic, messages)
                    scale[workers] = run.measure(n, f"{role}, {workers} worker(s), 8 partitions")
                    print(f"  {role}, {workers} worker(s): {scale[workers].rate:,.0f} events/s")
                ratio = scale[2].rate / scale[1].rate
                print(f"{role}: two workers ÷ one: {ratio:.2f} (target ≥ 1.6)")
                figures.update({f"{role}_one_worker_8p_events_s": round(scale[1].rate),
                                f"{role}_two_workers_8p_events_s": round(scale[2].rate),
                                key: round(ratio, 3)})
    if not args.only and not args.profile:
        record_result("pipeline", figures)


if __name__ == "__main__":
    main()
