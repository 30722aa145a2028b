"""The Voila dashboards in a real browser: Debian's Chromium driven by Playwright,
against Voila started by the test on a database filled through the live code path
with the demo council.

Each page opens on sensible default content with a one-line hint; the figures shown
equal the queries' (which the dashboards call) in the formats of
svmon.dashboards.format; deep links (?contract=, ?supplier=, ?alert=, ?measure=,
and the link in a real alert email) land where they say; a filter and a contract can
be chosen; acknowledging an alert works for the contract's manager and is refused for
a viewer and for another manager. Every page passes axe-core with no serious or
critical violation. Full-page screenshots go to test-artifacts/dashboards/.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from svmon.bootstrap import init_database
from svmon.cli import absolute
from svmon.dashboards import format as fmt
from svmon.dashboards import queries as q
from svmon.demo import generate
from svmon.infra.broker import free_port
from svmon.infra.processes import Child
from svmon.models.ingest import IngestStore
from svmon.settings import Settings
from tests.browser import CHROMIUM, chromium, start_voila, whole_page_shot
from tests.conftest import ARTIFACTS
from tests.helpers import feed

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "build" / "axe-core" / "axe-4.10.3.min.js"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM) or not AXE.exists(),
                                 reason="Debian's chromium or axe-core is not installed: "
                                        "sh infra/install-browser.sh (make test runs it)")]
SHOTS = ARTIFACTS / "dashboards"
WAIT = 120_000  # ms: two cores shared with other work; a page's first render can be slow
POUNDS = re.compile(r"^−?£\d{1,3}(,\d{3})*$")  # whole pounds, as tables and tiles show £


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
    voila = start_voila(settings, tmp / "voila.log")
    url = f"http://127.0.0.1:{settings.dashboard_port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        yield {"url": url, "browser": browser, "repo": repo, "tokens": tokens,
               "states": states}
    voila.stop()


def _open(site: dict[str, Any], name: str, ready: str, query: str = "") -> Any:
    page = site["browser"].new_page(viewport={"width": 1300, "height": 900})
    page.goto(f"{site['url']}/voila/render/{name}.ipynb{query}", timeout=WAIT)
    page.wait_for_selector(ready, timeout=WAIT)
    return page


def _dropdown(page: Any, label: str) -> Any:
    return page.locator(".widget-dropdown", has_text=label).locator("select")


def _text(page: Any, selector: str, want: str) -> None:
    """Wait until ``selector``'s text is ``want`` (widgets update one by one)."""
    page.wait_for_function(
        "([s, want]) => { const e = document.querySelector(s); return e && e.innerText === want }",
        arg=[selector, want], timeout=WAIT)


def _shot(page: Any, name: str) -> Path:
    return whole_page_shot(page, SHOTS / f"{name}.png", settle_ms=800)


def _accessible(page: Any, name: str) -> None:
    """axe-core on the rendered page: no serious or critical violation (the full
    result is kept beside the screenshots)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
        .violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                               nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))""")
    (SHOTS / f"axe-{name}.json").write_text(json.dumps(found, indent=1))
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {json.dumps(bad, indent=1)}"


def _contract_label(repo: Any, cid: str) -> str:
    """A contract as the pickers list it (a widget's <option> holds its label)."""
    return next(label for label, v in q.contract_choices(repo) if v == cid)


def _hint(page: Any) -> None:
    assert len(page.inner_text("#hint")) > 40  # the one line that says what to do here


def test_home_links_every_dashboard_with_the_headline_figures(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "home", "#verified-gbp")
    data = q.portfolio(repo)
    _hint(page)
    assert page.inner_text("#contracts") == "12"
    assert page.inner_text("#verified-gbp") == fmt.gbp(data["totals"]["verified_gbp"])
    assert POUNDS.match(page.inner_text("#committed-gbp"))
    assert page.inner_text("#pending-count") == f"{q.awaiting_review(repo):,}"
    assert page.inner_text("#rag-amber") == str(data["rag"]["amber"])
    links = {a.get_attribute("href") for a in page.locator("#pages a").all()}
    assert links >= {f"{n}.ipynb" for n in ("portfolio", "contract", "supplier", "alerts",
                                            "auditor", "portal", "review")}
    _shot(page, "home")
    _accessible(page, "home")


