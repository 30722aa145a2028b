"""The API's OpenAPI 3.1 document, built from the wire schema's field table.

Request bodies come from ``svmon.schemas.data_json_schema``, tightened here to the
readers' exact rules where JSON Schema can state them (years 1900-2200, quantities
above 0, names that are not blank, no control characters in names), and the server
validates every request against this very document before anything else
(``svmon.api.http``): what the document refuses is refused (422), and what it accepts
is refused only by a rule it cannot state (a period inside the contract's term, the
unit of the measure, evidence not yet decided, ...), answered 409. Response schemas
are in ``svmon.api.responses``.
"""

from __future__ import annotations

from typing import Any

from svmon import __version__
from svmon.api.csvio import COLUMNS, MODES
from svmon.api.reads import ALERT_STATUSES
from svmon.api.responses import components
from svmon.schemas import ID_SCHEMA, MAX_TEXT_LENGTH, data_json_schema

ERROR = {"$ref": "#/components/schemas/Error"}
# contract, evidence and event ids, in the path, the query and bodies: the decoder's one
# id grammar (svmon.schemas.ID_PATTERN), so the document cannot say otherwise
IDENT = dict(ID_SCHEMA)
ERRORS = {
    "400": "Malformed body (not JSON, not UTF-8)",
    "401": "No token, an unknown token or a revoked token",
    "403": "The token's party may not do this on this contract",
    "404": "No such contract, evidence or event",
    "409": "Valid against this document, but refused by the contract's rules or state: "
           "an id already used for something else, a period outside the term, a unit "
           "other than the measure's, evidence already decided, ...; the body names the "
           "field, what was expected and what came",
    "413": "Body too large",
    "415": "Wrong content type",
    "422": "The body or a parameter breaks this document's schema: the body names the "
           "field, what was expected and what came",
    "503": "The database is unavailable: the request was not completed; send it again "
           "(the same ids are safe) after the Retry-After header's seconds",
}

# ---------------------------------------------------------------- exact fields
# The readers' rules JSON Schema can state, put on data_json_schema's output (matched by
# what each reader's schema says, so a new field of an existing kind is covered).
_YEAR = "(19[0-9]{2}|2[01][0-9]{2}|2200)"
DATE_IN = {"type": "string", "pattern": f"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
           "description": "a date as YYYY-MM-DD in the years 1900-2200"}
_MANTISSA = r"([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)"
_EXPONENT = r"([eE][+-]?[0-9]+)?"
POSITIVE_IN = {"anyOf": [
    {"type": "string", "pattern": rf"^\+?{_MANTISSA}{_EXPONENT}$"},
    {"type": "integer", "minimum": 1, "maximum": 10 ** 12},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 10 ** 12}],
    "description": "a decimal number greater than 0 (a string keeps it exact; at most "
                   "1,000,000,000,000 and 6 decimal places)"}
NON_NEGATIVE_IN = {"anyOf": [
    {"type": "string", "pattern": rf"^\+?[0-9]+(\.[0-9]+)?{_EXPONENT}$"},
    {"type": "integer", "minimum": 0, "maximum": 10 ** 12},
    {"type": "number", "minimum": 0, "maximum": 10 ** 12}],
    "description": "a decimal number, 0 or more (a string keeps it exact; at most "
                   "1,000,000,000,000 and 6 decimal places)"}
# (lone surrogates are not listed: a generator cannot send them as UTF-8, and the wire
# schema refuses the JSON escapes of one as a rule of its own, 409)
_NO_CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME_IN = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH,
           "pattern": r"^[^\x00]*[^\s\x00][^\x00]*$",
           "description": f"a text of at most {MAX_TEXT_LENGTH} characters, not blank"}
TEXT_IN = {"type": "string", "maxLength": MAX_TEXT_LENGTH,
           "pattern": r"^[^\x00]*$",
           "description": f"a text of at most {MAX_TEXT_LENGTH} characters without NUL"}
