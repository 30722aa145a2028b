"""Issue #22 end to end: `svmon replay --as-of/--delivered-by` and `svmon export
performance-notice --on` over a real journal (SQLite, and PostgreSQL where reachable),
each event recorded at a known time through the live code path minus Kafka."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from svmon.bootstrap import init_database
from svmon.cli import main
from svmon.core import events as ev
from svmon.core.idempotence import key_of
from svmon.core.state import ContractState
from svmon.models.repository import Repository
from svmon.schemas import encode_event
from svmon.settings import Settings
from svmon.streams.processor import Record, decode_all, process
from tests.unit._builders import committed, registered, submitted, verified


def _record(repo: Repository, events: Sequence[ev.ContractEvent]) -> None:
    """Each event in a batch of its own, recorded when it occurred."""
    store: dict[str, ContractState] = {}
    for n, e in enumerate(events):
        decoded = decode_all([Record("t", 0, n, e.contract_id.encode(), encode_event(e))])
        batch = process(decoded, store.get, repo.catalogue, "test", recorded_at=e.occurred_at,
                        gate=repo.seed_gate([key_of(e)]))
        assert not batch.dead_letters, batch.dead_letters
        repo.apply_batch(batch)
        store.update(batch.states)


# Term 2026; 100 volunteering hours committed. Periods (delivery time) and the day each
# piece was submitted and verified (record time):
#   E1 January        10 h   recorded  5 Feb
#   E2 February       28 h   recorded  2 Mar   (spans 14 Feb: 28 x 14/28 = 14 h by then)
#   E3 January         4 h   recorded 20 Mar   (late evidence for an early period)
#   E4 March           6 h   recorded  2 Apr
# Delivered by 14 Feb (D), believed on 10 Mar (T):
#                      every period    delivered by D
#   as known now       10+28+4+6 = 48  10+14+4 = 28
#   as of T            10+28     = 38  10+14   = 24
LOG = [registered(start="2026-01-01", end="2026-12-31", when="2026-01-02"),
       committed("L-VOL", "100", when="2026-01-02"),
       submitted("E1", "L-VOL", "10", "2026-01-01", "2026-01-31", "2026-02-05"),
       verified("E1", "2026-02-05"),
       submitted("E2", "L-VOL", "28", "2026-02-01", "2026-02-28", "2026-03-02"),
       verified("E2", "2026-03-02"),
       submitted("E3", "L-VOL", "4", "2026-01-01", "2026-01-31", "2026-03-20"),
       verified("E3", "2026-03-20"),
       submitted("E4", "L-VOL", "6", "2026-03-01", "2026-03-31", "2026-04-02"),
       verified("E4", "2026-04-02")]
T, D = "2026-03-10T00:00:00Z", "2026-02-14"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    _record(init_database(Settings(database_url=database_url, data_dir=tmp_path)), LOG)
    return {"DATABASE_URL": database_url, "SVMON_DATA_DIR": str(tmp_path)}


def _svmon(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def _replay(env: dict[str, str], *args: str) -> tuple[dict[str, Any], str]:
    result = _svmon(env, "replay", "--json", *args)
    data = json.loads(result.stdout)
    (measure,) = data["contracts"][0]["measures"]
    return {"claimed": measure["claimed"], "verified": measure["verified"],
            "evidence": sorted(e["evidence_id"] for e in measure["evidence"]),
            "axes": data["time_axes"], "delivered_by": data["delivered_by"],
            "as_of": data["as_of"]}, result.stderr


def test_replay_on_both_axes_gives_the_four_worked_figures(env: dict[str, str]) -> None:
    now_all, _ = _replay(env)
    now_d, _ = _replay(env, "--delivered-by", D)
    then_all, _ = _replay(env, "--as-of", T)
    then_d, summary = _replay(env, "--as-of", T, "--delivered-by", D)
    assert [r["verified"] for r in (now_all, now_d, then_all, then_d)] == \
        ["48", "28", "38", "24"]
    assert then_d["claimed"] == "24"
    # the evidence listed is what the cut can count: E4 (March) starts after D
    assert now_d["evidence"] == ["E1", "E2", "E3"] and then_d["evidence"] == ["E1", "E2"]
    assert now_all["axes"] == {"record": "record time: every event recorded (as known now)",
                               "delivery": "delivery time: every evidence period"}
    assert then_d["axes"] == {
        "record": "record time: events recorded up to 2026-03-10T00:00:00+00:00",
        "delivery": "delivery time: evidence periods up to 2026-02-14 (a period spanning it "
                    "counted pro rata by days)"}
    assert (then_d["delivered_by"], then_d["as_of"]) == ("2026-02-14",
                                                          "2026-03-10T00:00:00+00:00")
    assert "record time: events recorded up to 2026-03-10" in summary
    assert "delivery time: evidence periods up to 2026-02-14" in summary


def test_replay_report_files_name_both_axes(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _svmon(env, "replay", "--as-of", T, "--delivered-by", D, "--report", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["time_axes"]["delivery"].startswith(
        "delivery time: evidence periods up to 2026-02-14")
    assert report["contracts"][0]["measures"][0]["verified"] == "24"
    html = (out / "report.html").read_text()
    assert "record time: events recorded up to 2026-03-10T00:00:00+00:00" in html
    assert "evidence periods up to 2026-02-14" in html


def test_verify_with_a_delivery_cut_checks_the_chain_but_not_the_live_figures(
        env: dict[str, str]) -> None:
    result = _svmon(env, "replay", "--verify", "--delivered-by", D)
    assert "--delivered-by given" in result.stderr
    assert "every chain intact" in result.stdout
    assert "every figure matches" not in result.stdout
    full = _svmon(env, "replay", "--verify")
    assert "every figure matches the live projections" in full.stdout


def test_a_bad_delivered_by_date_names_the_option(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["replay", "--delivered-by", "14/02/2026"], env=env)
    assert result.exit_code == 2
    assert "--delivered-by" in result.output and "14/02/2026" in result.output


def test_performance_notice_on_a_date_counts_delivery_up_to_it(env: dict[str, str]) -> None:
    """On 14 Feb the trajectory expects 100 x 44/364 = 12.09 h; delivered by then, as
    known now, 28 h (E1 10 + E2 14 + E3 4): "good". On 31 Jan, 14 h of 8.24: "good"
    too, but with E2 excluded; the figures differ from the 48 h that today's totals hold."""
    (notice,) = json.loads(_svmon(env, "export", "performance-notice", "--contract",
                                  "C-001", "--on", D).stdout)
    (kpi,) = notice["kpis"]
    assert (kpi["verified"], kpi["expected_by_now"], kpi["rating"]) == ("28", "12.09", "good")
    assert kpi["verified_for_later_periods"] == "20"
    assert notice["time_axes"]["delivery"].startswith(
        "delivery time: evidence periods up to 2026-02-14")
    assert notice["time_axes"]["record"].startswith("record time: events recorded up to ")
    (notice,) = json.loads(_svmon(env, "export", "performance-notice", "--on",
                                  "2026-01-31").stdout)
    assert notice["kpis"][0]["verified"] == "14"
    assert date.fromisoformat(notice["assessment_date"]) == date(2026, 1, 31)
