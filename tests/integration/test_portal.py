"""The supplier portal and the manager's review queue in a real browser: Debian's
Chromium driven by Playwright, against Voila started by the test on a SQLite database
filled through the live code path.

A supplier signs in with their token and reports by form (an attachment's SHA-256
recorded) and by CSV with one bad row (that row refused, given back as a file that is
fixed and uploaded again); the manager verifies and rejects (a reason required) in the
queue, one by one and in bulk, and the contract's totals move; a supplier's token does
not open the queue, and another contract's manager sees nothing of it. What the pages
send goes to the inbox; the test's settle step does what relay, broker and worker do.
Screenshots go to test-artifacts/portal/.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from svmon.bootstrap import init_database
from svmon.cli import absolute
from svmon.core import events as ev
from svmon.dashboards import portal, review, session
from svmon.infra.broker import free_port
from svmon.models.ingest import IngestStore
from svmon.settings import Settings
from tests.browser import NO_CHROMIUM, chromium, start_voila, whole_page_shot
from tests.conftest import ARTIFACTS
from tests.helpers import drain_inbox, feed

pytestmark = [pytest.mark.slow, NO_CHROMIUM]
SHOTS = ARTIFACTS / "portal"
T0 = datetime(2025, 1, 2, 9, tzinfo=UTC)
FTE = "no. people FTE"


def contract(cid: str, supplier: str, manager: str) -> list[ev.ContractEvent]:
    """A contract with two commitments, a milestone ahead and one piece of evidence
    awaiting review (submitted in February 2025: the oldest in the queue)."""
    return [
        ev.ContractRegistered(
            event_id=f"{cid}:registered", contract_id=cid, occurred_at=T0, actor=manager,
            title=f"Highways maintenance {cid}", buyer="Borsetshire CC",
            buyer_department="Highways", supplier_id=supplier,
            supplier_name=f"Supplier {supplier}", start=date(2025, 1, 1),
            end=date(2027, 12, 31), value_gbp=Decimal("2500000"),
            catalogue_edition="DEMO-2025", manager=manager),
        ev.CommitmentMade(event_id=f"{cid}:commit:NT1", contract_id=cid, occurred_at=T0,
                          actor=manager, measure="NT1", target=Decimal(20)),
        ev.CommitmentMade(event_id=f"{cid}:commit:L-VOL", contract_id=cid, occurred_at=T0,
                          actor=manager, measure="L-VOL", target=Decimal(500)),
        ev.MilestoneScheduled(event_id=f"{cid}:ms1", contract_id=cid, occurred_at=T0,
                              actor=manager, milestone_id="M1", measure="NT1",
                              due=date(2027, 6, 30), cumulative_target=Decimal(10)),
        ev.EvidenceSubmitted(
            event_id=f"{cid}:E1", contract_id=cid,
            occurred_at=datetime(2025, 2, 5, tzinfo=UTC), actor=f"supplier:{supplier}",
            evidence_id="E1", measure="NT1", quantity=Decimal(2),
            period_start=date(2025, 1, 1), period_end=date(2025, 1, 31),
            description="Two apprentices hired", unit=FTE),
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("portal")
    settings = absolute(Settings(data_dir=tmp, dashboard_port=free_port()))
    repo = init_database(settings)
    states: dict[str, Any] = {}
    feed(repo, contract("C-P1", "S01", "mgr-p") + contract("C-P2", "S01", "mgr-p")
         + contract("C-Q1", "S02", "mgr-q"), store=states)
    store = IngestStore(repo)
    tokens = {name: store.create_token(kind, party)[1] for name, kind, party in [
        ("S01", "supplier", "S01"), ("S02", "supplier", "S02"),
        ("mgr-p", "manager", "mgr-p"), ("mgr-q", "manager", "mgr-q")]}
    voila = start_voila(settings, tmp / "voila.log")
    url = f"http://127.0.0.1:{settings.dashboard_port}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium("--lang=en-GB") as browser:  # UK date pickers
        yield {"url": url, "browser": browser, "repo": repo, "store": store,
               "tokens": tokens, "states": states, "tmp": tmp,
               "service": session.open_service(repo)}
    voila.stop()


def _open(site: dict[str, Any], name: str, query: str = "") -> Any:
    page = site["browser"].new_page(viewport={"width": 1300, "height": 900}, locale="en-GB")
    page.goto(f"{site['url']}/voila/render/{name}.ipynb{query}", timeout=120_000)
    page.wait_for_selector("#hint", timeout=120_000)
    return page


def _sign_in(page: Any, site: dict[str, Any], who: str, expect: str | None = None) -> None:
    page.fill("input[type=password]", site["tokens"][who])
    page.click("button:has-text('Sign in')")
    page.wait_for_selector(f"#who:has-text('{expect or who}')", timeout=30_000)


def _select(page: Any, label: str) -> Any:
    return page.locator(f".widget-dropdown:has(label.widget-label:text-is('{label}')) select")


def _shot(page: Any, name: str) -> None:
    whole_page_shot(page, SHOTS / f"{name}.png")


def _choose_file(page: Any, button: str, path: Path) -> None:
    """Pick a file in the upload button's file chooser, as a person does."""
    with page.expect_file_chooser() as chooser:
        page.click(f"button:has-text('{button}')")
    chooser.value.set_files(str(path))


