"""svmon.core.fast builds and copies the core's frozen dataclasses like their own
__init__ and dataclasses.replace do."""

from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError, fields

import pytest

from svmon.core import events as ev
from svmon.core import state as st
from svmon.core.fast import builder, replacer

CLASSES = [*ev.EVENT_TYPES, ev.Attachment, st.Terms, st.Commitment, st.Milestone,
           st.EvidenceRecord, st.Totals, st.ContractState]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_built_objects_equal_constructed_ones(cls: type) -> None:
    names = [f.name for f in fields(cls)]
    values = [f"value-{i}" for i in range(len(names))]  # types do not matter here
    made = builder(cls)(*values)
    want = cls(**dict(zip(names, values, strict=True)))
    assert type(made) is cls
    assert made == want
    assert hash(made) == hash(want) or cls is st.ContractState  # (its dict fields)
    with pytest.raises(FrozenInstanceError):
        made.__setattr__(names[0], "changed")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_replaced_objects_equal_dataclasses_replace(cls: type) -> None:
    names = [f.name for f in fields(cls)]
    old = builder(cls)(*[f"v{i}" for i in range(len(names))])
    changes = {n: f"new-{n}" for n in names[::2]}
    assert replacer(cls)(old, **changes) == dataclasses.replace(old, **changes)
    assert replacer(cls)(old) == old
    assert st.evolve(old, **changes) == dataclasses.replace(old, **changes)
    with pytest.raises(TypeError):
        replacer(cls)(old, no_such_field=1)


def test_classes_with_post_init_or_without_slots_are_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            raise AssertionError

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        x: int

    for cls in (Checked, Unslotted):
        with pytest.raises(TypeError):
            builder(cls)
        with pytest.raises(TypeError):
            replacer(cls)


def test_pickle_round_trips_states_events_and_derived_facts() -> None:
    import pickle
    from datetime import date

    from svmon.audit.replay import rebuild
    from svmon.demo import generate
    from tests.unit._builders import CATALOGUE

    events = generate(seed=5, contracts=2, today=date(2026, 6, 1))
    out = rebuild(events, CATALOGUE)
    assert any(s.evidence for s in out.states.values()) and out.derived
    back = pickle.loads(pickle.dumps((events, out.states, out.derived)))
    assert back == (events, out.states, out.derived)
    assert [type(x) for x in back[0]] == [type(x) for x in events]
