"""Faster construction and copying of the core's frozen, slotted dataclasses.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
looked up afresh per field, which makes a 14-field state cost several microseconds
to build; the fold builds one or more per event, the decoder one per record. These
helpers build the same objects (same class, same fields, equal and hashing alike)
by setting the slots directly, with field names looked up once per class.

They skip ``__post_init__``: use them only on classes that have none (checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")

_BUILDERS: dict[type, Callable[..., Any]] = {}
_REPLACERS: dict[type, Callable[..., Any]] = {}


def _slotted_fields(cls: type) -> tuple[str, ...]:
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__: build it with its own __init__")
    names = tuple(f.name for f in fields(cls))
    for n in names:
        if not hasattr(getattr(cls, n, None), "__set__"):
            raise TypeError(f"{cls.__name__}.{n} is not a slot")
    return names


def builder(cls: type[T]) -> Callable[..., T]:
    """``build(v1, v2, ...)``: every field, positionally, in declaration order (keyword
    or not, defaults not applied), the same object as ``cls(f1=v1, f2=v2, ...)``."""
    made = _BUILDERS.get(cls)
    if made is None:
        names = _slotted_fields(cls)
        args = ", ".join(f"v{i}" for i in range(len(names)))
        body = "".join(f"    _s{i}(o, v{i})\n" for i in range(len(names)))
        src = f"def build({args}):\n    o = _new(_cls)\n{body}    return o\n"
        ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
        ns.update({f"_s{i}": getattr(cls, n).__set__ for i, n in enumerate(names)})
        exec(src, ns)
        made = _BUILDERS[cls] = ns["build"]
    return made


def replacer(cls: type[T]) -> Callable[..., T]:
    """``replace(obj, field=value, ...)``: a copy of ``obj`` with some fields changed
    (keyword arguments only; an unknown field is a TypeError, as for ``cls``)."""
    made = _REPLACERS.get(cls)
    if made is None:
        names = _slotted_fields(cls)
        params = ", ".join(f"{n}=_KEEP" for n in names)
        body = "".join(f"    _s{i}(o, old.{n} if {n} is _KEEP else {n})\n"
                       for i, n in enumerate(names))
        src = f"def replace(old, *, {params}):\n    o = _new(_cls)\n{body}    return o\n"
        ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_KEEP": _KEEP}
        ns.update({f"_s{i}": getattr(cls, n).__set__ for i, n in enumerate(names)})
        exec(src, ns)
        made = _REPLACERS[cls] = ns["replace"]
    return made


_KEEP: Any = object()  # "this field as it was"


def defaults(cls: type) -> dict[str, Any]:
    """Each field's default (``default`` or ``default_factory()``), where it has one."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _restore(cls: type[T], values: tuple[Any, ...]) -> T:
    made = _BUILDERS.get(cls) or builder(cls)
    return made(*values)  # type: ignore[no-any-return]


def fast_pickle(cls: type[T]) -> type[T]:
    """Pickle ``cls`` as (class, field values), rebuilt with :func:`builder`: several
    times faster than the frozen dataclass's ``__getstate__`` (which calls
    ``dataclasses.fields`` per object). Replay workers send their rebuilt states to
    the parent process this way."""
    names = _slotted_fields(cls)
    values = "".join(f"self.{n}, " for n in names)
    src = f"def __reduce__(self):\n    return _restore, (_cls, ({values}))\n"
    ns: dict[str, Any] = {"_restore": _restore, "_cls": cls}
    exec(src, ns)
    cls.__reduce__ = ns["__reduce__"]  # type: ignore[method-assign]
    return cls
