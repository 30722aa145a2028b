"""One installed name: the wheel holds the package ``svmon`` and nothing else beside it.

The required top-level folders (``models/``, ``streams/``, ``alerts/``, ``infra/``) hold
their code where a reader expects it; ``svmon/models`` and its siblings are links to
them, so Python, mypy, import-linter and setuptools all see one package ``svmon`` with
these subpackages, without an import hook. A module imported under both names would
be two modules (two Faust apps, two table registries), so no file may use the bare name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("models", "streams", "alerts", "infra")


def python_files() -> list[Path]:
    files = [p for top in ("tests", "bench", *FOLDERS) for p in (ROOT / top).rglob("*.py")]
    # the links under svmon/ lead to the folders listed already
    return files + [p for p in (ROOT / "svmon").rglob("*.py")
                    if p.relative_to(ROOT).parts[1] not in FOLDERS]


def bare_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FOLDERS]
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] in FOLDERS):
            found.append(node.module)
    return found


def test_the_links_lead_to_the_top_level_folders():
    for name in FOLDERS:
        link = ROOT / "svmon" / name
        assert link.is_symlink(), f"svmon/{name} should be a link to ../{name}"
        assert link.resolve() == (ROOT / name).resolve()


def test_no_module_imports_a_folder_by_its_bare_name():
    offenders = {str(p.relative_to(ROOT)): bare for p in python_files()
                 if (bare := bare_imports(p.read_text()))}
    assert not offenders, f"import these as svmon.<folder>: {offenders}"


def test_the_checker_finds_a_bare_import():
    assert bare_imports("import streams.app\nfrom models.tables import X\n") == [
        "streams.app", "models.tables"]
    assert bare_imports("from svmon.models import tables\nfrom . import app\n") == []


def test_notebooks_import_through_svmon():
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        text = nb.read_text()
        for name in FOLDERS:
            assert f"from {name}." not in text and f"import {name}." not in text, nb.name


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("svmon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"svmon"}
    for module in ("svmon/streams/app.py", "svmon/models/tables.py", "svmon/alerts/dispatch.py",
                   "svmon/infra/broker.py", "svmon/models/migrations/script.py.mako",
                   "svmon/models/migrations/versions/0001_first_release_schema.py"):
        assert module in names, module
