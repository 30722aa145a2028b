"""Copying and pickling the core's frozen dataclasses, slot by slot.

Two operations on these classes run for every event, and the standard library's way
of doing them goes through ``dataclasses.fields()`` and ``object.__setattr__`` once
per field on every call:

* the fold makes a new :class:`~svmon.core.state.ContractState` (16 fields) for
  each event it applies, which ``dataclasses.replace`` does by running ``__init__``
  again; :func:`replacer` copies the slots directly instead (the fold reaches it
  only through :func:`svmon.core.state.evolve`);
* the worker hands each batch of events to its writer process, and replay workers
  send rebuilt states to their parent, by pickle, whose default for a frozen
  slotted dataclass is a ``__getstate__`` that walks ``fields()`` per object;
  :func:`fast_pickle` pickles (class, field values) instead.

Each gives the same objects as the standard way (same class, fields, equality and
hash; ``tests/unit/test_fast.py`` checks them against ``dataclasses.replace`` and a
pickle round trip). They are here, and nowhere else, because measuring them against
the standard-library calls side by side showed they still pay (docs/benchmarks.md,
"The core's copies"); constructors, which did not, are called plainly. Only classes
without ``__post_init__`` qualify (checked), since neither runs it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")

_REPLACERS: dict[type, Callable[..., Any]] = {}
_KEEP: Any = object()  # "this field as it was"
_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {}


def _slotted_fields(cls: type) -> tuple[str, ...]:
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__: use its own __init__")
    names = tuple(f.name for f in fields(cls))
    for n in names:
        if not hasattr(getattr(cls, n, None), "__set__"):
            raise TypeError(f"{cls.__name__}.{n} is not a slot")
    return names


def _setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    made = _SETTERS.get(cls)
    if made is None:
        made = _SETTERS[cls] = tuple(getattr(cls, n).__set__ for n in _slotted_fields(cls))
    return made


def replacer(cls: type[T]) -> Callable[..., T]:
    """``replace(obj, field=value, ...)``: a copy of ``obj`` with some fields changed
    (keyword arguments only; an unknown field is a TypeError, as for ``cls``)."""
    made = _REPLACERS.get(cls)
    if made is None:
        names = _slotted_fields(cls)
        # one straight-line function per class with the field names written into it:
        # a loop over the fields (tried: a closure over attrgetter and the setters)
        # pays its per-field overhead on every copy (docs/benchmarks.md has the figures)
        params = ", ".join(f"{n}=_KEEP" for n in names)
        body = "".join(f"    _s{i}(o, old.{n} if {n} is _KEEP else {n})\n"
                       for i, n in enumerate(names))
        src = f"def replace(old, /, *, {params}):\n    o = _new(_cls)\n{body}    return o\n"
        made = _REPLACERS[cls] = _compile(cls, src, "replace")
    return made


def _compile(cls: type, src: str, name: str) -> Callable[..., Any]:
    """The function ``name`` of ``src``, which is made only from ``cls``'s own field
    names (identifiers, so nothing from data ever reaches it)."""
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_KEEP": _KEEP}
    ns.update({f"_s{i}": put for i, put in enumerate(_setters(cls))})
    exec(src, ns)
    fn: Callable[..., Any] = ns[name]
    return fn


def _restore(cls: type[T], values: tuple[Any, ...]) -> T:
    o = object.__new__(cls)
    for put, value in zip(_setters(cls), values, strict=True):
        put(o, value)
    return o


def fast_pickle(cls: type[T]) -> type[T]:
    """Pickle ``cls`` as (class, field values), restored slot by slot."""
    names = _slotted_fields(cls)
    read_all = operator.attrgetter(*names)
    single = len(names) == 1

    def __reduce__(self: Any) -> tuple[Any, ...]:
        values = (read_all(self),) if single else read_all(self)
        return _restore, (cls, values)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls
