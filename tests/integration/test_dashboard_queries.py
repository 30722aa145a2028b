"""The dashboards' queries on SQLite and PostgreSQL, against the repository's report."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from svmon.bootstrap import init_database
from svmon.dashboards import kit
from svmon.dashboards import queries as q
from svmon.demo import generate
from svmon.settings import Settings
from tests.helpers import feed


def test_queries_agree_with_the_report(database_url: str, tmp_path: Path) -> None:
    repo = init_database(Settings(database_url=database_url, data_dir=tmp_path))
    feed(repo, generate(seed=5, contracts=10, today=date(2026, 11, 1)))
    report = repo.report()
    everything = q.portfolio(repo)
    verified = sum((Decimal(m["verified_gbp"]) for c in report["contracts"]
                    for m in c["measures"]), Decimal(0))
    assert everything["contracts"] == 10
    assert everything["totals"]["verified_gbp"] == verified
    assert sum(everything["rag"].values()) == 10
    assert sum(v["verified_gbp"] for v in everything["by_theme"].values()) == verified
    trend = sum(v for _, v in everything["trend"])
    assert abs(trend - verified) < Decimal("0.01")  # summed by month in the database
    missed = {c["contract_id"] for c in report["contracts"]
              if {a["kind"] for a in c["open_alerts"]} & q.RED_KINDS}
    # red: the target missed, or a milestone missed by more than the amber band
    far = {a["contract_id"] for a in repo.alerts("unresolved")
           if a["kind"] == "TargetMissed" or (a["kind"] == "MilestoneMissed" and
           Decimal(json.loads(a["detail"])["verified"])
           < Decimal(json.loads(a["detail"])["target"]) * Decimal("0.9"))}
    assert everything["rag"]["red"] == len(far) and far <= missed
    assert {r["contract_id"] for r in everything["most_at_risk"] if r["rag"] == "red"} \
        == far
    near = missed - far  # milestones missed, within the band only: amber
    assert {r["contract_id"] for r in everything["most_at_risk"] if r["rag"] == "amber"} \
        >= near

    _, supplier = q.options(repo)["suppliers"][0]
    mine = [c for c in report["contracts"] if c["supplier_id"] == supplier]
    narrowed = q.portfolio(repo, q.Filters(supplier=supplier))
    assert narrowed["contracts"] == len(mine)
    assert narrowed["totals"]["verified_gbp"] == sum(
        (Decimal(m["verified_gbp"]) for c in mine for m in c["measures"]), Decimal(0))
    jobs = q.portfolio(repo, q.Filters(theme="Jobs"))
    assert set(jobs["by_theme"]) == {"Jobs"}

    units = {m["measure"]: m["verified"] for m in everything["by_measure"]}
    assert units["NT1"] == sum((Decimal(m["verified"]) for c in report["contracts"]
                                for m in c["measures"] if m["measure"] == "NT1"), Decimal(0))
    rated = everything["ratings"]
    assert set(rated) == set(q.RATINGS) and sum(rated.values()) > 0
    assert sum(rated.values()) <= sum(len(c["measures"]) for c in report["contracts"])
    labels = [label for label, _ in q.periods(date(2026, 11, 1))]
    assert labels[2].startswith("2026-27") and labels[3].startswith("2025-26")
    _, (since, until) = q.periods(date(2026, 11, 1))[3]
    last_year = q.portfolio(repo, q.Filters(since=since, until=until))["trend"]
    assert last_year and all("2025-04" <= m <= "2026-03" for m, _ in last_year)
    assert sum(v for _, v in last_year) < trend

    c = q.contract(repo, "C-002")
    assert [m["measure"] for m in c["measures"]] == \
        [m["measure"] for m in report["contracts"][1]["measures"]]
    first = c["measures"][0]
    steps = q.cumulative(c["evidence"], first["measure"], ("verified",))
    assert (steps[-1][1] if steps else Decimal(0)) == first["verified"]
    links = kit.download_links(c["evidence"], [("evidence_id", "Evidence")], "x")
    assert "data:text/csv;base64," in links and "spreadsheetml" in links
    pending = sum(1 for cid in q.contract_ids(repo) for e in q.contract(repo, cid)["evidence"]
                  if e["status"] == "submitted")
    assert q.awaiting_review(repo) == pending > 0  # the demo's review backlog
