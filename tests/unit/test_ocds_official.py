"""OCDS release packages checked against the official OCDS 1.1.5 schemas (issue #6).

``infra/fetch_ocds_schema.py`` fetches the official release-package and release schemas
(from the sdists of ocdskit and ocdsextensionregistry on PyPI, hash-pinned) into
``test-artifacts/ocds-schema/``; the first test run downloads them, later runs reuse
them. If they cannot be fetched the tests here fail with the reason: they never skip.

The package schema's ``releases.items`` is a ``$ref`` to the release schema's id URL,
so both schemas go in a local ``referencing`` registry under their ids and nothing is
fetched while validating.

The metrics extension's own schema is not available here, and the official schema
allows additional properties, so it does not check ``agreedMetrics`` or
``implementation.metrics``: those fields stay covered by the hand-written schema in
test_exports.py (``PACKAGE``), which is applied to the contract built here as well.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, Draft7Validator
from referencing import Registry, Resource

from svmon.audit.exports import ocds_release_package
from svmon.catalogue_files import load_catalogue
from svmon.core.fold import fold_all
from svmon.demo import generate
from svmon.infra import fetch_ocds_schema as fetch
from tests.unit._builders import (
    CATALOGUE,
    apply,
    committed,
    milestone,
    registered,
    submitted,
    tick,
    verified,
)
from tests.unit.test_exports import PACKAGE as HAND_WRITTEN_PACKAGE

TODAY = date(2026, 11, 1)
PUBLISHED = datetime(2026, 11, 2, tzinfo=UTC)


@functools.cache
def _fetched() -> Path | fetch.FetchError:
    """Fetch once per test run; a failure is remembered rather than retried per test."""
    try:
        return fetch.ensure()
    except fetch.FetchError as e:
        return e


@functools.cache
def official() -> Draft4Validator:
    got = _fetched()
    if isinstance(got, fetch.FetchError):
        pytest.fail(f"the official OCDS schema could not be fetched: {got}", pytrace=False)
    schemas = {f.name: json.loads((got / f.name).read_text(encoding="utf-8"))
               for f in fetch.FILES}
    package = schemas[fetch.RELEASE_PACKAGE_SCHEMA.name]
    release = schemas[fetch.RELEASE_SCHEMA.name]
    assert package["id"] == fetch.RELEASE_PACKAGE_SCHEMA_ID
    assert release["id"] == fetch.RELEASE_SCHEMA_ID
    assert package["properties"]["releases"]["items"] == {"$ref": fetch.RELEASE_SCHEMA_ID}
    registry: Registry[Any] = Registry().with_resources(
        (s["id"], Resource.from_contents(s)) for s in (package, release))
    Draft4Validator.check_schema(package)
    Draft4Validator.check_schema(release)
    return Draft4Validator(package, registry=registry,
                           format_checker=Draft4Validator.FORMAT_CHECKER)


def _errors(validator: Any, package: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sorted(validator.iter_errors(package), key=lambda e: list(e.path))]


def official_errors(package: dict[str, Any]) -> list[str]:
    return _errors(official(), package)


def hand_written_errors(package: dict[str, Any]) -> list[str]:
    """test_exports' schema: the only check of the metrics extension fields."""
    return _errors(Draft7Validator(HAND_WRITTEN_PACKAGE,
                                   format_checker=Draft7Validator.FORMAT_CHECKER), package)


def four_statuses_package(*, closed: bool = False) -> dict[str, Any]:
    """One contract whose milestones are met, notMet, partiallyMet and scheduled, with
    a catalogued (£) measure, a record-only measure and a fractional quantity; with
    ``closed``, the same contract after its term and reporting window have ended."""
    s, _ = apply([
        registered(), committed("NT1", "10"), committed("L-VOL", "1000"),
        committed("D-LOCALPCT", "20"),  # record only: no £ proxy
        milestone("NT1-Q1", "NT1", "2025-03-31", "2"),            # 1 of 2 -> partiallyMet
        milestone("L-VOL-H1", "L-VOL", "2025-06-30", "500"),      # 600.5 -> met
        milestone("PCT-H1", "D-LOCALPCT", "2025-06-30", "5"),     # nothing -> notMet
        milestone("NT1-Q4", "NT1", "2025-12-31", "8"),            # not yet due
        submitted("E1", "NT1", "1", "2025-01-01", "2025-01-31", "2025-02-05"),
        verified("E1", "2025-02-10"),
        submitted("E2", "L-VOL", "600.5", "2025-01-01", "2025-05-31", "2025-06-05"),
        verified("E2", "2025-06-10"),
        submitted("E3", "L-VOL", "10", "2025-06-01", "2025-06-30", "2025-07-05"),  # claimed
        tick("2025-09-01"),
        *([tick("2026-03-01")] if closed else []),
    ])
    assert s.closed == closed
    return ocds_release_package(s, CATALOGUE, datetime(2026 if closed else 2025, 3 if closed
                                                       else 9, 2, tzinfo=UTC))


@pytest.fixture(scope="module")
def demo_packages() -> dict[str, dict[str, Any]]:
    """Every package the exporter makes for the demo data: the council test_exports
    folds (seed 8, 12 contracts) and the one ``svmon up --demo`` loads (seed 7, 50)."""
    cat = load_catalogue()
    out = {}
    for seed, contracts in ((8, 12), (7, 50)):
        states, _ = fold_all(generate(seed=seed, today=TODAY, contracts=contracts), cat)
        for s in states.values():
            out[f"seed {seed} {s.contract_id}"] = ocds_release_package(s, cat, PUBLISHED)
    return out


