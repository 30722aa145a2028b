"""The HTTP API applies its own OpenAPI document: every request body is validated
against the schema the document publishes for it, before the wire schema and the
contract's rules see it.

So the document and the server cannot disagree in either direction. What the
document refuses, the server refuses, as 422 naming the field, what was expected and
what came (:class:`DocumentError`). What the document accepts reaches the wire
schema and the fold, whose remaining refusals are rules JSON Schema cannot state (a
period inside the contract's term, the measure's unit, evidence not yet decided, at
most six decimal places, a period that does not end before it starts), answered 409.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped]

from svmon.core.errors import SchemaError


class DocumentError(SchemaError):
    """A request, or a part of it, that breaks the API document's schema."""


def _field(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _expected(err: Any) -> str:
    """What the failing part of the schema asks for, in words."""
    schema = err.schema if isinstance(err.schema, dict) else {}
    if isinstance(schema.get("description"), str) and err.validator not in (
            "required", "additionalProperties"):
        return str(schema["description"])
    v, value = err.validator, err.validator_value
    if v == "type":
        return f"of JSON type {value}"
    if v == "enum":
        return f"one of {', '.join(map(str, value))}"
    if v == "pattern":
        return f"text matching {value}"
    if v in ("minLength", "maxLength"):
        return f"text of {'at least' if v == 'minLength' else 'at most'} {value} characters"
    if v in ("minItems", "maxItems"):
        return f"a list of {'at least' if v == 'minItems' else 'at most'} {value} items"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most",
                 "exclusiveMinimum": "greater than", "exclusiveMaximum": "less than"}
        return f"{words[v]} {value}"
    return f"valid against the document's schema ({v})"


def document_error(err: Any, prefix: tuple[Any, ...] = ()) -> DocumentError:
    """A jsonschema ValidationError as the API's error: the field, expected, got."""
    path = (*prefix, *err.absolute_path)
    instance = err.instance
    if err.validator == "required":
        missing = [n for n in err.validator_value
                   if isinstance(instance, dict) and n not in instance]
        return DocumentError(_field((*path, missing[0] if missing else "?")), "present",
                             None)
    if err.validator == "additionalProperties" and isinstance(instance, dict):
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(str(k) for k in instance if k not in known)
        name = extra[0] if extra else "?"
        return DocumentError(_field((*path, name)), f"one of the fields {known}", name)
    field = _field(path) or "body"
    return DocumentError(field, _expected(err), instance)


def _is_integer(checker: Any, instance: Any) -> bool:
    """JSON Schema's integer: any number with no fractional part, so ``162.0`` is one.
    Bodies are parsed with Decimal for exactness, which jsonschema's own checker only
    counts as a number."""
    if isinstance(instance, Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return bool(Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer"))


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


class DocumentGate:
    """Validators of the document's request bodies, by operation id."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self._validators = {op: _Validator(s) for op, s in schemas.items()}

    def errors(self, op: str, body: Any, prefix: tuple[Any, ...] = ()
               ) -> list[DocumentError]:
        """Every way ``body`` breaks operation ``op``'s schema, first field first."""
        found = sorted(self._validators[op].iter_errors(body),
                       key=lambda e: [str(p) for p in e.absolute_path])
        return [document_error(e, prefix) for e in found]

    def check(self, op: str, body: Any) -> None:
        """Raise the first way ``body`` breaks the schema (nothing if it fits)."""
        found = self.errors(op, body)
        if found:
            raise found[0]
