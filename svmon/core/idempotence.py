"""The log's rule about event ids: one id, one event, one decision.

An event id is unique within its contract. The same event sent again is a duplicate
and changes nothing; a different event under an id already used is refused; an event
that was refused stays refused when it comes again from the same actor (a redelivery
after a crash must not turn a dead letter into an accepted event because the state
moved on meanwhile). A refusal belongs to the actor whose event was refused: a forged
event under another party's id (say a supplier's ``CommitmentMade`` under the id the
manager is about to use) must not make the rightful party's event a refused one.
The live pipeline seeds a gate from the journal and the dead letters; a replay grows
one as it reads, so both decide every record the same way.
"""

from __future__ import annotations

from typing import Literal

from svmon.core.errors import NotYetKnown, RejectedEvent
from svmon.core.events import ContractEvent

Key = tuple[str, str]
ANY_ACTOR = None  # a refusal whose actor is unknown (its record unreadable): any actor's


def key_of(e: ContractEvent) -> Key:
    return (e.contract_id, e.event_id)


class EventGate:
    def __init__(self) -> None:
        self._accepted: dict[Key, int] = {}  # key -> hash of the event (in memory only)
        self._refused: set[tuple[str, str, str | None]] = set()  # (contract, event id, actor)

    def seed_accepted(self, e: ContractEvent) -> None:
        self._accepted[key_of(e)] = hash(e)

    def known(self) -> set[Key]:
        """The keys seeded as accepted before (journalled already)."""
        return set(self._accepted)

    def seed_refused(self, key: Key, actor: str | None = ANY_ACTOR) -> None:
        """``key`` was refused before when sent by ``actor`` (``ANY_ACTOR``: by whoever
        sends it, when the refused record did not say who it was from)."""
        if key not in self._accepted:
            self._refused.add((*key, actor))

    def check(self, e: ContractEvent) -> Literal["new", "duplicate"]:
        """Classify ``e``; raises :class:`RejectedEvent` when it must be refused."""
        k = key_of(e)
        seen = self._accepted.get(k)
        if seen is not None:
            if seen == hash(e):
                return "duplicate"
            raise RejectedEvent("event_id", "an id not already used for a different event "
                                "on this contract", e.event_id, contract_id=e.contract_id,
                                event_id=e.event_id)
        if (*k, e.actor) in self._refused or (*k, ANY_ACTOR) in self._refused:
            raise RejectedEvent("event_id", "an id not refused before (send a corrected event "
                                "under a new id)", e.event_id, contract_id=e.contract_id,
                                event_id=e.event_id)
        return "new"

    def accepted(self, e: ContractEvent) -> None:
        self._accepted[key_of(e)] = hash(e)

    def refused(self, e: ContractEvent, err: Exception | None = None) -> None:
        """Remember a refusal (an id already accepted keeps its accepted event). A
        :class:`NotYetKnown` refusal is not remembered: the event may fit later."""
        if isinstance(err, NotYetKnown):
            return
        if key_of(e) not in self._accepted:
            self._refused.add((*key_of(e), e.actor))