def test_portfolio_shows_the_databases_figures_and_filters(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "portfolio", "#at-risk")
    data = q.portfolio(repo)
    _hint(page)
    assert page.inner_text("#contracts") == str(data["contracts"]) == "12"
    assert page.inner_text("#verified-gbp") == fmt.gbp(data["totals"]["verified_gbp"])
    assert page.inner_text("#committed-gbp") == fmt.gbp(data["totals"]["committed_gbp"])
    for tile in ("#verified-gbp", "#committed-gbp", "#claimed-gbp", "#period-gbp"):
        assert POUNDS.match(page.inner_text(tile)), tile
    # the demo has a review backlog and contracts in every RAG band
    assert data["totals"]["claimed_gbp"] > data["totals"]["verified_gbp"]
    assert data["rag"]["amber"] > 0 and data["rag"]["green"] > 0
    assert page.inner_text("#rag-red") == str(data["rag"]["red"])
    assert page.inner_text("#rag-amber") == str(data["rag"]["amber"])
    assert "below 90% of a target" in page.inner_text(".svmon-rule")  # the amber band
    assert page.inner_text("#rating-good") == str(data["ratings"]["good"])
    assert page.locator("#by-outcome tbody tr").count() == len(data["by_outcome"])
    nt1 = next(m for m in data["by_measure"] if m["measure"] == "NT1")
    cell = page.locator("#by-measure tbody tr", has_text="NT1").locator("td[data-col='verified']")
    assert cell.inner_text() == fmt.units(nt1["verified"], nt1["unit"])
    for c in page.locator("#by-measure td[data-col='verified_gbp']").all():
        assert POUNDS.match(c.inner_text())
    first = data["most_at_risk"][0]
    link = page.locator("#at-risk a", has_text=first["contract_id"]).first
    assert link.get_attribute("href") == f"contract.ipynb?contract={first['contract_id']}"
    assert "svg" not in page.evaluate(  # the legend is beside the chart, not over its data
        "() => document.querySelector('#theme-legend').closest('svg') ? 'svg' : ''")
    label, (since, until) = q.periods(date.today())[1]
    _dropdown(page, "Period").select_option(label=label)
    in_period = sum((v for _, v in q.portfolio(repo, q.Filters(since=since, until=until))
                     ["trend"]), q.ZERO)
    _text(page, "#period-gbp", fmt.gbp(in_period))
    _dropdown(page, "Period").select_option(label="All time")
    page.wait_for_selector("svg.svg-figure")
    _shot(page, "portfolio")
    _accessible(page, "portfolio")
    label, supplier = q.options(repo)["suppliers"][0]
    _dropdown(page, "Supplier").select_option(label=label)
    narrowed = q.portfolio(repo, q.Filters(supplier=supplier))
    assert narrowed["contracts"] < data["contracts"]
    _text(page, "#contracts", str(narrowed["contracts"]))
    _text(page, "#verified-gbp", fmt.gbp(narrowed["totals"]["verified_gbp"]))
    _shot(page, "portfolio-filtered")


def test_portfolio_deep_link_to_a_supplier_and_a_measure(site: dict[str, Any]) -> None:
    repo = site["repo"]
    narrowed = q.portfolio(repo, q.Filters(supplier="S03"))
    measure = narrowed["by_measure"][-1]["measure"]
    page = _open(site, "portfolio", "#contracts", f"?supplier=S03&measure={measure}")
    _text(page, "#contracts", str(narrowed["contracts"]))
    label = next(lb for lb, v in q.options(repo)["suppliers"] if v == "S03")
    assert _dropdown(page, "Supplier").input_value() == label  # widgets' options are labels
    page.wait_for_function("m => [...document.querySelectorAll("
                           "\"#by-measure td[data-col='measure']\")].map(e => e.innerText)"
                           ".join() === m", arg=measure, timeout=WAIT)


