"""OCDS release packages and performance-notice data, from a folded demo log.

The package is checked against a JSON Schema written here from the OCDS 1.1 field rules
for every field the export emits: required fields, types, and the codelists (releaseTag,
initiationType, partyRole, milestoneStatus, milestoneType, contractStatus, currency),
plus the metrics extension's Metric and Observation objects. test_ocds_official.py also
validates the packages against the official OCDS 1.1.5 schemas; the metrics extension's
own schema is not available, so the checks of its fields here are the only ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft7Validator

from svmon.audit.exports import ocds_release_package, performance_notice
from svmon.catalogue_files import load_catalogue
from svmon.core.fold import fold_all
from svmon.core.rules import RatingThresholds, rating_for
from svmon.demo import generate

DATE_TIME = {"type": "string", "format": "date-time"}
VALUE = {"type": "object", "properties": {"amount": {"type": "number"},
                                          "currency": {"type": "string",
                                                       "pattern": "^[A-Z]{3}$"}}}
PERIOD = {"type": "object", "properties": {"startDate": DATE_TIME, "endDate": DATE_TIME}}
ORG_REF = {"type": "object", "required": ["id", "name"],
           "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
OBSERVATION = {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "string"}, "period": PERIOD, "value": VALUE,
    "measure": {"type": ["number", "string"]}, "notes": {"type": "string"},
    "unit": {"type": "object", "properties": {k: {"type": "string"}
                                              for k in ("name", "scheme", "id", "uri")}}}}
METRIC = {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
    "observations": {"type": "array", "items": OBSERVATION}}}
MILESTONE = {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
    "dueDate": DATE_TIME,
    "type": {"enum": ["preProcurement", "engagement", "assessment", "approval", "delivery",
                      "reporting", "financing"]},
    "status": {"enum": ["scheduled", "met", "notMet", "partiallyMet"]}}}
RELEASE = {"type": "object",
           "required": ["ocid", "id", "date", "tag", "initiationType"],
           "properties": {
               "ocid": {"type": "string", "pattern": "^ocds-[a-z0-9]+-"},
               "id": {"type": "string"}, "date": DATE_TIME, "language": {"type": "string"},
               "tag": {"type": "array", "minItems": 1, "items": {"enum": [
                   "planning", "planningUpdate", "tender", "tenderAmendment", "tenderUpdate",
                   "tenderCancellation", "award", "awardUpdate", "awardCancellation",
                   "contract", "contractUpdate", "contractAmendment", "implementation",
                   "implementationUpdate", "contractTermination", "compiled"]}},
               "initiationType": {"enum": ["tender"]},
               "parties": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                      "properties": {"roles": {
                                                          "type": "array", "items": {
                                                              "enum": ["buyer", "supplier",
                                                                       "procuringEntity",
                                                                       "payer", "payee"]}}}}},
               "buyer": ORG_REF,
               "awards": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                     "properties": {"value": VALUE,
                                                                    "suppliers": {
                                                                        "type": "array",
                                                                        "items": ORG_REF}}}},
               "contracts": {"type": "array", "items": {
                   "type": "object", "required": ["id", "awardID"], "properties": {
                       "id": {"type": "string"}, "awardID": {"type": "string"},
                       "status": {"enum": ["pending", "active", "cancelled", "terminated"]},
                       "period": PERIOD, "value": VALUE,
                       "agreedMetrics": {"type": "array", "items": METRIC},
                       "implementation": {"type": "object", "properties": {
                           "milestones": {"type": "array", "items": MILESTONE},
                           "metrics": {"type": "array", "items": METRIC}}}}}}}}
PACKAGE = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
           "required": ["uri", "publishedDate", "releases", "publisher", "version"],
           "properties": {"uri": {"type": "string"}, "version": {"const": "1.1"},
                          "publishedDate": DATE_TIME,
                          "publisher": {"type": "object", "required": ["name"]},
                          "extensions": {"type": "array", "items": {"type": "string"}},
                          "releases": {"type": "array", "minItems": 1, "items": RELEASE}}}

TODAY = date(2026, 11, 1)


@pytest.fixture(scope="module")
def folded() -> tuple[dict[str, Any], Any]:
    cat = load_catalogue()
    states, _ = fold_all(generate(seed=8, today=TODAY, contracts=12), cat)
    return states, cat


def test_every_package_is_valid_ocds(folded: Any) -> None:
    states, cat = folded
    validator = Draft7Validator(PACKAGE, format_checker=Draft7Validator.FORMAT_CHECKER)
    published = datetime(2026, 11, 2, tzinfo=UTC)
    for s in states.values():
        package = ocds_release_package(s, cat, published)
        errors = sorted(validator.iter_errors(package), key=lambda e: list(e.path))
        assert not errors, f"{s.contract_id}: {errors[0].message} at {list(errors[0].path)}"


def test_milestone_status_and_metrics_follow_the_state(folded: Any) -> None:
    states, cat = folded
    statuses: set[str] = set()
    for s in states.values():
        c = ocds_release_package(s, cat, datetime(2026, 11, 2, tzinfo=UTC))["releases"][0][
            "contracts"][0]
        by_id = {m["id"]: m for m in c["implementation"]["milestones"]}
        for m in s.milestones.values():
            status = by_id[m.milestone_id]["status"]
            statuses.add(status)
            assert status == {"met": "met", "met late": "met", "scheduled": "scheduled",
                              "partially met": "partiallyMet", "not met": "notMet"}[m.status]
            if m.status == "partially met":
                assert 0 < m.verified < m.cumulative_target
            if m.status == "not met":
                assert m.verified == 0
            assert ("dateMet" in by_id[m.milestone_id]) == (m.status in ("met", "met late"))
        for metric in c["implementation"]["metrics"]:
            verified = next(o for o in metric["observations"] if o["id"].startswith("verified"))
            assert Decimal(str(verified["measure"])) == s.totals_for(metric["id"]).verified
        assert {m["id"] for m in c["agreedMetrics"]} == set(s.commitments)
    assert {"met", "scheduled", "partiallyMet"} <= statuses


@pytest.mark.parametrize(("delivered", "expected", "rating"), [
    ("100", "100", "good"), ("120", "100", "good"), ("90", "100", "approaching target"),
    ("89.99", "100", "requires improvement"), ("70", "100", "requires improvement"),
    ("69.9", "100", "inadequate"), ("0", "100", "inadequate"), ("5", "0", "other"),
])
def test_rating_for(delivered: str, expected: str, rating: str) -> None:
    assert rating_for(Decimal(delivered), Decimal(expected)) == rating


def test_rating_thresholds_are_configurable() -> None:
    strict = RatingThresholds(good=Decimal("1.1"), approaching=Decimal("1"),
                              requires_improvement=Decimal("0.9"))
    assert rating_for(Decimal("100"), Decimal("100"), strict) == "approaching target"


def test_performance_notice_rates_every_commitment(folded: Any) -> None:
    states, cat = folded
    s = states["C-001"]
    notice = performance_notice(s, cat, TODAY)
    assert [k["kpi"] for k in notice["kpis"]] == sorted(s.commitments)
    for k in notice["kpis"]:
        assert k["rating"] in ("good", "approaching target", "requires improvement",
                               "inadequate", "other")
        assert k["rating"] == rating_for(Decimal(k["verified"]),
                                         Decimal(k["expected_by_now"]))
