"""Schema-driven fuzzing of the HTTP API with schemathesis against its served OpenAPI
document: positive and negative cases for every operation, as a supplier and as a
manager, on a real contract and on generated ids, with every schemathesis check on.

What that proves: the document and the server agree. A request valid against the
document is never refused as invalid (positive data acceptance: 2xx, or 401/403/404/
409), one that breaks it is refused (negative data rejection), every status, content
type and response body is the one the document states (response schema conformance),
an operation that needs a token refuses a request without one (ignored auth), and
nothing makes a 5xx. Every failure is collected, so a run reports all of them.

CI runs a few hundred requests on a fixed seed (it must not flicker). The long run
(``scripts/fuzz-api.sh``, or ``SVMON_FUZZ_RANDOM=1 SVMON_FUZZ_EXAMPLES=60``) explores
anew with random generation, at least 2,000 requests per role.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from svmon.api.http import OPENAPI_PATH
from tests.integration.conftest import Api

pytestmark = pytest.mark.slow
# per operation, mode and party; 18 operations x 2 modes x 2 parties x 10 = 720 cases
EXAMPLES = int(os.environ.get("SVMON_FUZZ_EXAMPLES", "10"))
# the same cases on every run (CI must not flicker); SVMON_FUZZ_RANDOM=1 explores anew
DERANDOMIZE = not os.environ.get("SVMON_FUZZ_RANDOM")
load_all_checks()
CHECKS_ON = CHECKS.get_all()  # every check schemathesis has, none left out
ROLES = ("supplier-a", "manager-a")
# operations to fuzz, by label ("POST /v1/evidence"), to chase a failure; default all
ONLY = {s.strip() for s in os.environ.get("SVMON_FUZZ_ONLY", "").split(",") if s.strip()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_server_and_its_document_agree_under_every_check(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi(OPENAPI_PATH, api.client.app)
    seen: Counter[int] = Counter()
    per_role: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    no_negative: set[str] = set()
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 18
    assert {c.__name__ for c in CHECKS_ON} >= {
        "not_a_server_error", "status_code_conformance", "content_type_conformance",
        "response_headers_conformance", "response_schema_conformance",
        "negative_data_rejection", "positive_data_acceptance", "ignored_auth"}

    def fuzz(op: Any, mode: GenerationMode, who: str) -> None:
        fixed = {"contract_id": "C-A"} if "{contract_id}" in op.path else None
        cases = st.one_of(
            op.as_strategy(generation_mode=mode, headers=api.headers(who)),
            op.as_strategy(generation_mode=mode, headers=api.headers(who),
                           path_parameters=fixed))

        @given(case=cases)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=DERANDOMIZE, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            try:
                response = case.call_and_validate(checks=CHECKS_ON)
            except (Exception, BaseExceptionGroup) as err:  # a failed check, or no answer
                first = " | ".join(line for line in str(err).strip().splitlines()[:14]
                                   if line.strip() and "curl" not in line)
                failures[f"{op.label} {mode.value} {who}: {type(err).__name__}: {first}"] += 1
                return
            seen[response.status_code] += 1
            per_role[who] += 1
            if response.status_code >= 400:
                body = response.json()
                if not (isinstance(body.get("message"), str) and body["message"]):
                    failures[f"{op.label}: a refusal without a message"] += 1
        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (e.g. GET /v1/health)
            assert mode is GenerationMode.NEGATIVE, op.label
            no_negative.add(op.label)

    for op in operations:
        if ONLY and op.label not in ONLY:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for who in ROLES:
                fuzz(op, mode, who)

    total = sum(seen.values())
    print(f"\nfuzzing: {total} requests ({dict(per_role)}), by status: "
          f"{dict(sorted(seen.items()))}; no invalid input possible for "
          f"{sorted(no_negative)}; failures: {sum(failures.values())}")
    assert not failures, "\n".join(f"{n} x {f}" for f, n in failures.most_common())
    assert ONLY or min(per_role[r] for r in ROLES) >= 18 * 2 * EXAMPLES // 2
    assert not any(code >= 500 for code in seen)
    # refusals of every kind were reached, and acceptances too
    if not ONLY:
        assert seen[422] > 0 and seen[409] > 0 and seen[403] + seen[404] > 0
        assert seen[200] > 0 and seen[400] > 0


def test_other_methods_are_405_with_the_paths_methods_in_allow(api: Api) -> None:
    """RFC 9110: a 405 names the methods the resource has; the document's, exactly."""
    doc = api.client.get(OPENAPI_PATH).json()
    for path, ops in doc["paths"].items():
        url = path.replace("{contract_id}", "C-A").replace("{evidence_id}", "E1") \
            .replace("{event_id}", "C-A:E1")
        documented = {m.upper() for m in ops}
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
                             - documented):
            r = api.client.request(method, url, headers=api.headers("manager-a"))
            assert r.status_code == 405, (method, url, r.text)
            allow = {m.strip() for m in r.headers["allow"].split(",")}
            assert allow - {"HEAD"} == documented, (method, url, allow)
            assert r.json()["message"]


def test_any_valid_evidence_is_accepted_and_counted_exactly(api: Api) -> None:
    """The other side of fuzzing: generated valid evidence (any id, quantity, period
    inside the term and over) is accepted, and the totals are its exact sums."""
    from datetime import UTC, date, datetime, timedelta
    from decimal import Decimal

    today = datetime.now(UTC).date()
    from svmon.schemas import ID_RE

    # anything the id grammar admits after "F-" (svmon.schemas.ID_PATTERN)
    ids = st.from_regex(r"[A-Za-z0-9._:+-]{1,40}", fullmatch=True).filter(
        lambda s: ID_RE.fullmatch(f"F-{s}") is not None)
    quantities = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e9"),
                             places=6, allow_nan=False, allow_infinity=False)
    periods = st.dates(date(2025, 1, 1), today - timedelta(days=1)).flatmap(
        lambda start: st.tuples(st.just(start), st.dates(start, today)))
    measures = st.sampled_from([("NT1", "no. people FTE"), ("L-VOL", "HOURS"),
                                ("D-SME", "£")])
    expected: dict[str, Decimal] = {}
    used: set[str] = set()

    @given(items=st.lists(st.tuples(ids, quantities, periods, measures), min_size=1,
                          max_size=20, unique_by=lambda x: x[0]))
    @settings(max_examples=60, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    def run(items: list[Any]) -> None:
        body = {"items": [
            {"contract_id": "C-A", "evidence_id": f"F-{i}", "measure": m, "unit": unit,
             "quantity": str(q), "period_start": a.isoformat(), "period_end": b.isoformat()}
            for i, q, (a, b), (m, unit) in items if f"F-{i}" not in used]}
        if not body["items"]:
            return
        r = api.post("supplier-a", "/v1/evidence", body)
        assert r.status_code == 202, r.text
        for item in body["items"]:
            used.add(item["evidence_id"])
            expected[item["measure"]] = expected.get(item["measure"], Decimal(0)) \
                + Decimal(item["quantity"])

    run()
    api.settle()
    totals = api.totals("C-A")
    assert totals["NT1"][0] == Decimal(2) + expected.get("NT1", 0)  # E1 was there before
    for m in ("L-VOL", "D-SME"):
        assert totals.get(m, (Decimal(0),))[0] == expected.get(m, 0)
    assert len(used) > 100 and api.store.counts() == {"accepted": len(used)}