def test_contract_opens_on_a_default_and_a_chosen_contract(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "contract", "#contract-title")
    _hint(page)
    assert page.inner_text("#contract-id") == "C-001"  # no blank page: the first contract
    _dropdown(page, "Contract").select_option(label=_contract_label(repo, "C-003"))
    data = q.contract(repo, "C-003")
    _text(page, "#contract-id", "C-003")
    first = data["measures"][0]
    _text(page, "#measures tbody tr td[data-col='measure']", first["measure"])
    assert page.inner_text("#contract-title") == data["contract"]["title"]
    row = page.locator("#measures tbody tr").first
    assert row.locator("td[data-col='verified']").inner_text() == \
        fmt.units(first["verified"], first["unit"])
    assert POUNDS.match(row.locator("td[data-col='verified_gbp']").inner_text())
    page.wait_for_function(  # the tables arrive as separate widget updates
        "n => document.querySelectorAll('#evidence tbody tr').length === n",
        arg=len(data["evidence"]), timeout=WAIT)
    period = page.locator("#evidence td[data-col='period_end']").first.inner_text()
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4} – \d{1,2} [A-Z][a-z]{2} \d{4}", period)
    value = page.locator("#evidence td[data-col='value_gbp']").first.inner_text()
    assert re.fullmatch(r"£[\d,]+\.\d\d", value)  # pence in evidence detail
    import base64

    page.wait_for_function(
        "name => document.querySelector('#printable').getAttribute('download') === name",
        arg="C-003-summary.html", timeout=WAIT)
    href = page.get_attribute("#printable", "href")
    summary = base64.b64decode(href.split(",", 1)[1]).decode()
    assert data["contract"]["title"] in summary and "<h2>Milestones</h2>" in summary
    page.wait_for_selector("svg.svg-figure")
    _shot(page, "contract")
    _accessible(page, "contract")


def test_contract_deep_links_land_on_the_contract(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "contract", "#contract-title", "?contract=C-004")
    _text(page, "#contract-id", "C-004")
    assert _dropdown(page, "Contract").input_value() == _contract_label(repo, "C-004")
    assert page.inner_text("#contract-title") == q.contract(repo, "C-004")["contract"]["title"]
    _shot(page, "contract-deep-link")
    alert = next(a for a in repo.alerts("unresolved") if a["contract_id"] == "C-006")
    page = _open(site, "contract", "#from-alert", "?alert=" + alert["alert_id"])
    _text(page, "#contract-id", "C-006")
    assert fmt.alert_title(alert) in page.inner_text("#from-alert")
    measure = q.contract(repo, "C-002")["measures"][-1]
    page = _open(site, "contract", "#contract-title",
                 f"?contract=C-002&measure={measure['measure']}")
    _text(page, "#contract-id", "C-002")
    page.wait_for_function("n => document.querySelectorAll('svg.svg-figure').length === n",
                           arg=1, timeout=WAIT)  # only that measure's chart


def test_the_link_in_a_rendered_alert_email_opens_its_contract(site: dict[str, Any]) -> None:
    from svmon.alerts.dispatch import render

    repo = site["repo"]
    alert = next(a for a in repo.alerts("unresolved") if a["contract_id"] not in ("C-001",))
    c = q.contract(repo, alert["contract_id"])["contract"]
    message = render({**alert, "title": c["title"], "supplier_name": c["supplier_name"],
                      "delivery_id": "d-1", "escalation": False, "email": "m@example.org"},
                     f"{site['url']}/voila/render/contract.ipynb")
    (href,) = re.findall(r"href='([^']+)'", message.html)
    page = site["browser"].new_page(viewport={"width": 1300, "height": 900})
    page.goto(href.replace("&amp;", "&"), timeout=WAIT)
    _text(page, "#contract-id", alert["contract_id"])
    assert page.inner_text("#contract-title") == c["title"]


def test_only_the_signed_in_manager_can_acknowledge(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "alerts", "#alert-count")
    _hint(page)
    mine = next(a for a in repo.alerts("open")
                if q.contract(repo, a["contract_id"])["contract"]["manager"] == "mgr-aoife")
    first = page.locator("#inbox tbody tr").first.locator("td[data-col='title']").inner_text()
    assert first == fmt.alert_title(repo.alerts("unresolved")[0])  # titles, not ids
    choice = _dropdown(page, "Alert")
    label = f"{fmt.alert_title(mine)} (open)"
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('Sign in')", timeout=WAIT)

    def sign_in(who: str) -> None:
        page.fill("input[type=password]", site["tokens"][who])
        page.click("button:has-text('Sign in')")
        page.wait_for_selector(f"#who:has-text('{who}')", timeout=WAIT)

    sign_in("mgr-other")
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('Refused')", timeout=WAIT)
    assert next(a for a in repo.alerts() if a["alert_id"] == mine["alert_id"])["status"] == "open"
    sign_in("mgr-aoife")
    choice.select_option(label=label)
    page.click("button:has-text('Acknowledge')")
    page.wait_for_selector("#message:has-text('acknowledged')", timeout=WAIT)
    row = next(a for a in repo.alerts() if a["alert_id"] == mine["alert_id"])
    assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "mgr-aoife")
    _shot(page, "alerts")
    _accessible(page, "alerts")


