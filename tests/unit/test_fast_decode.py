"""The decoder's fast paths agree with the checked decoder and the standard library.

``decode_event`` tries a fast path for the common event types (and msgspec for the
JSON) and hands anything it is not sure of to the checked decoder (and the standard
library's JSON parser). These properties check that the fast paths never accept what
the checked path refuses and always build the same event.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svmon.core.errors import SchemaError
from svmon.demo import generate
from svmon.schemas import (
    _DECODER,
    _FAST,
    MAX_MESSAGE_BYTES,
    _decode_checked,
    _decode_fast,
    decode_event,
    encode_event,
    event_to_dict,
    parse_json,
)

FAST = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SHA = "0123456789abcdef" * 4


def outcome(fn: Any, arg: Any) -> Any:
    """What a decoder makes of ``arg``: the event, or the error's field, expectation and got."""
    try:
        return ("ok", fn(arg))
    except SchemaError as err:
        return ("refused", err.field, err.expected, repr(err.got), err.event_id,
                err.contract_id)


# values that are sometimes right and often nearly right
idents = st.sampled_from(["ev-1", "C-001", "NT1", "system", "supplier-S01", "x" * 128,
                          "x" * 129, "", "has space", "tab\there", "é:ü", "ev\x00", "\ud800",
                          "\u00a0nbsp", "a\x7f"])
texts = st.one_of(st.sampled_from(["", "Q1 hires", "x" * 4000, "x" * 4001, "nul\x00",
                                   "\ud83d", "é", "   ", "line\nbreak", "\x7f"]),
                  st.text(max_size=12))
