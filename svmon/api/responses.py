"""Component schemas of the API's responses, for its OpenAPI document.

Rows the API returns as they are stored (contracts, totals, evidence, alerts,
rejections) are described from their table's own columns, so a column added to a
table appears here by itself and the document cannot claim a type the database does
not give. The rest (receipts, errors, milestones) is what ``svmon.api.http``,
``svmon.api.reads`` and ``svmon.models.ingest.receipt`` build, key for key; every
object is closed (``additionalProperties: false``) because the server adds nothing
else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Date, Integer
from sqlmodel import SQLModel

from svmon.models.tables import (
    AlertRow,
    ContractRow,
    DeadLetterRow,
    EvidenceRow,
    ExactDecimal,
    MeasureTotalRow,
    UTCDateTime,
)

# a Decimal as the server writes it (str(Decimal)): "2", "2.500000", "0E-12", "1E+3"
DECIMAL_OUT = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"}
DATE_OUT = {"type": "string", "format": "date"}
TIME_OUT = {"type": "string", "format": "date-time"}
STATUSES = ["pending", "accepted", "refused"]
MILESTONE_STATUSES = ["scheduled", "met", "met late", "partially met", "not met"]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _column(col: Any) -> dict[str, Any]:
    t = col.type
    schema: dict[str, Any]
    if isinstance(t, ExactDecimal):
        schema = dict(DECIMAL_OUT)
    elif isinstance(t, UTCDateTime):
        schema = dict(TIME_OUT)
    elif isinstance(t, Date):
        schema = dict(DATE_OUT)
    elif isinstance(t, Boolean):
        schema = {"type": "boolean"}
    elif isinstance(t, Integer):
        schema = {"type": "integer"}
    else:
        schema = {"type": "string"}
    return _nullable(schema) if col.nullable else schema


def row_schema(table: type[SQLModel], only: tuple[str, ...] | None = None,
               nullable: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored row as the API returns it: every column (or ``only`` these), all
    present; ``nullable`` names columns null in some responses whatever the table
    says (e.g. an id from an outer join)."""
    cols = {c.name: c for c in table.__table__.columns}  # type: ignore[attr-defined]
    names = list(only) if only is not None else list(cols)
    props = {n: _column(cols[n]) for n in names}
    for n in nullable:
        if "anyOf" not in props[n]:
            props[n] = _nullable(props[n])
    return {"type": "object", "required": names, "properties": props,
            "additionalProperties": False}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}, "additionalProperties": False}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


STRING = {"type": "string"}
NULLABLE_STRING = _nullable(STRING)

RECEIPT = _object(
    {"contract_id": STRING, "event_id": STRING, "type": STRING, "received_at": TIME_OUT,
     "status": {"type": "string", "enum": STATUSES}},
    {"reason": STRING})

# one refused item of a batch (``item``: its position) or row of a CSV file (``row``:
# its number as a spreadsheet shows it); the other keys as in Error
ITEM_ERROR = _object(
    {"error": STRING, "message": {"type": "string", "minLength": 1}},
    {"item": {"type": "integer"}, "row": {"type": "integer"}, "field": STRING,
     "expected": STRING, "got": STRING, "contract_id": NULLABLE_STRING,
     "event_id": NULLABLE_STRING})

ERROR = _object(
    {"error": STRING, "message": {"type": "string", "minLength": 1}},
    {"field": STRING, "expected": STRING, "got": STRING, "contract_id": NULLABLE_STRING,
     "event_id": NULLABLE_STRING, "errors": {"type": "array", "items": _ref("ItemError")}})

REVIEW = _object({"status": STRING, "decided_by": STRING,
                  "decided_at": _nullable(TIME_OUT), "reason": STRING})

SUBMISSION = _object(
    {**RECEIPT["properties"], "id": {"type": "integer"}, "submitted_by": STRING,
     "channel": STRING, "data": {"type": "object"}},
    {"evidence": _ref("Review")})
SUBMISSION["required"] = [n for n in SUBMISSION["required"] if n != "reason"]

MILESTONE = _object({
    "milestone_id": STRING, "measure": STRING, "due": DATE_OUT,
    "cumulative_target": DECIMAL_OUT,
    "status": {"type": "string", "enum": MILESTONE_STATUSES,
               "description": "'scheduled' until judged (due date + the reporting lag)"},
    "judged_on": {**DATE_OUT, "description": "The due date plus the reporting lag"},
    "judged_at": {**_nullable(TIME_OUT), "description": "Record time of the first "
                  "judgement"},
    "verified": {**DECIMAL_OUT, "description": "Verified delivery for periods up to the "
                 "due date (a period spanning it pro rata by days), by what is known now"},
    "claimed": {**DECIMAL_OUT, "description": "The same, counting unverified claims"},
    "verified_on_time": {**DECIMAL_OUT, "description": "The part of 'verified' verified "
                         "by the first judgement"},
    "shortfall": DECIMAL_OUT,
    "met_at": {**_nullable(TIME_OUT), "description": "When late evidence made it 'met "
               "late' (record time)"},
    "time_axis": STRING})

MILESTONES = _object({"contract_id": STRING,
                      "time_axis": {"type": "string", "enum": ["delivery"]},
                      "reporting_lag_days": {"type": "integer"},
                      "milestones": {"type": "array", "items": _ref("Milestone")}})


def _alert(fields: tuple[str, ...]) -> dict[str, Any]:
    schema = row_schema(AlertRow, fields)
    schema["properties"]["detail"] = {
        "type": "object", "description": "The alert's current figures and the time axis "
        "they use"}
    return schema


def components() -> dict[str, Any]:
    from svmon.api.reads import MANAGER_ALERT_FIELDS, SUPPLIER_ALERT_FIELDS

    contract = row_schema(ContractRow, ("contract_id", "title", "buyer", "supplier_id",
                                        "supplier_name", "start", "end", "manager",
                                        "catalogue_edition"))
    contract["required"] += ["totals", "evidence"]
    contract["properties"].update(
        totals={"type": "array", "items": _ref("MeasureTotal")},
        evidence={"type": "array", "items": _ref("Evidence")})
    return {
        "Receipt": RECEIPT,
        "Receipts": _object({"receipts": {"type": "array", "items": _ref("Receipt")}}),
        "CsvResult": _object({"receipts": {"type": "array", "items": _ref("Receipt")},
                              "errors": {"type": "array", "items": _ref("ItemError")}}),
        "ItemError": ITEM_ERROR,
        "Error": ERROR,
        "Health": _object({"status": {"type": "string", "enum": ["ok"]}}),
        "Principal": _object({"kind": {"type": "string", "enum": ["supplier", "manager"]},
                              "party": STRING, "token_id": STRING}),
        "ContractSummary": row_schema(ContractRow),
        "Contract": contract,
        "MeasureTotal": row_schema(MeasureTotalRow),
        "Evidence": row_schema(EvidenceRow),
        "Review": REVIEW,
        "Submission": SUBMISSION,
        "Rejection": row_schema(DeadLetterRow, ("id", "contract_id", "event_id", "error",
                                                "field", "reason", "at", "topic",
                                                "partition", "offset")),
        "Milestone": MILESTONE,
        "Milestones": MILESTONES,
        "Alert": _alert(MANAGER_ALERT_FIELDS),
        "SupplierAlert": _alert(SUPPLIER_ALERT_FIELDS),
    }