def test_alerts_deep_link_chooses_the_alert(site: dict[str, Any]) -> None:
    repo = site["repo"]
    alert = repo.alerts("unresolved")[-1]
    page = _open(site, "alerts", "#alert-count", "?alert=" + alert["alert_id"])
    page.wait_for_selector("#message:has-text('Opened from a link')", timeout=WAIT)
    assert _dropdown(page, "Alert").input_value() == \
        f"{fmt.alert_title(alert)} ({alert['status']})"
    page = _open(site, "alerts", "#alert-count", "?contract=C-002")
    _text(page, "#alert-count", str(len(repo.alerts("unresolved", contract_id="C-002"))))


def test_supplier_view_and_league_table(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "supplier", "#supplier-name")
    _hint(page)
    table = q.suppliers(repo)
    _, first = q.options(repo)["suppliers"][0]
    assert page.inner_text("#supplier-name") == next(  # a default, not an empty chart
        r["supplier"] for r in table if r["supplier_id"] == first)
    label, supplier = q.options(repo)["suppliers"][1]
    _dropdown(page, "Supplier").select_option(label=label)
    rank = next(i for i, r in enumerate(table, 1) if r["supplier_id"] == supplier)
    _text(page, "#rank", str(rank))
    mine = q.supplier_contracts(repo, supplier)
    page.wait_for_function(  # the tables arrive as separate widget updates
        "n => document.querySelectorAll('#supplier-contracts tbody tr').length === n",
        arg=len(mine), timeout=WAIT)
    assert page.locator("#league tbody tr").count() == len(table)
    top = page.locator("#league tbody tr").first
    assert top.locator("td[data-col='supplier']").inner_text() == table[0]["supplier"]
    assert top.locator("td[data-col='delivered_pct']").inner_text() == \
        fmt.pct(table[0]["delivered_pct"])
    _shot(page, "supplier")
    _accessible(page, "supplier")
    page = _open(site, "supplier", "#supplier-name", "?supplier=S05")
    _text(page, "#supplier-name", next(r["supplier"] for r in table if r["supplier_id"] == "S05"))


def test_auditor_view_replays_and_checks_the_chain(site: dict[str, Any]) -> None:
    repo = site["repo"]
    page = _open(site, "auditor", "#chain")
    _hint(page)
    n = len(repo.journal_rows(contract_id="C-001"))  # no blank page: the first contract
    page.wait_for_selector(f"#audit-status:has-text('{n} events replayed')", timeout=WAIT)
    _dropdown(page, "Contract").select_option(label=_contract_label(repo, "C-005"))
    n = len(repo.journal_rows(contract_id="C-005"))
    page.wait_for_selector(f"#audit-status:has-text('{n} events replayed')", timeout=WAIT)
    assert page.inner_text("#chain") == "chain intact"
    _shot(page, "auditor")
    _accessible(page, "auditor")
    page = _open(site, "auditor", "#chain", "?contract=C-007")
    n = len(repo.journal_rows(contract_id="C-007"))
    page.wait_for_selector(f"#audit-status:has-text('{n} events replayed')", timeout=WAIT)


def test_new_evidence_appears_without_a_reload(site: dict[str, Any]) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from svmon.core import events as ev

    repo = site["repo"]
    page = _open(site, "portfolio", "#at-risk")
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
    now = fmt.gbp(q.portfolio(repo)["totals"]["verified_gbp"])
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
        assert {"home.ipynb", "portfolio.ipynb", "contract.ipynb", "supplier.ipynb",
                "alerts.ipynb", "auditor.ipynb"} <= names
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
