"""Every benchmark from one entry point, and the table of their latest figures.

    python -m bench                  # the list below
    python -m bench pipeline latency # those two, one after the other
    python -m bench all [--quick]    # all of them; --quick: small sizes, a few minutes
    python -m bench table            # the latest figures of each, as the README shows them

Each benchmark runs as its own process (``bench/NAME.py``, which can also be run alone
with its own options) and appends its figures, with the machine and versions, to
``bench/results/results.jsonl``. Not tests: they measure ratios side by side on a
shared machine, and the long ones take half an hour.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import latest_results

HERE = Path(__file__).resolve().parent
# name -> (script, what it measures, arguments with --quick)
BENCHMARKS: dict[str, tuple[str, str, list[str]]] = {
    "pipeline": ("pipeline.py", "live worker events/s vs a no-op and a per-event table agent; "
                 "2 workers vs 1", ["--events", "15000"]),
    "stages": ("stages.py", "the worker's time per event, stage by stage (no broker)",
               ["--events", "5000"]),
    "latency": ("latency.py", "event-to-projection p50/p99 at 500 events/s",
                ["--seconds", "10"]),
    "memory": ("memory.py", "worker RSS after 1M events over 5,000 contracts; 10-minute soak",
               ["--events", "50000", "--contracts", "250", "--soak-seconds", "30"]),
    "ingest": ("ingest.py", "HTTP evidence requests/s vs a bare endpoint", ["--seconds", "4"]),
    "alerts": ("alert_latency.py", "event-to-alert p50/p99 at 500 events/s",
               ["--seconds", "8"]),
    "replay": ("replay.py", "auditor replay events/s from topic and journal vs raw aiokafka",
               ["--contracts", "100"]),
    "poison": ("poison.py", "worker throughput with 1% poison and 5% duplicates vs clean",
               ["--events", "5000"]),
    "dashboards": ("dashboards.py", "Voila first render vs a bare notebook (Chromium)",
                   ["--contracts", "200", "--runs", "1"]),
}
# bench -> (figure key, label, target) shown in the table
HEADLINES: dict[str, list[tuple[str, str, str]]] = {
    "pipeline": [("live_events_s", "live worker, events/s", ""),
                 ("stock-noop_events_s", "no-op Faust agent (stock Faust), events/s", ""),
                 ("stock-table_events_s", "per-event table agent (stock Faust), events/s",
                  ""),
                 ("noop_events_s", "no-op agent with the consumer fixes, events/s", ""),
                 ("live_vs_stock_noop", "live ÷ no-op (stock Faust)", "≥ 0.7"),
                 ("live_vs_stock_table", "live ÷ table agent (stock Faust)", "≥ 3"),
                 ("live_vs_noop", "live ÷ no-op with the consumer fixes", ""),
                 ("live_vs_table", "live ÷ table agent with the consumer fixes", ""),
                 ("live_vs_thread", "writer process ÷ one-process worker", ""),
                 ("shell_vs_noop", "agent without the pipeline ÷ no-op", ""),
                 ("two_vs_one", "2 workers ÷ 1 (8 partitions)", "≥ 1.6"),
                 ("two_vs_one_thread", "2 one-process workers ÷ 1 (8 partitions)", "")],
    "stages": [("stages_us_per_event", "pipeline stages, µs/event (one core)", ""),
               ("apply_batch_share", "share of the batch write", ""),
               ("process_share", "share of the fold", "")],
    "latency": [("p50_ms", "event → projection p50, ms", ""),
                ("p99_ms", "event → projection p99, ms", "≤ 250")],
    "memory": [("rss_after_load_mb", "worker RSS after the load, MB", "≤ 500"),
               ("soak_slope_mb_per_min", "RSS slope over the soak, MB/min", "flat"),
               ("rss_end_mb", "worker RSS after the soak, MB", "")],
    "ingest": [("evidence, single", "single evidence POSTs ÷ bare endpoint", "")],
    "alert_latency": [("p50_ms", "event → alert p50, ms", ""),
                      ("p99_ms", "event → alert p99, ms", "")],
    "replay": [("topic_vs_raw", "topic replay ÷ raw aiokafka", "≥ 0.2"),
               ("journal_events_s", "journal replay, events/s", "")],
    "poison": [("mixed_vs_clean", "good events/s, mixed ÷ clean", "")],
    "dashboards": [("portfolio_vs_bare", "portfolio first render ÷ bare notebook", "≤ 1.5")],
}


def _value(v: Any) -> str:
    if isinstance(v, dict):  # ingest keeps a dict per endpoint
        return f"{v.get('vs_bare', '')} ({v.get('requests_s', '')} req/s)"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table() -> str:
    rows = ["| benchmark | figure | latest | target | run on |", "| --- | --- | --- | --- | --- |"]
    for bench, row in sorted(latest_results().items()):
        base = row["bench"]  # a latency run at another rate has no target
        for key, label, target in HEADLINES.get(base, []):
            target = target if bench == base else ""
            if key in row["figures"]:
                m = row["machine"]
                rows.append(f"| {bench} | {label} | {_value(row['figures'][key])} | {target} | "
                            f"{row['at'][:10]}, {m['cpus']} cores, {m['commit']} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    if not names:
        print(__doc__)
        for name, (script, what, _) in BENCHMARKS.items():
            print(f"  {name:<11} {what}  (bench/{script})")
        return 0
    if names == ["table"]:
        print(table())
        return 0
    if names == ["all"]:
        names = list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        script, what, quick_args = BENCHMARKS[name]
        print(f"\n=== {name}: {what}", flush=True)
        cmd = [sys.executable, str(HERE / script), *(quick_args if quick else [])]
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
    print("\n" + table())
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