def _settle(site: dict[str, Any]) -> int:
    return drain_inbox(site["repo"], site["store"], site["states"])


def _totals(site: dict[str, Any], cid: str) -> dict[str, tuple[Decimal, Decimal]]:
    return {m["measure"]: (m["claimed"], m["verified"])
            for m in site["store"].contract_detail(cid)["totals"]}


def _text(page: Any, selector: str, want: str) -> None:
    page.wait_for_function(
        "([s, want]) => { const e = document.querySelector(s); "
        "return e !== null && e.innerText.includes(want); }",
        arg=[selector, want], timeout=30_000)


def test_pages_open_with_a_hint_and_a_sign_in(site: dict[str, Any]) -> None:
    for name, who in [("portal", "suppliers"), ("review", "contract managers")]:
        page = _open(site, name)
        assert page.inner_text("#hint").startswith(f"For {who}:")
        assert page.locator("input[type=password]").is_visible()
        assert page.inner_text("#who") == "Not signed in."
        page.screenshot(path=str(SHOTS / f"{name}-start.png"), full_page=True)
        page.close()


def test_supplier_submits_by_form_and_by_file(site: dict[str, Any]) -> None:
    page = _open(site, "portal", "?contract=C-P2")
    _sign_in(page, site, "S01")
    page.wait_for_selector("#owed tbody tr")
    # what they owe: both of their contracts' commitments, none of S02's
    owed = page.inner_text("#owed")
    assert "C-P1" in owed and "C-P2" in owed and "C-Q1" not in owed
    nt1 = page.locator("#owed tbody tr", has_text="C-P1").filter(has_text="NT1")
    assert nt1.locator("td[data-col='awaiting']").inner_text() == "2"
    assert nt1.locator("td[data-col='needed']").inner_text() == "10"  # milestone M1
    # the deep link chose the contract
    chosen = _select(page, "Contract").evaluate("s => s.options[s.selectedIndex].text")
    assert chosen.startswith("C-P2")

    _select(page, "Contract").select_option(label="C-P1 – Highways maintenance C-P1")
    measure = _select(page, "Measure")
    measure.select_option(label=next(lbl for lbl, code in portal.measures_of(
        portal.contracts(site["service"], site["store"].principal(site["tokens"]["S01"])),
        "C-P1") if code == "NT1"))
    _text(page, "#unit", FTE)
    page.fill(".widget-text:has-text('Quantity') input", "3")
    dates = page.locator("input[type=date]")
    dates.nth(0).fill("2025-03-01")
    dates.nth(1).fill("2025-03-31")
    page.fill(".widget-text:has-text('Reference') input", "FORM-1")
    page.fill("textarea", "Three local hires for the resurfacing crew")
    proof = site["tmp"] / "payroll-march.pdf"
    proof.write_bytes(b"%PDF-1.4 payroll extract, March 2025")
    sha = hashlib.sha256(proof.read_bytes()).hexdigest()
    _choose_file(page, "Attachments", proof)
    _text(page, "#attached", sha)
    page.click("button:has-text('Submit evidence')")
    _text(page, "#submitted", "Received FORM-1")
    got = [s for s in site["store"].submissions(["C-P1"], submitted_by="supplier:S01")
           if s["data"].get("evidence_id") == "FORM-1"]
    assert len(got) == 1
    assert got[0]["data"]["attachments"] == [{"name": "payroll-march.pdf", "sha256": sha,
                                              "uri": ""}]
    assert (got[0]["data"]["quantity"], got[0]["data"]["unit"]) == ("3", FTE)
    assert got[0]["channel"] == session.CHANNEL

    header = "contract_id,evidence_id,measure,quantity,unit,period_start,period_end,description"
    rows = [f"C-P1,CSV-1,NT1,1,{FTE},2025-04-01,2025-04-30,Apprentice",
            f"C-P1,CSV-2,NT1,lots,{FTE},2025-04-01,2025-04-30,Another apprentice",
            f"C-P1,CSV-3,NT1,2,{FTE},2025-04-01,2025-04-30,Two more"]
    upload = site["tmp"] / "april.csv"
    upload.write_text("\n".join([header, *rows]) + "\n")
    _choose_file(page, "Upload CSV/XLSX", upload)
    _text(page, "#upload-refused", "1")
    assert page.inner_text("#upload-accepted") == "2"
    bad = page.locator("#upload-errors tbody tr")
    assert bad.count() == 1
    assert bad.locator("td[data-col='row']").inner_text() == "3"
    assert bad.locator("td[data-col='field']").inner_text() == "quantity"
    _shot(page, "portal-upload")
    # the refused rows come back as a file with the same columns and the error
    href = page.locator("#upload-report a[download='refused-rows.csv']").get_attribute("href")
    refused = base64.b64decode(href.split(",", 1)[1]).decode()
    lines = refused.strip().splitlines()
    assert lines[0] == header + ",error" and len(lines) == 2
    assert lines[1].startswith("C-P1,CSV-2,NT1,lots,") and "quantity" in lines[1]
    fixed = site["tmp"] / "refused-rows.csv"
    fixed.write_text(refused.replace(",lots,", ",4,"))
    _choose_file(page, "Upload CSV/XLSX", fixed)
    _text(page, "#upload-refused", "0")
    assert page.inner_text("#upload-accepted") == "1"

    assert _settle(site) >= 4
    assert _totals(site, "C-P1")["NT1"] == (Decimal(2 + 3 + 1 + 4 + 2), Decimal(0))
    # the page sees the worker's progress without a reload: awaiting review now
    page.wait_for_function(
        "() => [...document.querySelectorAll('#mine tbody tr')].filter(r => "
        "r.innerText.includes('Awaiting review')).length === 4", timeout=30_000)
    assert page.locator("#owed tbody tr", has_text="C-P1").filter(has_text="NT1") \
        .locator("td[data-col='claimed']").inner_text() == "12"
    _shot(page, "portal")


