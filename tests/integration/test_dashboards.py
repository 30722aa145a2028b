"""The Voila dashboards in a real browser: Debian's Chromium driven by Playwright,
against Voila started by the test on a database filled through the live code path.

Each page renders, the figures shown equal the queries' (which the dashboards call),
a filter and a contract can be chosen, and acknowledging an alert works for the
contract's manager and is refused for a viewer and for another manager. Screenshots
go to test-artifacts/dashboards/.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from svmon.bootstrap import init_database
from svmon.cli import absolute, voila_command
from svmon.dashboards import kit
from svmon.dashboards import queries as q
from svmon.demo import generate
from svmon.infra.broker import free_port
from svmon.infra.processes import Child
from svmon.models.ingest import IngestStore
from svmon.settings import Settings
from tests.conftest import ARTIFACTS
from tests.helpers import feed

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason="Debian's chromium is not installed: "
                                        "sh infra/install-browser.sh (make test runs it)")]
SHOTS = ARTIFACTS / "dashboards"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dash")
    settings = absolute(Settings(data_dir=tmp, dashboard_port=free_port()))
    repo = init_database(settings)
    states: dict[str, Any] = {}
    feed(repo, generate(seed=7, contracts=12, today=date(2026, 11, 1)), store=states)
    store = IngestStore(repo)
    tokens = {"mgr-aoife": store.create_token("manager", "mgr-aoife")[1],
              "mgr-other": store.create_token("manager", "mgr-other")[1]}
    voila = Child("voila", voila_command(settings), settings.to_env(), tmp / "voila.log")
    url = f"http://127.0.0.1:{settings.dashboard_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or not voila.alive:
                raise AssertionError(f"Voila did not start; see {tmp / 'voila.log'}") from None
            time.sleep(0.3)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield {"url": url, "browser": browser, "repo": repo, "tokens": tokens,
               "states": states}
        browser.close()
    voila.stop()


def _open(site: dict[str, Any], name: str, ready: str) -> Any:
    page = site["browser"].new_page(viewport={"width": 1300, "height": 900})
    page.goto(f"{site['url']}/voila/render/{name}.ipynb", timeout=120_000)
    page.wait_for_selector(ready, timeout=120_000)
    return page


def _dropdown(page: Any, label: str) -> Any:
    return page.locator(".widget-dropdown", has_text=label).locator("select")


def test_portfolio_shows_the_databases_figures_and_filters(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "portfolio", "#verified-gbp")
    data = q.portfolio(repo)
    assert page.inner_text("#contracts") == str(data["contracts"]) == "12"
    assert page.inner_text("#verified-gbp") == kit.gbp(data["totals"]["verified_gbp"])
    assert page.inner_text("#committed-gbp") == kit.gbp(data["totals"]["committed_gbp"])
    assert page.inner_text("#rag-red") == str(data["rag"]["red"])
    assert page.inner_text("#rating-good") == str(data["ratings"]["good"])
    assert page.locator("#by-outcome tbody tr").count() == len(data["by_outcome"])
    nt1 = next(m for m in data["by_measure"] if m["measure"] == "NT1")
    cell = page.locator("#by-measure tbody tr", has_text="NT1").locator("td[data-col='verified']")
    assert cell.inner_text() == kit.cell(nt1["verified"])
    label, (since, until) = q.periods(date.today())[1]
    _dropdown(page, "Period").select_option(label=label)
    in_period = sum((v for _, v in q.portfolio(repo, q.Filters(since=since, until=until))
                     ["trend"]), q.ZERO)
    page.wait_for_function("want => document.querySelector('#period-gbp').innerText === want",
                           arg=kit.gbp(in_period), timeout=30_000)
    _dropdown(page, "Period").select_option(label="All time")
    page.wait_for_selector("svg.svg-figure")
    page.screenshot(path=str(SHOTS / "portfolio.png"), full_page=True)
    label, supplier = q.options(repo)["suppliers"][0]
    _dropdown(page, "Supplier").select_option(label=label)
    narrowed = q.portfolio(repo, q.Filters(supplier=supplier))
    assert narrowed["contracts"] < data["contracts"]
    page.wait_for_function(
        "want => document.querySelector('#contracts').innerText === want",
        arg=str(narrowed["contracts"]), timeout=30_000)
    assert page.inner_text("#verified-gbp") == kit.gbp(narrowed["totals"]["verified_gbp"])
    page.screenshot(path=str(SHOTS / "portfolio-filtered.png"), full_page=True)


def test_contract_drill_down_for_a_chosen_contract(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "contract", "#contract-title")
    _dropdown(page, "Contract").select_option("C-003")
    data = q.contract(repo, "C-003")
    first = data["measures"][0]
    page.wait_for_function(  # titles can repeat across contracts: wait for the table
        "want => document.querySelector(\"#measures td[data-col='measure']\").innerText"
        " === want", arg=first["measure"], timeout=30_000)
    assert page.inner_text("#contract-title") == data["contract"]["title"]
    row = page.locator("#measures tbody tr").first
    assert row.locator("td[data-col='measure']").inner_text() == first["measure"]
    assert row.locator("td[data-col='verified']").inner_text() == kit.cell(first["verified"])
    page.wait_for_function(  # the tables arrive as separate widget updates
        "n => document.querySelectorAll('#evidence tbody tr').length === n",
        arg=len(data["evidence"]), timeout=30_000)
    import base64

    page.wait_for_function(
        "name => document.querySelector('#printable').getAttribute('download') === name",
        arg="C-003-summary.html", timeout=30_000)
    href = page.get_attribute("#printable", "href")
    summary = base64.b64decode(href.split(",", 1)[1]).decode()
    assert data["contract"]["title"] in summary and "<h2>Milestones</h2>" in summary
    page.wait_for_selector("svg.svg-figure")
    page.screenshot(path=str(SHOTS / "contract.png"), full_page=True)


def test_only_the_signed_in_manager_can_acknowledge(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "alerts", "#alert-count")
    mine = next(a for a in repo.alerts("open")
                if q.contract(repo, a["contract_id"])["contract"]["manager"] == "mgr-aoife")
    choice = _dropdown(page, "Alert")
    label = f"{mine['contract_id']} {mine['kind']} {mine['measure']} (open)"
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('Sign in')", timeout=30_000)

    def sign_in(who: str) -> None:
        page.fill("input[type=password]", site["tokens"][who])
        page.click("button:has-text('Sign in')")
        page.wait_for_selector(f"#who:has-text('{who}')", timeout=30_000)

    sign_in("mgr-other")
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('Refused')", timeout=30_000)
    assert next(a for a in repo.alerts() if a["alert_id"] == mine["alert_id"])["status"] == "open"
    sign_in("mgr-aoife")
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('acknowledged')", timeout=30_000)
    row = next(a for a in repo.alerts() if a["alert_id"] == mine["alert_id"])
    assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "mgr-aoife")
    page.screenshot(path=str(SHOTS / "alerts.png"), full_page=True)


def test_supplier_view_and_league_table(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "supplier", "#supplier-name")
    label, supplier = q.options(repo)["suppliers"][1]
    _dropdown(page, "Supplier").select_option(label=label)
    table = q.suppliers(repo)
    rank = next(i for i, r in enumerate(table, 1) if r["supplier_id"] == supplier)
    page.wait_for_function("want => document.querySelector('#rank').innerText === want",
                           arg=str(rank), timeout=30_000)
    mine = q.supplier_contracts(repo, supplier)
    page.wait_for_function(  # the tables arrive as separate widget updates
        "n => document.querySelectorAll('#supplier-contracts tbody tr').length === n",
        arg=len(mine), timeout=30_000)
    assert page.locator("#league tbody tr").count() == len(table)
    first = page.locator("#league tbody tr").first
    assert first.locator("td[data-col='supplier']").inner_text() == table[0]["supplier"]
    page.screenshot(path=str(SHOTS / "supplier.png"), full_page=True)


def test_auditor_view_replays_and_checks_the_chain(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "auditor", "#chain")
    _dropdown(page, "Contract").select_option("C-005")
    n = len(repo.journal_rows(contract_id="C-005"))
    page.wait_for_selector(f"#audit-status:has-text('{n} events replayed')", timeout=60_000)
    assert page.inner_text("#chain") == "chain intact"
    page.screenshot(path=str(SHOTS / "auditor.png"), full_page=True)


def test_new_evidence_appears_without_a_reload(site: dict[str, Any]) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from svmon.core import events as ev

    repo = site["repo"]
    page = _open(site, "portfolio", "#verified-gbp")
    before = page.inner_text("#verified-gbp")
    when = datetime(2026, 11, 5, 10, tzinfo=UTC)
    feed(repo, [
        ev.EvidenceSubmitted(event_id="live-1", contract_id="C-001", occurred_at=when,
                             actor="supplier:S01", evidence_id="live-1", measure="D-HEALTH",
                             quantity=Decimal(10), period_start=date(2026, 10, 1),
                             period_end=date(2026, 10, 31)),
        ev.EvidenceVerified(event_id="live-1:verified", contract_id="C-001",
                            occurred_at=when, actor="mgr-aoife", evidence_id="live-1")],
        start=datetime(2026, 11, 22, tzinfo=UTC), store=site["states"])
    now = kit.gbp(q.portfolio(repo)["totals"]["verified_gbp"])
    assert now != before
    page.wait_for_function("want => document.querySelector('#verified-gbp').innerText === want",
                           arg=now, timeout=15_000)  # the page polls every 3 s


def test_svmon_lab_serves_the_same_notebooks(tmp_path: Path) -> None:
    import json
    import sys

    port = free_port()
    lab = Child("lab", [sys.executable, "-m", "svmon.cli", "lab", "--no-browser",
                        f"--port={port}", "--ServerApp.token=secret-for-the-test",
                        "--ServerApp.ip=127.0.0.1", "--allow-root"],  # CI runs as root
                {"SVMON_DATA_DIR": str(tmp_path)}, tmp_path / "lab.log")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents",
                                             headers={"Authorization":
                                                      "token secret-for-the-test"})
                listing = json.load(urllib.request.urlopen(req, timeout=3))
                break
            except OSError:
                if time.monotonic() > deadline or not lab.alive:
                    raise AssertionError(f"JupyterLab did not start: see {tmp_path}") \
                        from None
                time.sleep(0.5)
        names = {c["name"] for c in listing["content"]}
        assert {"portfolio.ipynb", "contract.ipynb", "supplier.ipynb", "alerts.ipynb",
                "auditor.ipynb"} <= names
    finally:
        lab.stop()


def test_voila_serves_neither_files_nor_notebook_sources(site: dict[str, Any]) -> None:
    """What the threat model promises of the dashboards: no file under the notebooks or
    elsewhere is served, rendered pages carry no code, errors carry no traceback."""
    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(site["url"] + path, timeout=30) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    for path in ["/voila/files/portfolio.ipynb", "/voila/files/README.md",
                 "/voila/files/../pyproject.toml", "/files/portfolio.ipynb",
                 "/api/contents/portfolio.ipynb", "/voila/static/../../pyproject.toml"]:
        status, body = get(path)
        assert status in (403, 404), (path, status)
        assert "svmon.dashboards" not in body and "[project]" not in body, path
    status, page = get("/voila/render/portfolio.ipynb")
    assert status == 200
    assert "from svmon.dashboards" not in page and "import " not in page
    status, body = get("/voila/render/no-such-page.ipynb")
    assert status == 404 and "Traceback" not in body
