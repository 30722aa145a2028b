"""Exceptions of the social value monitor.

One root (:class:`SvmonError`); bad input subclasses :class:`ValueError` as well, so
callers that only know the standard library still catch it. Every message names the
field, what was expected, what came, and which contract or event it concerns.

The refusals of a request (:class:`Unauthorized`, :class:`NotAllowed`,
:class:`NotFound`, :class:`Conflict`) are here too: the stores raise some of them and
the API service the others, and the HTTP layer maps each to its status, so they live
below both.
"""

from __future__ import annotations

from typing import Any


class SvmonError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInput(SvmonError, ValueError):
    """Input that cannot be accepted, with structured fields for machines."""

    def __init__(
        self,
        field: str,
        expected: str,
        got: Any,
        *,
        contract_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        self.contract_id = contract_id
        self.event_id = event_id
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.contract_id:
            where.append(f"contract {self.contract_id!r}")
        if self.event_id:
            where.append(f"event {self.event_id!r}")
        suffix = f" ({', '.join(where)})" if where else ""
        got = self.got
        if isinstance(got, str) and len(got) > 120:
            got = got[:117] + "..."
        return f"{self.field!r} must be {self.expected} (got {got!r}){suffix}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "field": self.field,
            "expected": self.expected,
            "got": repr(self.got)[:200],
            "contract_id": self.contract_id,
            "event_id": self.event_id,
            "message": str(self),
        }


class SchemaError(InvalidInput):
    """A message that does not match the wire schema (decode time, no state needed)."""


class RejectedEvent(InvalidInput):
    """A well-formed event that the contract's state cannot accept.

    For example evidence for an unknown contract or measure, a milestone outside the
    contract term, or verifying evidence that was already retracted.
    """


class NotYetKnown(RejectedEvent):
    """An event that refers to something its contract's log does not hold yet: the
    contract's registration, the evidence it decides, the commitment a milestone needs.

    Unlike other refusals it does not stick to the event id: the same event may be
    accepted once what it refers to has arrived. After the embedded broker loses its
    log, the inbox relay sends again what was lost, and a later event can overtake the
    earlier one it depends on; it is redelivered until it fits.
    """


class UnknownMeasure(InvalidInput):
    """A measure code that the catalogue edition does not hold."""


class Conflict(InvalidInput):
    """An id already used for something else: an event id on this contract for a
    different request, or an evidence id submitted before."""


class NotAllowed(SvmonError, PermissionError):
    """The actor may not do this (for example acknowledge another manager's alert)."""


class NotFound(SvmonError, LookupError):
    """No such contract, evidence or event (that this party may see)."""


class Unauthorized(SvmonError):
    """No token, or a token that is unknown or revoked."""
