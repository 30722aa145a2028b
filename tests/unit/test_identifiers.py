"""The one id grammar (issue #21, A): what it admits, where it is enforced, and file
names made from ids that cannot leave their folder."""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from svmon.api.openapi import document
from svmon.core.errors import InvalidInput, SchemaError
from svmon.demo import generate
from svmon.safe_output import UnsafePath, path_in, safe_name
from svmon.schemas import (
    ID_EXPECTED,
    ID_PATTERN,
    ID_RE,
    _decode_fast,
    decode_event,
    event_to_dict,
)
from svmon.streams.processor import Record, decode_all
from tests.unit._builders import milestone, registered, submitted

# every kind of id the project makes or shows in its examples and tests
LEGITIMATE = ["C-001", "C-2025-014", "S01", "NT1", "L-VOL", "D-SME", "L-VOL-2026", "NT1-Q1",
              "E1", "ev-1", "INV-2025-03-NT1", "C-001:registered", "C-001:commit:NT1",
              "C-001:milestone:NT1:Q1", "C-011:evidence:NT1:2025-03",
              "C-011:evidence:NT1:2025-03:verified", "C-001:tick:2025-05-01",
              "tick:2025-05-01T00:00:00+00:00", "evidence:INV-0042", "verify:E1",
              "commitment:NT1:12.5:v0", "commitment:NT1:1E+3:v0",
              "registered:0123456789abcdef:v1", "supplier:S01", "a_b.c", "x" * 128]
TRAVERSAL_AND_WORSE = ["../../traversal-proof", "..", "../x", "a/b", "a\\b", "/etc/passwd",
                       "C-001/../../x", "a..b", ".hidden", "-x", "=HYPERLINK(1)", "+1", "@x",
                       "has space", "tab\there", "line\nbreak", "cr\rx", "nul\x00", "bell\x07",
                       "é", "C\u2215001", "x" * 129, ""]


@pytest.mark.parametrize("value", LEGITIMATE)
def test_grammar_admits_every_id_the_project_makes(value: str) -> None:
    assert ID_RE.fullmatch(value)


@pytest.mark.parametrize("value", TRAVERSAL_AND_WORSE, ids=repr)
def test_grammar_refuses_paths_formulas_space_and_control_characters(value: str) -> None:
    assert not ID_RE.fullmatch(value)


def test_every_demo_id_fits() -> None:
    for e in generate(seed=3, today=date(2026, 11, 1), contracts=8):
        d = event_to_dict(e)
        ids = [d["event_id"], d["contract_id"], *(d["data"].get(k) for k in (
            "supplier_id", "measure", "evidence_id", "milestone_id"))]
        for v in ids:
            assert v is None or ID_RE.fullmatch(v), v


def _message(e: Any) -> dict[str, Any]:
    return event_to_dict(e)


