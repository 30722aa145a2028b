"""Dashboard benchmark: first render of the portfolio page beside a bare one-widget
notebook served by the same Voila, and the time a filter change takes.

    python bench/dashboards.py [--contracts 5000] [--data-dir DIR] [--runs 3]

Fills a database with the demo council scaled to ``--contracts`` contracts (about 180
events each: 5,000 contracts make about 900,000 events) through the worker's code path,
or reuses the one in ``--data-dir``. Then starts one Voila serving the project's
notebooks and a bare notebook, opens each in Debian's Chromium (Playwright), and prints
the median time from navigation to the first figure, the ratio (target: at most 1.5 ×
the bare notebook) and the median time from choosing a supplier to the new figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import record_result
from svmon.bootstrap import init_database
from svmon.cli import NOTEBOOKS, absolute, voila_command
from svmon.infra.broker import free_port
from svmon.infra.processes import Child
from svmon.settings import Settings

BARE = """{"cells": [{"cell_type": "code", "execution_count": null, "metadata": {},
"outputs": [], "source": ["import ipywidgets as w\\n", "w.HTML(\\"<b id='bare'>ready</b>\\")"]}],
"metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}"""


def fill(settings: Settings, contracts: int) -> None:
    from svmon.demo import generate
    from tests.helpers import feed

    repo = init_database(settings)
    if repo.counts()["contracts"] >= contracts:
        print(f"reusing {repo.counts()['journal']:,} events over {contracts:,} contracts")
        return
    t = time.perf_counter()
    events = generate(seed=11, contracts=contracts, today=date(2026, 11, 1))
    print(f"generated {len(events):,} events over {contracts:,} contracts; folding them "
          "into the database through the worker's code path ...", flush=True)
    states: dict = {}
    step = 50_000
    for i in range(0, len(events), step):
        feed(repo, events[i:i + step], batch=1000, store=states)
        print(f"  {min(i + step, len(events)):,} / {len(events):,}", flush=True)
    print(f"loaded in {time.perf_counter() - t:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contracts", type=int, default=5000)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-preheat", action="store_true",
                    help="Start each visitor's kernel on arrival (Voila's default).")
    args = ap.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="svmon-bench-dash-"))
    settings = absolute(Settings(data_dir=data_dir, dashboard_port=free_port()))
    fill(settings, args.contracts)

    site = Path(tempfile.mkdtemp(prefix="svmon-bench-site-"))
    (site / "bare.ipynb").write_text(BARE)
    for nb in NOTEBOOKS.glob("*.ipynb"):
        (site / nb.name).symlink_to(nb)
    port = settings.dashboard_port
    command = voila_command(settings, site)
    if args.no_preheat:
        command = [a for a in command if a not in ("--preheat_kernel=True", "--pool_size=1")]
    voila = Child("voila", command, settings.to_env(), site / "voila.log")
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])

            def render(name: str, selector: str) -> tuple[float, object]:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                t = time.perf_counter()
                page.goto(f"{url}/voila/render/{name}.ipynb", timeout=600_000)
                page.wait_for_selector(selector, timeout=600_000)
                return time.perf_counter() - t, page

            bare, portfolio, filters = [], [], []
            for _ in range(args.runs):  # alternate, so drift hits both alike
                dt, page = render("bare", "#bare")
                bare.append(dt)
                page.close()
                dt, page = render("portfolio", "#verified-gbp")
                portfolio.append(dt)
                before = page.inner_text("#contracts")
                select = page.locator(".widget-dropdown", has_text="Supplier").locator("select")
                options = select.locator("option").all_inner_texts()
                t = time.perf_counter()
                select.select_option(label=options[1 + len(filters) % (len(options) - 1)])
                page.wait_for_function(
                    "was => document.querySelector('#contracts').innerText !== was",
                    arg=before, timeout=600_000)
                filters.append(time.perf_counter() - t)
                page.close()
            browser.close()
    finally:
        voila.stop()
    b, pf, fc = (statistics.median(x) for x in (bare, portfolio, filters))
    kernels = "started on arrival" if args.no_preheat else "preheated"
    print(f"Voila first render, median of {args.runs} (Debian Chromium, same Voila, kernels "
          f"{kernels}):")
    print(f"  bare one-widget notebook   {b:6.2f} s")
    print(f"  portfolio                  {pf:6.2f} s   {pf / b:5.2f} × bare (target ≤ 1.5)")
    print(f"  filter change (supplier)   {fc:6.2f} s")
    record_result("dashboards", {"contracts": args.contracts, "kernels": kernels,
                                 "bare_s": round(b, 2), "portfolio_s": round(pf, 2),
                                 "portfolio_vs_bare": round(pf / b, 3),
                                 "filter_change_s": round(fc, 2)})


if __name__ == "__main__":
    main()
