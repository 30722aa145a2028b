"""The Voila server `svmon up` and `svmon dashboards` start (``voila_command``), as a real
process: no 500 from the template route, no listing of the notebooks, and the
dashboards still render with their template's static files."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest

from svmon.cli import absolute
from svmon.infra.broker import free_port
from svmon.settings import Settings
from tests.browser import start_voila

SECRET = "budget-cuts-2027"  # a notebook name nobody should learn from the server


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("voila")
    folder = tmp / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('rendered ' + 'by the kernel')")]
    nbformat.write(nb, folder / f"{SECRET}.ipynb")
    (folder / "notes.txt").write_text("not for the web")
    settings = absolute(Settings(data_dir=tmp, dashboard_port=free_port()))
    log = tmp / "voila.log"
    child = start_voila(settings, log, folder)
    url = f"http://127.0.0.1:{settings.dashboard_port}"
    yield {"url": url, "log": log}
    child.stop()


@pytest.mark.parametrize("path", ["/voila/templates/", "/voila/templates/lab",
                                  "/voila/templates/lab/static/",
                                  "/voila/templates/lab/other/voila.js",
                                  "/voila/templates/lab/static/../../../../etc/passwd",
                                  "/voila/templates/lab/static/no-such-file.js"])
def test_a_malformed_template_path_is_not_found_not_a_server_error(
        voila: dict[str, Any], path: str) -> None:
    status, _ = _get(voila["url"] + path)
    assert status == 404, path
    assert f"Uncaught exception GET {path}" not in voila["log"].read_text()


def test_template_static_files_are_still_served(voila: dict[str, Any]) -> None:
    status, body = _get(voila["url"] + "/voila/templates/lab/static/voila.js")
    assert status == 200 and "JUPYTERLAB" in body


@pytest.mark.parametrize("path", ["/voila/api/contents", "/voila/api/contents/",
                                  f"/voila/api/contents/{SECRET}.ipynb",
                                  "/voila/api/contents/notes.txt"])
def test_the_contents_api_answers_nothing(voila: dict[str, Any], path: str) -> None:
    status, body = _get(voila["url"] + path)
    assert status == 404, (path, body[:200])
    assert SECRET not in body and "notes.txt" not in body


def test_the_home_and_tree_pages_name_no_notebook(voila: dict[str, Any]) -> None:
    for path in ("/", "/voila/tree", "/voila/tree/"):
        status, body = _get(voila["url"] + path)
        assert status == 200, path
        assert SECRET not in body and "notes.txt" not in body, path


def test_a_dashboard_still_renders_by_its_name(voila: dict[str, Any]) -> None:
    status, body = _get(f"{voila['url']}/voila/render/{SECRET}.ipynb")
    assert status == 200
    assert "rendered by the kernel" in body
    assert "print(" not in body  # sources stripped, as before
    status, _ = _get(voila["url"] + "/voila/files/notes.txt")
    assert status in (403, 404)  # no other files, as before