def _seed(site: dict[str, Any], cid: str, refs: list[tuple[str, str, str]]) -> None:
    """Evidence sent by the supplier through the portal's command (same service)."""
    supplier = site["store"].principal(site["tokens"]["S01"])
    for ref, qty, month in refs:
        portal.submit(site["service"], supplier, contract_id=cid, measure="NT1",
                      quantity=qty, period_start=date.fromisoformat(f"{month}-01"),
                      period_end=date.fromisoformat(f"{month}-28"),
                      description=f"hires {ref}", evidence_id=ref,
                      attachments=[(f"{ref}.pdf", ref.encode())])
    _settle(site)


def test_manager_verifies_and_rejects_and_the_totals_move(site: dict[str, Any]) -> None:
    _seed(site, "C-P2", [("Q-1", "1", "2025-05"), ("Q-2", "2", "2025-06"),
                         ("Q-3", "3", "2025-06"), ("Q-4", "5", "2025-07")])
    before = _totals(site, "C-P2")["NT1"]
    assert before == (Decimal(13), Decimal(0))
    page = _open(site, "review", "?contract=C-P2&evidence=Q-4")
    _sign_in(page, site, "mgr-p")
    _text(page, "#queue-count", "5")
    first = page.locator("#queue tbody tr").first  # oldest first: E1 from February 2025
    assert first.locator("td[data-col='evidence_id']").inner_text() == "E1"
    q2 = page.locator("#queue tbody tr", has_text="Q-2")
    assert q2.locator("td[data-col='description']").inner_text() == "hires Q-2"
    assert hashlib.sha256(b"Q-2").hexdigest() in \
        q2.locator("td[data-col='attachments']").inner_text()
    evidence = page.locator(".widget-select-multiple select")
    # the deep link chose Q-4
    assert evidence.evaluate("s => [...s.selectedOptions].map(o => o.text)") == \
        [o for o in evidence.evaluate("s => [...s.options].map(o => o.text)") if "Q-4" in o]

    def choose(*refs: str) -> None:
        labels = evidence.evaluate("s => [...s.options].map(o => o.text)")
        evidence.select_option(label=[lb for lb in labels if lb.split(":")[0].split()[1]
                                      in refs])

    choose("E1")
    page.click("button:has-text('Verify')")
    _text(page, "#outcome", "1 verified")
    effect = page.locator("#effect tbody tr", has_text="NT1")
    assert effect.locator("td[data-col='verified']").inner_text() == "0 → 2"
    choose("Q-1")
    page.click("button:has-text('Reject')")
    _text(page, "#outcome", "Refused: 'reason'")
    page.fill(".widget-text:has-text('Reason') input", "The payslips do not name the hires")
    page.click("button:has-text('Reject')")
    _text(page, "#outcome", "1 rejected")
    assert page.locator("#effect td[data-col='claimed']").inner_text() == "13 → 12"
    # in bulk: are alike (same contract, measure and period)
    choose("Q-2")
    page.click("button:has-text('Select alike')")
    page.wait_for_function("() => document.querySelector('.widget-select-multiple select')"
                           ".selectedOptions.length === 2", timeout=30_000)
    page.click("button:has-text('Verify')")
    _text(page, "#outcome", "2 verified")
    assert page.locator("#effect td[data-col='verified']").inner_text() == "2 → 7"
    _text(page, "#queue-count", "1")
    _shot(page, "review")

    _settle(site)
    assert _totals(site, "C-P2")["NT1"] == (Decimal(12), Decimal(7))
    # the supplier reads the reason on the portal
    portal_page = _open(site, "portal", "?evidence=Q-1")
    _sign_in(portal_page, site, "S01")
    _text(portal_page, "#linked", "The payslips do not name the hires")
    row = portal_page.locator("#mine tbody tr", has_text="Q-1")
    assert row.locator("td[data-col='status']").inner_text() == "Rejected"
    _shot(portal_page, "portal-rejected")