PARTY_IN = {"type": "string", "minLength": 1, "maxLength": 128,
            "pattern": rf"^[^\s{_NO_CONTROL}]+$",
            "description": "1-128 characters without spaces or control characters"}
UNIT_IN = {"type": "string", "maxLength": 60, "pattern": rf"^[^{_NO_CONTROL}]*$",
           "description": "the measure's unit as the catalogue gives it, e.g. 'hours'"}


def _exact(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema["properties"]
    for name, p in list(props.items()):
        d = p.get("description", "")
        if p.get("format") == "date":
            props[name] = dict(DATE_IN)
        elif d == "a decimal number greater than 0":
            props[name] = dict(POSITIVE_IN)
        elif d == "a decimal number, 0 or more":
            props[name] = dict(NON_NEGATIVE_IN)
        elif p.get("type") == "string" and p.get("pattern") in ("^\\S+$", "^\\S*$"):
            props[name] = {**PARTY_IN, "minLength": 1 if p["pattern"] == "^\\S+$" else 0}
        elif p.get("type") == "string" and p.get("maxLength") == 60:
            props[name] = dict(UNIT_IN)
        elif p.get("type") == "string" and p.get("maxLength") == MAX_TEXT_LENGTH:
            props[name] = dict(NAME_IN if p.get("minLength") == 1 else TEXT_IN)
        elif p.get("type") == "array":  # attachments
            item = p["items"]
            item["properties"] = {"name": dict(NAME_IN), "sha256": item["properties"]["sha256"],
                                  "uri": dict(TEXT_IN)}
        elif p.get("type") == "object" and "properties" in p:  # a contract's policy
            p["properties"] = {k: dict(NON_NEGATIVE_IN) for k in p["properties"]}
    return schema


def _data(type_name: str, **kw: Any) -> dict[str, Any]:
    return _exact(data_json_schema(type_name, **kw))


def _errors(*codes: str) -> dict[str, Any]:
    return {c: {"description": ERRORS[c],
                "content": {"application/json": {"schema": ERROR}}} for c in (*codes, "503")}


def _json_body(schema: dict[str, Any], required: bool = True,
               example: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": required, "content": {"application/json": media}}


EVIDENCE_EXAMPLE = {"evidence_id": "INV-2025-03-NT1", "measure": "NT1", "quantity": "2",
                    "unit": "no. people FTE", "period_start": "2025-03-01",
                    "period_end": "2025-03-31",
                    "description": "Two local residents hired as site operatives"}
EXAMPLES = {
    "ContractRegistered": {
        "contract_id": "C-2025-014", "title": "Highways maintenance 2025-2027",
        "buyer": "Borsetshire County Council", "buyer_department": "Highways",
        "supplier_id": "S01", "supplier_name": "Northgate Civils Ltd",
        "start": "2025-01-01", "end": "2027-12-31", "value_gbp": "2500000",
        "catalogue_edition": "DEMO-2025", "manager": "mgr-aoife", "deputy": "mgr-ben",
        "supplier_contact": "sv-lead-northgate"},
    "CommitmentMade": {"measure": "L-VOL", "target": "400"},
    "MilestoneScheduled": {"milestone_id": "L-VOL-2026", "measure": "L-VOL",
                           "due": "2026-12-31", "cumulative_target": "200"},
    "verify": {"note": "Timesheets checked against the volunteering log"},
    "reject": {"reason": "The hours were delivered on another contract"},
    "retract": {"reason": "Sent twice"},
}


def _with_event_id(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["properties"] = {**schema["properties"], "event_id": {
        **IDENT, "description": "Your id for this event; a retry with the same id and "
        "body is counted once. Default: derived from the body."}}
    return out


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": dict(IDENT)}


CID = _path("contract_id", "The contract's id")
EID = _path("evidence_id", "The evidence's id (the supplier's reference)")
POST_CODES = ("400", "401", "403", "404", "409", "413", "415", "422")
READ_CODES = ("401", "403", "404", "422")
MAX_BEFORE = 2 ** 62


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _accepted(schema: str = "Receipt") -> dict[str, Any]:
    return {"202": {"description": "Stored durably; the stream will fold it",
                    "content": {"application/json": {"schema": _ref(schema)}}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description,
                    "content": {"application/json": {"schema": schema}}}}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def request_schemas() -> dict[str, Any]:
    """Per operation id, the JSON Schema of its body (the document's own)."""
    evidence = _data("EvidenceSubmitted", required=("unit",))
    evidence["properties"]["unit"]["description"] = \
        "The measure's unit as the catalogue gives it (e.g. 'no. weeks'); required"
    item = _with_event_id(evidence)
    item["properties"] = {"contract_id": IDENT, **item["properties"]}
    item["required"] = ["contract_id", *evidence["required"]]
    contract = _data("ContractRegistered")
    contract["properties"] = {"contract_id": IDENT, **contract["properties"]}
    contract["required"] = ["contract_id", *contract["required"]]
    return {
        "registerContract": _with_event_id(contract),
        "commit": _with_event_id(_data("CommitmentMade")),
        "scheduleMilestone": _with_event_id(_data("MilestoneScheduled")),
        "submitEvidence": _with_event_id(evidence),
        "evidenceItem": item,
        "submitEvidenceBatch": {
            "type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 500,
                                     "items": item}}},
        **{f"{a}Evidence": _with_event_id(_data(t, exclude=("evidence_id",)))
           for a, t in (("verify", "EvidenceVerified"), ("reject", "EvidenceRejected"),
                        ("retract", "EvidenceRetracted"))},
    }


CSV_BODY = {"type": "string", "minLength": 1,
            "description": f"A header row with some of the columns {', '.join(COLUMNS)} "
                           "(each once, in any order), then one evidence item per row; "
                           "each cell as the evidence item's field of the same name"}
# the parameters the server reads; http.py checks each against the same limits
SUBMISSION_STATUSES = ["pending", "accepted", "refused"]


def document() -> dict[str, Any]:
    body = request_schemas()
    listing = _errors(*READ_CODES)
    paths: dict[str, Any] = {
        "/v1/health": {"get": {
            "operationId": "health", "summary": "Liveness (no token needed)", "security": [],
            "responses": _ok(_ref("Health"))}},
        "/v1/me": {"get": {
            "operationId": "me", "summary": "Who this token belongs to",
            "responses": {**_ok(_ref("Principal")), **_errors("401")}}},
        "/v1/contracts": {
            "get": {"operationId": "listContracts",
                    "summary": "Contracts the token's party supplies or manages",
                    "responses": {**_ok(_list("ContractSummary")), **_errors("401")}},
            "post": {"operationId": "registerContract",
                     "summary": "Register (or amend) a contract you manage",
                     "requestBody": _json_body(body["registerContract"],
                                               example=EXAMPLES["ContractRegistered"]),
                     "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}": {"get": {
            "operationId": "getContract", "parameters": [CID],
            "summary": "Terms, claimed and verified totals (units and £), evidence",
            "responses": {**_ok(_ref("Contract")), **_errors("401", "403", "404")}}},
        "/v1/contracts/{contract_id}/commitments": {"post": {
            "operationId": "commit", "parameters": [CID],
            "summary": "Commit the supplier to a target for a measure (managers)",
            "requestBody": _json_body(body["commit"], example=EXAMPLES["CommitmentMade"]),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}/milestones": {
            "get": {"operationId": "listMilestones", "parameters": [CID],
                    "summary": "The contract's milestones with their status and figures "
                               "(delivery time: evidence periods up to each due date, by "
                               "what is known now)",
                    "responses": {**_ok(_ref("Milestones")), **_errors("401", "403", "404")}},
            "post": {"operationId": "scheduleMilestone", "parameters": [CID],
                     "summary": "A dated cumulative target for a measure (managers)",
                     "requestBody": _json_body(body["scheduleMilestone"],
                                               example=EXAMPLES["MilestoneScheduled"]),
                     "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}/alerts": {"get": {
            "operationId": "listAlerts",
            "parameters": [CID, _query("status", {"type": "string",
                                                  "enum": list(ALERT_STATUSES)}),
                           _query("limit", LIMIT)],
            "summary": "The contract's alerts, newest first (suppliers: without the "
                       "buyer's handling of them)",
            "responses": {**_ok({"type": "array", "items": {"anyOf": [
                _ref("Alert"), _ref("SupplierAlert")]}}), **listing}}},
        "/v1/contracts/{contract_id}/evidence": {"post": {
            "operationId": "submitEvidence", "parameters": [CID],
            "summary": "Report delivery against a measure (suppliers)",
            "requestBody": _json_body(body["submitEvidence"], example=EVIDENCE_EXAMPLE),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/evidence": {"post": {
            "operationId": "submitEvidenceBatch",
            "summary": "Up to 500 evidence items, on any of your contracts; all or none",
            "requestBody": _json_body(
                body["submitEvidenceBatch"],
                example={"items": [{"contract_id": "C-2025-014", **EVIDENCE_EXAMPLE}]}),
            "responses": {**_accepted("Receipts"), **_errors(*POST_CODES)}}},
        "/v1/evidence/csv": {"post": {
            "operationId": "uploadEvidenceCsv",
            "summary": "Evidence as CSV; mode=all stores all rows or none, mode=valid "
                       "stores the valid rows and reports the others",
            "parameters": [_query("mode", {"type": "string", "enum": list(MODES)})],
            "requestBody": {"required": True,
                            "content": {"text/csv": {"schema": CSV_BODY}}},
            "responses": {**_accepted("CsvResult"), **_errors(*POST_CODES)}}},
        "/v1/submissions": {"get": {
            "operationId": "listSubmissions",
            "summary": "Events received on your contracts, newest first, with their status "
                       "and the evidence's review",
            "parameters": [
                _query("contract_id", IDENT),
                _query("status", {"type": "string", "enum": SUBMISSION_STATUSES}),
                _query("limit", LIMIT),
                _query("before", {"type": "integer", "minimum": 1,
                                  "maximum": MAX_BEFORE})],
            "responses": {**_ok(_list("Submission")), **listing}}},
        "/v1/rejections": {"get": {
            "operationId": "listRejections",
            "summary": "Events the stream refused on your contracts, from any channel "
                       "(including the Kafka client)",
            "parameters": [_query("contract_id", IDENT), _query("limit", LIMIT)],
            "responses": {**_ok(_list("Rejection")), **listing}}},
        "/v1/contracts/{contract_id}/events/{event_id}": {"get": {
            "operationId": "getReceipt",
            "parameters": [CID, _path("event_id", "The event's id")],
            "summary": "The receipt of an event you sent, with its current status",
            "responses": {**_ok(_ref("Receipt")), **_errors("401", "403", "404")}}},
    }
    for action in ("verify", "reject", "retract"):
        who = "suppliers" if action == "retract" else "managers"
        paths[f"/v1/contracts/{{contract_id}}/evidence/{{evidence_id}}/{action}"] = {"post": {
            "operationId": f"{action}Evidence", "parameters": [CID, EID],
            "summary": f"{action.capitalize()} evidence ({who})",
            # a rejection needs its reason; verify and retract may come without a body
            "requestBody": _json_body(body[f"{action}Evidence"], required=action == "reject",
                                      example=EXAMPLES[action]),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Social value contract monitor: ingestion API",
                 "version": __version__,
                 "description": "Suppliers report social value delivered; contract managers "
                                "review it. A 202 means the event is stored durably."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components(),
        },
    }
