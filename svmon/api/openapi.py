"""The API's OpenAPI 3.1 document, built from the wire schema's field table.

Request bodies come from ``svmon.schemas.data_json_schema``, so the document and the
decoder cannot drift apart: a field added to an event appears here by itself.
"""

from __future__ import annotations

from typing import Any

from svmon import __version__
from svmon.api.csvio import COLUMNS, MODES
from svmon.schemas import ID_SCHEMA, data_json_schema

ERROR = {"$ref": "#/components/schemas/Error"}
# contract, evidence and event ids, in the path, the query and bodies: the decoder's one
# id grammar (svmon.schemas.ID_PATTERN), so the document cannot say otherwise
IDENT = dict(ID_SCHEMA)
ERRORS = {
    "400": "Malformed body (not JSON, not UTF-8)",
    "401": "No token, an unknown token or a revoked token",
    "403": "The token's party may not do this on this contract",
    "404": "No such contract, evidence or event",
    "409": "An id already used for something else",
    "413": "Body too large",
    "415": "Wrong content type",
    "422": "Well-formed but refused: each error names the field, what was expected and "
           "what came",
    "503": "The database is unavailable: the request was not completed; send it again "
           "(the same ids are safe) after the Retry-After header's seconds",
}


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


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}


def _accepted(schema: str = "Receipt") -> dict[str, Any]:
    return {"202": {"description": "Stored durably; the stream will fold it",
                    "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description,
                    "content": {"application/json": {"schema": schema}}}}


