"""The benchmark scripts run as docs/benchmarks.md says, print their ratios and record their
figures. Tiny sizes: these check that the scripts work, not how fast anything is
(figures on a shared machine belong in the scripts' own output, not in assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(tmp_path: Path, *args: str, timeout: float = 400) -> tuple[str, list[dict]]:
    results = tmp_path / "results.jsonl"
    env = {**os.environ, "SVMON_BENCH_RESULTS": str(results)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = [json.loads(line) for line in results.read_text().splitlines()] \
        if results.exists() else []
    return proc.stdout, rows


def test_the_entry_point_lists_runs_nothing_unknown_and_prints_the_table(tmp_path: Path
                                                                         ) -> None:
    out, _ = bench(tmp_path, "-m", "bench")
    for name in ("pipeline", "stages", "latency", "memory", "ingest", "alerts", "replay",
                 "poison", "dashboards"):
        assert f"  {name} " in out
    proc = subprocess.run([sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown benchmark 'nonesuch'" in proc.stderr
    (tmp_path / "results.jsonl").write_text(json.dumps({
        "bench": "pipeline", "at": "2026-12-01T00:00:00+00:00", "argv": [],
        "machine": {"cpus": 2, "commit": "abc1234"},
        "figures": {"live_vs_stock_noop": 0.5, "live_events_s": 1234}}) + "\n")
    out, _ = bench(tmp_path, "-m", "bench", "table")
    assert ("| pipeline | live ÷ no-op (stock Faust) | 0.50 | ≥ 0.7 | 2026-12-01, 2 cores, "
            "abc1234 |") in out
    assert "| pipeline | live worker, events/s | 1,234 |" in out


def test_stages_bench_times_the_pipeline_s_own_stages(tmp_path: Path) -> None:
    out, rows = bench(tmp_path, "bench/stages.py", "--events", "1500")
    (row,) = rows
    f = row["figures"]
    assert row["bench"] == "stages" and f["events"] == 1500 and f["database"] == "SQLite"
    stages = ("decode", "before_batch", "state_versions", "process", "apply_batch")
    assert sum(f[f"{s}_share"] for s in stages) == pytest.approx(1, abs=0.01)
    assert all(f[f"{s}_us"] > 0 for s in stages)
    # the stages are inside handle(): their sum cannot exceed it
    assert 0 < f["stages_us_per_event"] <= f["handle_us_per_event"]
    assert "µs/event" in out and "0 dead letters" in out


@pytest.mark.broker
@pytest.mark.slow
def test_pipeline_bench_compares_its_consumers(tmp_path: Path) -> None:
    out, rows = bench(tmp_path, "bench/pipeline.py", "--events", "2500", "--skip-scale-out")
    for ratio in ("live ÷ stock-noop:", "live ÷ stock-table:", "live ÷ noop:",
                  "live ÷ table:", "shell ÷ noop:", "noop ÷ stock-noop:"):
        assert ratio in out
    (row,) = rows
    f = row["figures"]
    assert row["bench"] == "pipeline" and f["events"] == 2500
    for key in ("stock-noop_events_s", "stock-table_events_s", "noop_events_s",
                "table_events_s", "shell_events_s", "live_events_s"):
        assert f[key] > 0
    assert f["live_vs_noop"] == pytest.approx(f["live_events_s"] / f["noop_events_s"], rel=0.01)
    assert f["live_vs_stock_noop"] == pytest.approx(
        f["live_events_s"] / f["stock-noop_events_s"], rel=0.01)
    assert row["machine"]["cpus"] and row["machine"]["versions"]["faust-streaming"] != "-"


@pytest.mark.broker
@pytest.mark.slow
def test_latency_and_memory_benches_record_their_figures(tmp_path: Path) -> None:
    out, rows = bench(tmp_path, "bench/latency.py", "--seconds", "3", "--rate", "200",
                      "--contracts", "20")
    assert "event-to-projection latency: p50" in out
    lat = rows[-1]["figures"]
    assert lat["committed"] == lat["events"] == 600 and 0 < lat["p50_ms"] <= lat["p99_ms"]
    out, rows = bench(tmp_path, "bench/memory.py", "--events", "3000", "--contracts", "20",
                      "--soak-seconds", "4", "--soak-rate", "100")
    assert "worker RSS" in out and "slope" in out
    mem = rows[-1]["figures"]
    assert mem["events"] == 3000 and mem["rss_after_load_mb"] > 20
