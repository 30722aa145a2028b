"""svmon.core.copying copies and pickles the core's frozen dataclasses as
dataclasses.replace and their own pickling would."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import FrozenInstanceError, fields

import pytest

from svmon.core import events as ev
from svmon.core import state as st
from svmon.core.copying import fast_pickle, replacer

CLASSES = [*ev.EVENT_TYPES, ev.Attachment, st.Terms, st.Commitment, st.Milestone,
           st.EvidenceRecord, st.Totals, st.ContractState]


def _made(cls: type, prefix: str = "v") -> object:
    names = [f.name for f in fields(cls)]
    return cls(**{n: f"{prefix}{i}" for i, n in enumerate(names)})  # types do not matter


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_replaced_objects_equal_dataclasses_replace(cls: type) -> None:
    names = [f.name for f in fields(cls)]
    old = _made(cls)
    changes = {n: f"new-{n}" for n in names[::2]}
    new = replacer(cls)(old, **changes)
    assert type(new) is cls
    assert new == dataclasses.replace(old, **changes)
    assert new != old
    assert hash(new) == hash(dataclasses.replace(old, **changes)) or cls is st.ContractState
    assert replacer(cls)(old) == old
    assert st.evolve(old, **changes) == dataclasses.replace(old, **changes)
    with pytest.raises(TypeError, match="no_such_field"):
        replacer(cls)(old, no_such_field=1)
    with pytest.raises(FrozenInstanceError):
        new.__setattr__(names[0], "changed")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pickled_objects_come_back_equal_and_frozen(cls: type) -> None:
    old = _made(cls)
    back = pickle.loads(pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is cls and back == old
    assert [getattr(back, f.name) for f in fields(cls)] == \
        [getattr(old, f.name) for f in fields(cls)]
    with pytest.raises(FrozenInstanceError):
        back.__setattr__(fields(cls)[0].name, "changed")


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
            replacer(cls)
        with pytest.raises(TypeError):
            fast_pickle(cls)


def test_pickle_round_trips_states_events_and_derived_facts() -> None:
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