# (event, where the id is in the message) for every field that takes an id
FIELDS = [
    (submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05"), ("event_id",)),
    (submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05"), ("contract_id",)),
    (registered(), ("data", "supplier_id")),
    (submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05"),
     ("data", "measure")),
    (submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05"),
     ("data", "evidence_id")),
    (milestone("NT1-Q1", "NT1", "2025-03-31", "2"), ("data", "milestone_id")),
    (milestone("NT1-Q1", "NT1", "2025-03-31", "2"), ("data", "measure")),
]


@pytest.mark.parametrize(("event", "where"), FIELDS, ids=lambda x: ".".join(x)
                         if isinstance(x, tuple) else type(x).__name__)
@pytest.mark.parametrize("bad", ["../../traversal-proof", "a/b", "a\\b", "=cmd", "é"])
def test_every_id_field_is_checked_and_the_error_names_field_expectation_and_value(
        event: Any, where: tuple[str, ...], bad: str) -> None:
    msg = _message(event)
    target = msg
    for k in where[:-1]:
        target = target[k]
    target[where[-1]] = bad
    assert _decode_fast(msg) is None  # the fast path leaves it to the checked decoder
    for raw in (msg, json.dumps(msg).encode()):  # a parsed object and wire bytes
        with pytest.raises(SchemaError) as info:
            decode_event(raw)
        err = info.value
        assert (err.field, err.expected, err.got) == (".".join(where), ID_EXPECTED, bad)
        assert "must be an identifier" in str(err) and repr(bad) in str(err)


def test_a_field_an_event_id_was_derived_from_is_the_one_named() -> None:
    # the API derives "evidence:<evidence id>" when the client sends no event id
    msg = _message(submitted("E1", "NT1", "2", "2025-01-01", "2025-01-31", "2025-02-05"))
    msg["event_id"] = "evidence:../x"
    msg["data"]["evidence_id"] = "../x"
    with pytest.raises(SchemaError) as info:
        decode_event(msg)
    assert info.value.field == "data.evidence_id"


def test_the_kafka_channel_refuses_a_traversal_id_as_a_dead_letter() -> None:
    msg = _message(registered())
    msg["contract_id"] = "../../traversal-proof"
    raw = json.dumps(msg).encode()
    [(_, out)] = decode_all([Record("t", 0, 0, b"../../traversal-proof", raw)])
    assert isinstance(out, InvalidInput) and out.field == "contract_id"


def test_openapi_patterns_are_the_decoders_grammar() -> None:
    doc = document()
    want = f"^{ID_PATTERN}$"
    seen = []

    def walk(node: Any, name: str = "") -> None:
        if isinstance(node, dict):
            if node.get("in") in ("path", "query") and node["name"].endswith("_id"):
                seen.append(node["name"])
                assert node["schema"]["pattern"] == want, node["name"]
            props = node.get("properties")
            if isinstance(props, dict):
                for k, v in props.items():
                    if k in ("contract_id", "event_id", "evidence_id", "measure",
                             "milestone_id", "supplier_id") and "pattern" in v:
                        seen.append(k)
                        assert v["pattern"] == want, k
            for v in node.values():
                walk(v, name)
        elif isinstance(node, list):
            for v in node:
                walk(v, name)

    walk(doc["paths"])
    assert {"contract_id", "event_id", "evidence_id", "measure", "milestone_id",
            "supplier_id"} <= set(seen)
    # the pattern means the same in JSON Schema's dialect (ECMA-262) as in Python's
    assert re.fullmatch(want.strip("^$"), "C-001") and not re.search(want, "../x")


# --------------------------------------------------------- file names from ids


@pytest.mark.parametrize("value", [*LEGITIMATE, *TRAVERSAL_AND_WORSE[:-1], "CON", "nul.txt",
                                   "x" * 400, "%41"], ids=repr)
def test_a_file_named_after_any_id_stays_in_its_folder(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    p = path_in(out, value, ".ocds.json")
    assert p.resolve().parent == out.resolve()
    assert "/" not in p.name and "\\" not in p.name and not p.name.startswith(".")
    assert len(p.name.encode()) <= 255
    p.write_text("{}")
    assert [x.name for x in out.iterdir()] == [p.name]


def test_file_names_are_one_to_one_and_readable() -> None:
    values = [*LEGITIMATE, *TRAVERSAL_AND_WORSE[:-1], "C-001%3A", "C-001:", "C_001", "c-001"]
    names = [safe_name(v) for v in values]
    assert len(set(names)) == len(values)
    assert safe_name("C-001") == "C-001"
    assert safe_name("C-011:evidence:NT1") == "C-011%3Aevidence%3ANT1"


def test_a_symlink_planted_in_the_folder_does_not_lead_out(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere / "C-001.ocds.json", out / "C-001.ocds.json")
    with pytest.raises(UnsafePath):
        path_in(out, "C-001", ".ocds.json")


def test_a_suffix_cannot_carry_a_path() -> None:
    with pytest.raises(UnsafePath):
        path_in(Path("."), "C-001", "/../../x")