def test_a_supplier_cannot_review_and_another_manager_sees_nothing(
        site: dict[str, Any]) -> None:
    _seed(site, "C-P1", [("Z-1", "1", "2025-08")])
    page = _open(site, "review")
    _sign_in(page, site, "S01", expect="must be a manager")
    assert not page.locator("#queue").is_visible()
    # nor can the supplier's principal decide through the module the page uses
    supplier = site["store"].principal(site["tokens"]["S01"])
    out = review.decide(site["service"], supplier, [("C-P1", "Z-1")], "verify")
    assert out.receipts == [] and "only a manager" in str(out.errors[0].error)
    _shot(page, "review-supplier-refused")

    other = _open(site, "review", "?contract=C-P1")
    _sign_in(other, site, "mgr-q")
    _text(other, "#status", "C-P1 is not one of yours")
    _text(other, "#queue-count", "1")  # C-Q1's own E1, nothing of C-P1
    assert "C-P1" not in other.inner_text("#queue")
    assert "Z-1" not in other.inner_text("body")
    options = _select(other, "Contract").evaluate("s => [...s.options].map(o => o.text)")
    assert not any("C-P1" in o or "C-P2" in o for o in options)
    manager_q = site["store"].principal(site["tokens"]["mgr-q"])
    out = review.decide(site["service"], manager_q, [("C-P1", "Z-1")], "verify")
    assert out.receipts == [] and "not managed by mgr-q" in str(out.errors[0].error)
    _shot(other, "review-other-manager")
    _settle(site)
    assert site["service"].views.state("C-P1").evidence["Z-1"].status == "submitted"


def test_the_form_reports_the_refused_field_and_the_supplier_retracts(
        site: dict[str, Any]) -> None:
    _seed(site, "C-P1", [("R-1", "1", "2025-09")])
    page = _open(site, "portal")
    _sign_in(page, site, "S01")
    page.wait_for_selector("#owed tbody tr")
    page.fill(".widget-text:has-text('Quantity') input", "-1")
    dates = page.locator("input[type=date]")
    dates.nth(0).fill("2025-03-01")
    dates.nth(1).fill("2025-03-31")
    page.click("button:has-text('Submit evidence')")
    try:
        _text(page, "#submitted", "Refused: 'quantity' must be greater than 0")
    finally:
        _shot(page, "portal-form-refused")
    retract = _select(page, "Evidence")
    retract.select_option(label=next(o for o in retract.evaluate(
        "s => [...s.options].map(o => o.text)") if " R-1 " in o.replace("\xa0", " ")))
    page.fill(".widget-text:has-text('Reason') input", "sent twice")
    page.click("button:has-text('Retract')")
    _text(page, "#retracted", "Retracted R-1 on C-P1")
    assert site["service"].views.state("C-P1").evidence["R-1"].status == "retracted"