def test_every_demo_package_is_valid_against_the_official_schema(
        demo_packages: dict[str, dict[str, Any]]) -> None:
    assert len(demo_packages) == 12 + 50
    failures = {key: errors[:3] for key, package in demo_packages.items()
                if (errors := official_errors(package))}
    assert not failures, failures


def test_the_demo_covers_the_milestone_statuses(
        demo_packages: dict[str, dict[str, Any]]) -> None:
    statuses = {m["status"] for p in demo_packages.values()
                for m in p["releases"][0]["contracts"][0]["implementation"]["milestones"]}
    assert {"met", "scheduled", "partiallyMet"} <= statuses


def test_a_contract_with_every_milestone_status_is_valid() -> None:
    package = four_statuses_package()
    contract = package["releases"][0]["contracts"][0]
    assert {m["id"]: m["status"] for m in contract["implementation"]["milestones"]} == {
        "NT1-Q1": "partiallyMet", "L-VOL-H1": "met", "PCT-H1": "notMet",
        "NT1-Q4": "scheduled"}
    assert official_errors(package) == []
    # The metrics extension fields: hand-written checks (no extension schema available).
    assert {m["id"] for m in contract["agreedMetrics"]} == {"NT1", "L-VOL", "D-LOCALPCT"}
    assert {m["id"] for m in contract["implementation"]["metrics"]} == {
        "NT1", "L-VOL", "D-LOCALPCT"}
    assert hand_written_errors(package) == []


def test_a_closed_contract_is_valid() -> None:
    package = four_statuses_package(closed=True)
    assert package["releases"][0]["contracts"][0]["status"] == "terminated"
    assert official_errors(package) == []
    assert hand_written_errors(package) == []


@pytest.mark.parametrize(("break_it", "where", "says"), [
    (lambda p: p["releases"][0]["contracts"][0]["implementation"]["milestones"][0]
     .update(status="late"),
     "releases/0/contracts/0/implementation/milestones/0/status", "is not one of"),
    (lambda p: p["releases"][0].pop("ocid"), "releases/0", "'ocid' is a required property"),
    (lambda p: p["releases"][0]["tag"].append("performance"), "releases/0/tag/2",
     "is not one of"),
    (lambda p: p["releases"][0]["contracts"][0]["period"].update(endDate="31/12/2025"),
     "releases/0/contracts/0/period/endDate", "is not a 'date-time'"),
    (lambda p: p.update(version="1.1.5"), "version", "does not match"),
], ids=["milestone-status-not-in-codelist", "release-without-ocid", "tag-not-in-codelist",
        "date-not-date-time", "version-not-major-minor"])
def test_the_official_schema_catches_real_errors(break_it: Any, where: str,
                                                 says: str) -> None:
    """The official schema allows extra properties, so show it is really applied (down
    to the release schema through the $ref) and rejects what OCDS forbids."""
    package = four_statuses_package()
    break_it(package)
    errors = official_errors(package)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{where}: ") and says in errors[0], errors


# ------------------------------------------------------------------ the fetch script


def test_ensure_pins_both_files_and_does_nothing_when_they_are_present(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _fetched()
    if isinstance(got, fetch.FetchError):
        pytest.fail(f"the official OCDS schema could not be fetched: {got}", pytrace=False)
    for f in fetch.FILES:
        (tmp_path / f.name).write_bytes((got / f.name).read_bytes())

    def no_download(requirement: str, into: Path) -> Path:
        raise AssertionError(f"downloaded {requirement} although the files are present")

    monkeypatch.setattr(fetch, "_download", no_download)
    assert fetch.ensure(tmp_path) == tmp_path


def _fake_sdist(into: Path, member: str, data: bytes, *, symlink: bool = False) -> Path:
    sdist = into / "fake-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if symlink:
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


def test_ensure_rejects_a_file_that_does_not_match_its_pinned_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def tampered(requirement: str, into: Path) -> Path:
        f = next(f for f in fetch.FILES if f.requirement == requirement)
        return _fake_sdist(into, f.member, b'{"id": "not the official schema"}')

    monkeypatch.setattr(fetch, "_download", tampered)
    dest = tmp_path / "schemas"
    with pytest.raises(fetch.FetchError, match=r"has sha256 \w+, expected"):
        fetch.ensure(dest)
    assert not any(dest.iterdir())
    assert fetch.main([str(dest)]) == 1


def test_ensure_reads_only_a_regular_file_at_the_named_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def linked(requirement: str, into: Path) -> Path:
        f = next(f for f in fetch.FILES if f.requirement == requirement)
        return _fake_sdist(into, f.member, b"", symlink=True)

    monkeypatch.setattr(fetch, "_download", linked)
    with pytest.raises(fetch.FetchError, match="is not a regular file"):
        fetch.ensure(tmp_path)
    monkeypatch.setattr(fetch, "_download",
                        lambda requirement, into: _fake_sdist(into, "../escape.json", b"{}"))
    with pytest.raises(fetch.FetchError, match="has no"):
        fetch.ensure(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape.json").exists()