decimals = st.one_of(
    st.sampled_from(["12.5", "0", "0.000", "-1", "1_000", " 12 ", "\u0661\u0662", "NaN",
                     "Infinity", "sNaN", "1E+3", "1e3", "0.1234567", "0.123456",
                     "1000000000000", "1000000000000.000001", "9999999999999", "007", "",
                     "1.", ".5", "+1", "12.50"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-5, 10**13), st.decimals(min_value=0, max_value=10**6, places=7),
    st.sampled_from([True, None, 12.5, [1]]))
dates = st.one_of(st.sampled_from(["2025-01-31", "2025-02-30", "1899-12-31", "2201-01-01",
                                   "1900-01-01", "2200-12-31", "20250101", "2025-W01-1",
                                   "2025-1-1", "31/01/2025", "", 20250101, None]),
                  st.dates(date(1850, 1, 1), date(2250, 1, 1)).map(date.isoformat))
stamps = st.one_of(
    st.sampled_from(["2025-03-31T17:00:00+00:00", "2025-03-31T17:00:00Z",
                     "2025-03-31T18:00:00+01:00", "2025-03-31T17:00:00", "2025-03-31",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "2201-01-01T00:00:00+00:00", "1900-01-01T00:00:00+00:00",
                     "2025-03-31T17:00:00.123456+00:00", "yesterday", 1743440400, None]),
    st.datetimes(datetime(1850, 1, 1), datetime(2250, 1, 1),
                 timezones=st.sampled_from([UTC, None])).map(datetime.isoformat))
attachments = st.one_of(
    st.lists(st.fixed_dictionaries(
        {"name": texts, "sha256": st.sampled_from([SHA, SHA.upper(), "0123", SHA + "0"])},
        optional={"uri": texts, "other": st.just(1)}), max_size=3),
    st.sampled_from([None, "x", {}, [None], [{"sha256": SHA}]]),
    st.just([{"name": "a.pdf", "sha256": SHA}] * 51))
VALUES = {"evidence_id": idents, "measure": idents, "milestone_id": idents,
          "quantity": decimals, "target": decimals, "cumulative_target": decimals,
          "period_start": dates, "period_end": dates, "due": dates, "at": stamps,
          "description": texts, "note": texts, "unit": texts, "attachments": attachments}
FIELDS = {"EvidenceSubmitted": ["evidence_id", "measure", "quantity", "period_start",
                                "period_end", "description", "attachments", "unit"],
          "EvidenceVerified": ["evidence_id", "note"],
          "MilestoneScheduled": ["milestone_id", "measure", "due", "cumulative_target"],
          "ClockTicked": ["at"], "CommitmentMade": ["measure", "target"]}
GOOD = {"evidence_id": "ev-1", "measure": "NT1", "milestone_id": "NT1-Q1",
        "quantity": "12.5", "target": "40", "cumulative_target": "10",
        "period_start": "2025-01-01", "period_end": "2025-03-31", "due": "2025-03-31",
        "at": "2025-04-01T00:00:00+00:00", "description": "Q1", "note": "ok", "unit": "",
        "attachments": [{"name": "payroll.pdf", "sha256": SHA}]}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message of a fast-path type: each field right, nearly right, wrong or missing."""
    type_name = draw(st.sampled_from(sorted(FIELDS)))

    def value(name: str, strategy: Any, good: Any) -> Any:
        return draw(st.one_of(st.just(good), strategy)) if draw(st.booleans()) else good

    data = {}
    for name in FIELDS[type_name]:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        data[name] = value(name, VALUES[name], GOOD[name])
    if draw(st.integers(0, 19)) == 0:
        data["colour"] = "blue"
    msg: dict[str, Any] = {
        "schema_version": value("v", st.sampled_from([2, 0, "1", True, 1.0, None, [1]]), 1),
        "type": value("type", st.sampled_from(["EvidenceDeleted", "", None, 7,
                                               "ContractRegistered", "EvidenceRejected"]),
                      type_name),
        "event_id": value("event_id", idents, "ev-1"),
        "contract_id": value("contract_id", idents, "C-001"),
        "occurred_at": value("occurred_at", stamps, "2025-04-02T09:00:00+00:00"),
        "data": value("data", st.sampled_from([None, [], "x"]), data),
    }
    if draw(st.booleans()):
        msg["actor"] = value("actor", idents, "supplier-S01")
    return msg


@FAST
@given(messages())
def test_fast_path_agrees_with_the_checked_decoder(msg: dict[str, Any]) -> None:
    checked = outcome(_decode_checked, msg)
    assert outcome(decode_event, msg) == checked
    fast = _decode_fast(msg)
    if fast is not None:  # the fast path decided: it must be an event the checked one accepts
        assert checked == ("ok", fast)
    # the same through bytes (lone surrogates are escaped), against the old way there:
    # the standard library's parse, then the checked decoder
    raw = json.dumps(msg, default=str).encode()
    assert outcome(decode_event, raw) == outcome(lambda r: _decode_checked(reference_parse(r)),
                                                 raw)


def test_fast_path_takes_the_common_events_of_the_demo_log() -> None:
    events = generate(seed=3, contracts=3, today=date(2026, 6, 1))
    taken = 0
    for e in events:
        obj = parse_json(encode_event(e))
        fast = _decode_fast(obj)
        assert _decode_checked(obj) == e
        if fast is not None:
            assert fast == e and hash(fast) == hash(e)
            taken += 1
        else:
            assert type(e).__name__ not in _FAST, e
    assert taken > 0.9 * len(events)


def test_fast_path_normalises_nothing_it_should_not() -> None:
    """A timestamp with another offset, a JSON number or a mapping that is not a dict
    goes the checked way (which normalises and checks it)."""
    msg = event_to_dict(generate(seed=3, contracts=1, today=date(2026, 6, 1))[-1])
    msg["occurred_at"] = "2025-03-31T18:00:00+01:00"
    assert _decode_fast(msg) is None
    assert decode_event(msg).occurred_at == datetime(2025, 3, 31, 17, tzinfo=UTC)


# --------------------------------------------------------------------- JSON


def reference_parse(raw: bytes) -> Any:
    """The standard library alone, as the decoder parsed before msgspec."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SchemaError("message", "size", len(raw))
    try:
        return _DECODER.decode(raw.decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise SchemaError("message", "a UTF-8 JSON object", str(err)) from None


def parsed(fn: Any, raw: bytes) -> Any:
    try:
        return ("ok", repr(fn(raw)))  # repr: Decimal("1.50") and Decimal("1.5") differ
    except SchemaError as err:
        return ("refused", err.field)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.decimals(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=12)


@FAST
@given(json_values, st.booleans(), st.lists(st.tuples(st.integers(0, 400), st.binary(
    min_size=0, max_size=2)), max_size=3))
def test_fast_json_agrees_with_the_standard_library(value: Any, ascii_only: bool,
                                                     edits: list[tuple[int, bytes]]) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, default=float)  # Decimal: a number
    raw = text.encode("utf-8", "surrogatepass")
    for at, new in edits:  # break it here and there: both must still agree
        at %= len(raw) + 1
        raw = raw[:at] + new + raw[at + 1:]
    assert parsed(parse_json, raw) == parsed(reference_parse, raw)


@pytest.mark.parametrize("raw", [
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":"\\ud800"}',
    b'{"a":"\\ud800\\u0041"}', b'{"a":' + b"1" * 5000 + b"}", b'{"a":18446744073709551616}',
    b'{"a":1.50}', b'{"a":1e400}', b'{"a":"x\ty"}', b'{"a":1,"a":2}', b"\xef\xbb\xbf{}",
    b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}', b"[" * 990 + b"]" * 990,
    b"[" * 1010 + b"]" * 1010, b'{"a":1}x', b'{"a":01}', b'{"a":"\\u0000"}',
], ids=lambda r: repr(r[:24]))
def test_json_edge_cases_agree_with_the_standard_library(raw: bytes) -> None:
    assert parsed(parse_json, raw) == parsed(reference_parse, raw)


def test_json_numbers_stay_exact() -> None:
    assert parse_json(b'{"q":0.1,"r":1.50,"s":7}') == {"q": Decimal("0.1"),
                                                        "r": Decimal("1.50"), "s": 7}
    assert str(parse_json(b'{"r":1.50}')["r"]) == "1.50"
