"""The wire codec: what decodes, and how everything else fails (SchemaError naming the field)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from svmon.core import events as ev
from svmon.core.errors import SchemaError
from svmon.schemas import (
    MAX_MESSAGE_BYTES,
    decode_event,
    derived_to_dict,
    encode_derived,
    encode_event,
    event_to_dict,
)
from tests.unit._builders import at, d, registered, submitted, tick

SHA = "0123456789abcdef" * 4


def evidence_message(**data: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "schema_version": 1, "type": "EvidenceSubmitted", "event_id": "ev-1",
        "contract_id": "C-001", "occurred_at": "2025-03-31T17:00:00+00:00",
        "actor": "supplier-S01",
        "data": {"evidence_id": "ev-1", "measure": "NT1", "quantity": "12.5",
                 "period_start": "2025-01-01", "period_end": "2025-03-31",
                 "description": "Q1 local hires",
                 "attachments": [{"name": "payroll.pdf", "sha256": SHA}]},
    }
    msg["data"].update(data)
    return msg


def raw(msg: Any) -> bytes:
    return json.dumps(msg).encode()


def decode_fails(message: bytes | str | dict[str, Any], field: str) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        decode_event(message)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.field == field
    assert repr(field) in str(err)
    return err


# ------------------------------------------------------------------ accepted


def test_valid_message_decodes_to_core_event() -> None:
    e = decode_event(raw(evidence_message()))
    assert e == ev.EvidenceSubmitted(
        event_id="ev-1", contract_id="C-001", occurred_at=datetime(2025, 3, 31, 17, tzinfo=UTC),
        actor="supplier-S01", evidence_id="ev-1", measure="NT1", quantity=Decimal("12.5"),
        period_start=d("2025-01-01"), period_end=d("2025-03-31"),
        description="Q1 local hires", attachments=(ev.Attachment("payroll.pdf", SHA),))


def test_json_number_quantity_is_read_as_exact_decimal() -> None:
    text = raw(evidence_message()).replace(b'"12.5"', b"0.1")
    e = decode_event(text)
    assert isinstance(e, ev.EvidenceSubmitted)
    assert e.quantity == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    assert decode_event(raw(evidence_message(quantity=7))).quantity == Decimal(7)  # type: ignore[attr-defined]


def test_offset_timestamps_are_normalised_to_utc() -> None:
    msg = evidence_message()
    msg["occurred_at"] = "2025-03-31T18:00:00+01:00"
    e = decode_event(raw(msg))
    assert e.occurred_at == datetime(2025, 3, 31, 17, tzinfo=UTC)
    assert e.occurred_at.utcoffset() == timedelta(0)


def test_optional_fields_take_their_defaults() -> None:
    msg = evidence_message()
    del msg["actor"]
    del msg["data"]["description"], msg["data"]["attachments"]
    e = decode_event(msg)
    assert isinstance(e, ev.EvidenceSubmitted)
    assert (e.actor, e.description, e.attachments) == ("system", "", ())


@pytest.mark.parametrize("event", [
    registered(),
    submitted("E1", "L-VOL", "80.25", "2025-01-01", "2025-01-31", "2025-02-05"),
    tick("2025-05-01"),
], ids=lambda e: type(e).__name__)
def test_encode_then_decode_is_identity(event: ev.ContractEvent) -> None:
    assert decode_event(encode_event(event)) == event
    assert event_to_dict(event)["type"] == type(event).__name__
    assert event_to_dict(event)["schema_version"] == 1


def test_non_utc_event_round_trips_to_the_same_instant() -> None:
    plus_two = timezone(timedelta(hours=2))
    e = ev.ClockTicked(event_id="t1", contract_id="C-001",
                       occurred_at=datetime(2025, 5, 1, 2, tzinfo=plus_two),
                       at=datetime(2025, 5, 1, 2, tzinfo=plus_two))
    back = decode_event(encode_event(e))
    assert back == e
    assert back.occurred_at.tzinfo == UTC


def test_derived_fact_encoding_carries_kind_and_stable_id() -> None:
    fact = ev.MilestoneMissed(contract_id="C-001", measure="NT1", caused_by="tick-1",
                              at=at("2025-05-01"), milestone_id="NT1-Q1", due=d("2025-03-31"),
                              target=Decimal("2"), verified=Decimal("1"), claimed=Decimal("1.5"))
    body = derived_to_dict(fact)
    assert body["kind"] == "MilestoneMissed"
    assert body["derived_id"] == "C-001/tick-1/MilestoneMissed/NT1/NT1-Q1"
    assert (body["target"], body["claimed"], body["due"]) == ("2", "1.5", "2025-03-31")
    assert json.loads(encode_derived(fact)) == body


# ------------------------------------------------------------------ refused


def test_malformed_json() -> None:
    decode_fails(b'{"schema_version": 1, "type": ', "message")
    decode_fails(b"\xff\xfe\x00garbage", "message")


@pytest.mark.parametrize("payload", [b"[]", b"42", b'"EvidenceSubmitted"', b"null"])
def test_non_object(payload: bytes) -> None:
    err = decode_fails(payload, "message")
    assert "a JSON object" in str(err)


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.5, 1.0], ids=repr)
def test_unsupported_schema_version(version: Any) -> None:
    msg = evidence_message()
    msg["schema_version"] = version
    decode_fails(raw(msg), "schema_version")


def test_missing_schema_version() -> None:
    msg = evidence_message()
    del msg["schema_version"]
    err = decode_fails(raw(msg), "schema_version")
    assert err.got is None


@pytest.mark.parametrize("version", [[1], {"v": 1}], ids=["list", "object"])
def test_unhashable_schema_version_is_a_schema_error(version: Any) -> None:
    # once a TypeError from `version in frozenset` (fixed in svmon/schemas.py)
    msg = evidence_message()
    msg["schema_version"] = version
    decode_fails(raw(msg), "schema_version")


@pytest.mark.parametrize("type_name", ["EvidenceDeleted", "", None, 7, "Derived"],
                         ids=repr)
def test_unknown_type(type_name: Any) -> None:
    msg = evidence_message()
    msg["type"] = type_name
    err = decode_fails(raw(msg), "type")
    assert err.event_id == "ev-1" and err.contract_id == "C-001"


@pytest.mark.parametrize("field", ["event_id", "contract_id", "actor"])
@pytest.mark.parametrize("value", ["", "has space", "x" * 129, 12, None, "tab\there"],
                         ids=["empty", "space", "long", "number", "null", "tab"])
def test_bad_identifier(field: str, value: Any) -> None:
    msg = evidence_message()
    msg[field] = value
    decode_fails(raw(msg), field)


@pytest.mark.parametrize("text", [
    '"NaN"', '"Infinity"', '"-Infinity"', '"sNaN"', "NaN", "Infinity", "-Infinity",
])
def test_non_finite_quantity(text: str) -> None:
    payload = raw(evidence_message(quantity="PLACEHOLDER")).replace(b'"PLACEHOLDER"',
                                                                     text.encode())
    err = decode_fails(payload, "data.quantity" if text.startswith('"') else "message")
    if text.startswith('"'):
        assert "finite" in str(err)


@pytest.mark.parametrize(("quantity", "expected"), [
    ("-1", "greater than 0"),
    (-3, "greater than 0"),
    ("0", "greater than 0"),
    ("0.000", "greater than 0"),
    ("1000000000000.5", "at most 1,000,000,000,000"),
    ("1E+13", "at most 1,000,000,000,000"),
    ("0.1234567", "at most 6 decimal places"),
    ("1.0000000", "at most 6 decimal places"),
    ("twelve", "a decimal number"),
    ("", "a decimal number"),
    (True, "a decimal number as a string or JSON number"),
    ([1], "a decimal number as a string or JSON number"),
    (None, "a decimal number as a string or JSON number"),
], ids=repr)
def test_bad_quantity(quantity: Any, expected: str) -> None:
    err = decode_fails(raw(evidence_message(quantity=quantity)), "data.quantity")
    assert expected in err.expected


# Decimal() alone would accept these (as 1000 and 12): the wire format does not.
@pytest.mark.parametrize("quantity", ["1_000", " 12 ", "\u0661\u0662"],
                         ids=["underscore", "padded", "arabic-indic"])
def test_non_canonical_decimal_strings_are_refused(quantity: str) -> None:
    decode_fails(raw(evidence_message(quantity=quantity)), "data.quantity")


@pytest.mark.parametrize("quantity", ["0.000001", "1000000000000", "1E+3", 1])
def test_quantity_limits_are_inclusive(quantity: Any) -> None:
    e = decode_event(raw(evidence_message(quantity=quantity)))
    assert e.quantity == Decimal(quantity)  # type: ignore[attr-defined]


def test_json_float_quantity_with_too_many_places() -> None:
    payload = raw(evidence_message(quantity="X")).replace(b'"X"', b"1.1234567")
    decode_fails(payload, "data.quantity")


def test_float_in_a_parsed_mapping_is_refused() -> None:
    decode_fails(evidence_message(quantity=12.5), "data.quantity")


@pytest.mark.parametrize("stamp", ["2025-03-31T17:00:00", "2025-03-31", "yesterday", 1743440400],
                         ids=repr)
def test_naive_or_malformed_timestamp(stamp: Any) -> None:
    msg = evidence_message()
    msg["occurred_at"] = stamp
    err = decode_fails(raw(msg), "occurred_at")
    assert "UTC offset" in err.expected


def test_naive_clock_tick() -> None:
    msg = json.loads(encode_event(tick("2025-05-01")))
    msg["data"]["at"] = "2025-05-01T00:00:00"
    decode_fails(raw(msg), "data.at")


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_out_of_range_in_utc_is_a_schema_error(stamp: str) -> None:
    # once an OverflowError from astimezone(UTC) (fixed in svmon/schemas.py)
    msg = evidence_message()
    msg["occurred_at"] = stamp
    decode_fails(raw(msg), "occurred_at")


def test_unknown_data_field() -> None:
    err = decode_fails(raw(evidence_message(colour="blue")), "data.colour")
    assert "quantity" in err.expected  # lists the fields it does know


def test_missing_required_data_field() -> None:
    msg = evidence_message()
    del msg["data"]["measure"]
    decode_fails(raw(msg), "data.measure")


@pytest.mark.parametrize("data", [None, [], "x"], ids=repr)
def test_data_not_an_object(data: Any) -> None:
    msg = evidence_message()
    msg["data"] = data
    decode_fails(raw(msg), "data")


def test_period_end_before_period_start() -> None:
    err = decode_fails(raw(evidence_message(period_start="2025-03-01",
                                            period_end="2025-02-28")), "data.period_end")
    assert err.got == "2025-02-28"


@pytest.mark.parametrize("value", ["2025-02-30", "31/01/2025", 20250101])
def test_bad_date(value: Any) -> None:
    decode_fails(raw(evidence_message(period_start=value)), "data.period_start")


def test_oversized_message() -> None:
    msg = evidence_message(description="x" * 3000)
    big = raw(msg)[:-1] + b', "padding": "' + b"y" * MAX_MESSAGE_BYTES + b'"}'
    err = decode_fails(big, "message")
    assert str(MAX_MESSAGE_BYTES) in err.expected


def test_message_exactly_at_the_limit_is_not_refused_for_size() -> None:
    base = raw(evidence_message())
    pad = MAX_MESSAGE_BYTES - len(base) - len(b', "padding": ""')
    payload = base[:-1] + b', "padding": "' + b"y" * pad + b'"}'
    assert len(payload) == MAX_MESSAGE_BYTES
    assert decode_event(payload).event_id == "ev-1"


def test_oversized_text_message_is_measured_in_bytes() -> None:
    # a str used to be measured in characters (fixed in svmon/schemas.py)
    text = json.dumps(evidence_message(), ensure_ascii=False)[:-1] + \
        ', "padding": "' + "€" * (MAX_MESSAGE_BYTES // 3 + 10) + '"}'
    assert len(text) < MAX_MESSAGE_BYTES < len(text.encode())
    decode_fails(text, "message")


def test_deeply_nested_message_is_a_schema_error() -> None:
    # once a RecursionError from the JSON parser (fixed in svmon/schemas.py)
    payload = b"[" * 30_000 + b"]" * 30_000  # well-formed JSON, within the size limit
    assert len(payload) <= MAX_MESSAGE_BYTES
    decode_fails(payload, "message")


@pytest.mark.parametrize(("sha", "why"), [
    ("0123", "too short"),
    (SHA.upper(), "upper case"),
    ("g" * 64, "not hex"),
    (SHA + "0", "too long"),
    (None, "missing"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "")
def test_bad_attachment_sha256(sha: Any, why: str) -> None:
    attachment: dict[str, Any] = {"name": "payroll.pdf"}
    if sha is not None:
        attachment["sha256"] = sha
    msg = evidence_message(attachments=[{"name": "ok.pdf", "sha256": SHA}, attachment])
    err = decode_fails(raw(msg), "data.attachments[1].sha256")
    assert "SHA-256" in err.expected, why


def test_attachment_without_name() -> None:
    decode_fails(raw(evidence_message(attachments=[{"sha256": SHA}])),
                 "data.attachments[0].name")


def test_too_many_attachments() -> None:
    many = [{"name": f"{i}.pdf", "sha256": SHA} for i in range(51)]
    decode_fails(raw(evidence_message(attachments=many)), "data.attachments")


def test_blank_rejection_reason() -> None:
    msg = {"schema_version": 1, "type": "EvidenceRejected", "event_id": "r1",
           "contract_id": "C-001", "occurred_at": "2025-04-01T00:00:00Z",
           "data": {"evidence_id": "ev-1", "reason": "   "}}
    decode_fails(raw(msg), "data.reason")
    msg["data"]["reason"] = "Attendance register missing"
    assert decode_event(raw(msg)).reason == "Attendance register missing"  # type: ignore[attr-defined]


@pytest.mark.parametrize("days", [0, 3661, True, "90", 90.5, 0.0], ids=repr)
def test_bad_reporting_cadence(days: Any) -> None:
    msg = event_to_dict(registered())
    msg["data"]["reporting_cadence_days"] = days
    decode_fails(raw(msg), "data.reporting_cadence_days")


def test_a_whole_cadence_written_with_a_point_is_a_whole_number() -> None:
    """JSON has one number type: 162.0 is the whole number 162, as JSON Schema (and so
    the API's document) says (schemathesis sent it and the server refused it once)."""
    msg = event_to_dict(registered())
    msg["data"]["reporting_cadence_days"] = 162.0
    assert decode_event(raw(msg)).reporting_cadence_days == 162  # type: ignore[attr-defined]


def test_the_api_document_counts_a_whole_decimal_an_integer() -> None:
    from decimal import Decimal

    from svmon.api.document_check import DocumentGate

    gate = DocumentGate({"op": {"type": "object", "properties": {
        "days": {"type": "integer", "minimum": 1}}}})
    assert gate.errors("op", {"days": Decimal("162.0")}) == []
    assert gate.errors("op", {"days": Decimal("1E+2")}) == []
    [bad] = gate.errors("op", {"days": Decimal("162.5")})
    assert (bad.field, bad.expected) == ("days", "of JSON type integer")


def test_negative_contract_value() -> None:
    msg = event_to_dict(registered())
    msg["data"]["value_gbp"] = "-1"
    decode_fails(raw(msg), "data.value_gbp")
    msg["data"]["value_gbp"] = "0"  # zero is a valid contract value (non-negative)
    assert decode_event(raw(msg)).value_gbp == Decimal(0)  # type: ignore[attr-defined]


def test_overlong_description() -> None:
    decode_fails(raw(evidence_message(description="x" * 4001)), "data.description")


@pytest.mark.parametrize(("field", "value"), [
    ("description", "payroll\x00.pdf"),
    ("evidence_id", "ev\x00-1"),
])
def test_nul_characters_are_refused(field: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL
    decode_fails(raw(evidence_message(**{field: value})), f"data.{field}")


@pytest.mark.parametrize("value", ["1899-12-31", "2201-01-01"])
def test_dates_outside_the_supported_years(value: str) -> None:
    decode_fails(raw(evidence_message(period_start=value, period_end="2025-01-01")),
                 "data.period_start")


def test_timestamp_outside_the_supported_years() -> None:
    msg = evidence_message()
    msg["occurred_at"] = "2201-01-01T00:00:00+00:00"
    decode_fails(raw(msg), "occurred_at")


def test_error_carries_ids_for_the_dead_letter_record() -> None:
    err = decode_fails(raw(evidence_message(quantity="-2")), "data.quantity")
    record = err.as_dict()
    assert record["error"] == "SchemaError"
    assert (record["field"], record["event_id"], record["contract_id"]) == (
        "data.quantity", "ev-1", "C-001")
    assert record["got"] == "'-2'"


def test_decoding_does_not_mutate_a_parsed_mapping() -> None:
    msg = evidence_message()
    before = copy.deepcopy(msg)
    decode_event(msg)
    assert msg == before