def document() -> dict[str, Any]:
    listing = {**_ok({"type": "array", "items": {"type": "object"}}),
               **_errors("401", "403", "404", "422")}
    evidence = data_json_schema("EvidenceSubmitted", required=("unit",))
    evidence["properties"]["unit"]["description"] = \
        "The measure's unit as the catalogue gives it (e.g. 'no. weeks'); required"
    evidence_item = _with_event_id(evidence)
    evidence_item["properties"] = {"contract_id": IDENT, **evidence_item["properties"]}
    evidence_item["required"] = ["contract_id", *evidence["required"]]
    contract = data_json_schema("ContractRegistered")
    contract["properties"] = {"contract_id": IDENT, **contract["properties"]}
    contract["required"] = ["contract_id", *contract["required"]]
    decision = {"verify": _with_event_id(data_json_schema("EvidenceVerified",
                                                          exclude=("evidence_id",))),
                "reject": _with_event_id(data_json_schema("EvidenceRejected",
                                                          exclude=("evidence_id",))),
                "retract": _with_event_id(data_json_schema("EvidenceRetracted",
                                                           exclude=("evidence_id",)))}
    paths: dict[str, Any] = {
        "/v1/health": {"get": {
            "operationId": "health", "summary": "Liveness (no token needed)", "security": [],
            "responses": _ok({"type": "object"})}},
        "/v1/me": {"get": {
            "operationId": "me", "summary": "Who this token belongs to",
            "responses": {**_ok({"$ref": "#/components/schemas/Principal"}),
                          **_errors("401")}}},
        "/v1/contracts": {
            "get": {"operationId": "listContracts",
                    "summary": "Contracts the token's party supplies or manages",
                    "responses": {**_ok({"type": "array", "items": {"type": "object"}}),
                                  **_errors("401")}},
            "post": {"operationId": "registerContract",
                     "summary": "Register (or amend) a contract you manage",
                     "requestBody": _json_body(_with_event_id(contract),
                                               example=EXAMPLES["ContractRegistered"]),
                     "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}": {"get": {
            "operationId": "getContract", "parameters": [CID],
            "summary": "Terms, claimed and verified totals (units and £), evidence",
            "responses": {**_ok({"type": "object"}), **_errors("401", "403", "404")}}},
        "/v1/contracts/{contract_id}/commitments": {"post": {
            "operationId": "commit", "parameters": [CID],
            "summary": "Commit the supplier to a target for a measure (managers)",
            "requestBody": _json_body(_with_event_id(data_json_schema("CommitmentMade")),
                                      example=EXAMPLES["CommitmentMade"]),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}/milestones": {"post": {
            "operationId": "scheduleMilestone", "parameters": [CID],
            "summary": "A dated cumulative target for a measure (managers)",
            "requestBody": _json_body(_with_event_id(data_json_schema(
                "MilestoneScheduled")), example=EXAMPLES["MilestoneScheduled"]),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/contracts/{contract_id}/evidence": {"post": {
            "operationId": "submitEvidence", "parameters": [CID],
            "summary": "Report delivery against a measure (suppliers)",
            "requestBody": _json_body(_with_event_id(evidence), example=EVIDENCE_EXAMPLE),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}},
        "/v1/evidence": {"post": {
            "operationId": "submitEvidenceBatch",
            "summary": "Up to 500 evidence items, on any of your contracts; all or none",
            "requestBody": _json_body({
                "type": "object", "required": ["items"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 500,
                                         "items": evidence_item}}},
                example={"items": [{"contract_id": "C-2025-014", **EVIDENCE_EXAMPLE}]}),
            "responses": {**_accepted("Receipts"), **_errors(*POST_CODES)}}},
        "/v1/evidence/csv": {"post": {
            "operationId": "uploadEvidenceCsv",
            "summary": "Evidence as CSV; mode=all stores all rows or none, mode=valid "
                       "stores the valid rows and reports the others",
            "parameters": [{"name": "mode", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": list(MODES)}}],
            "requestBody": {"required": True, "content": {"text/csv": {"schema": {
                "type": "string", "description": f"Columns: {', '.join(COLUMNS)}"}}}},
            "responses": {**_accepted("CsvResult"), **_errors(*POST_CODES)}}},
        "/v1/submissions": {"get": {
            "operationId": "listSubmissions",
            "summary": "Events received on your contracts, newest first, with their status "
                       "and the evidence's review",
            "parameters": [
                _query("contract_id", IDENT),
                _query("status", {"type": "string", "enum": ["pending", "accepted", "refused"]}),
                _query("limit", LIMIT),
                _query("before", {"type": "integer", "minimum": 1})],
            "responses": listing}},
        "/v1/rejections": {"get": {
            "operationId": "listRejections",
            "summary": "Events the stream refused on your contracts, from any channel "
                       "(including the Kafka client)",
            "parameters": [_query("contract_id", IDENT), _query("limit", LIMIT)],
            "responses": listing}},
        "/v1/contracts/{contract_id}/events/{event_id}": {"get": {
            "operationId": "getReceipt",
            "parameters": [CID, _path("event_id", "The event's id")],
            "summary": "The receipt of an event you sent, with its current status",
            "responses": {**_ok({"$ref": "#/components/schemas/Receipt"}),
                          **_errors("401", "403", "404")}}},
    }
    for action, schema in decision.items():
        who = "suppliers" if action == "retract" else "managers"
        paths[f"/v1/contracts/{{contract_id}}/evidence/{{evidence_id}}/{action}"] = {"post": {
            "operationId": f"{action}Evidence", "parameters": [CID, EID],
            "summary": f"{action.capitalize()} evidence ({who})",
            "requestBody": _json_body(schema, required=action != "reject",
                                      example=EXAMPLES[action]),
            "responses": {**_accepted(), **_errors(*POST_CODES)}}}
    receipt = {"type": "object", "required": ["contract_id", "event_id", "type", "status",
                                              "received_at"],
               "properties": {"contract_id": {"type": "string"},
                              "event_id": {"type": "string"}, "type": {"type": "string"},
                              "received_at": {"type": "string", "format": "date-time"},
                              "status": {"type": "string",
                                         "enum": ["pending", "accepted", "refused"]},
                              "reason": {"type": "string"}}}
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
            "schemas": {
                "Receipt": receipt,
                "Receipts": {"type": "object", "required": ["receipts"],
                             "properties": {"receipts": {"type": "array", "items": receipt}}},
                "CsvResult": {"type": "object", "required": ["receipts", "errors"],
                              "properties": {"receipts": {"type": "array", "items": receipt},
                                             "errors": {"type": "array",
                                                        "items": {"type": "object"}}}},
                "Principal": {"type": "object", "properties": {
                    "kind": {"type": "string"}, "party": {"type": "string"},
                    "token_id": {"type": "string"}}},
                "Error": {"type": "object", "required": ["error", "message"],
                          "properties": {"error": {"type": "string"},
                                         "message": {"type": "string", "minLength": 1},
                                         "field": {"type": ["string", "null"]},
                                         "expected": {"type": ["string", "null"]},
                                         "got": {"type": ["string", "null"]},
                                         "errors": {"type": "array",
                                                    "items": {"type": "object"}}}},
            },
        },
    }
