"""What the browser tests share: a real Voila started as `svmon up` starts it, Debian's
Chromium launched by Playwright, and whole-page screenshots."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from svmon.cli import voila_command
from svmon.infra.processes import Child
from svmon.settings import Settings

CHROMIUM = "/usr/bin/chromium"
NO_CHROMIUM = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason="Debian's chromium is not installed: "
                                        "sh infra/install-browser.sh (make test runs it)")


def start_voila(settings: Settings, log: Path, folder: Path | None = None,
                timeout: float = 90) -> Child:
    """Voila as a child process, returned once it answers HTTP (any status)."""
    args = (settings,) if folder is None else (settings, folder)
    child = Child("voila", voila_command(*args), settings.to_env(), log)
    url = f"http://127.0.0.1:{settings.dashboard_port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return child
        except urllib.error.HTTPError:
            return child  # it answers
        except OSError:
            if time.monotonic() > deadline or not child.alive:
                child.stop()
                raise AssertionError(f"Voila did not start:\n{log.read_text()}") from None
            time.sleep(0.3)


@contextmanager
def chromium(*extra: str) -> Iterator[Any]:
    """Debian's Chromium, headless, without the background traffic a desktop makes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", *extra])
        try:
            yield browser
        finally:
            browser.close()


def whole_page_shot(page: Any, path: Path, settle_ms: int = 0) -> Path:
    """A screenshot of the whole page. Voila scrolls inside #rendered_cells, so the
    viewport is made as tall as the content first, then put back."""
    height = page.evaluate("() => Math.max(document.documentElement.scrollHeight, "
                           "...[...document.querySelectorAll('#rendered_cells')]"
                           ".map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1300, "height": min(max(int(height) + 40, 600), 16_000)})
    if settle_ms:
        page.wait_for_timeout(settle_ms)  # charts lay themselves out again
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1300, "height": 900})
    return path
