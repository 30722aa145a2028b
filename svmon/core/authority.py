"""Who may assert what on a contract's log: the one table of authority.

The HTTP service checks it before it stores a request, and the fold checks it again
for every event, whatever channel the event came by (defence in depth: anyone who can
write to the events topic could otherwise act as anyone). Pure, standard library and
the core's own event types only.

Actors are the strings the API writes from an authenticated identity
(:attr:`svmon.models.ingest.Principal.actor`):

* ``system``: the system itself (it keeps time);
* ``supplier:<supplier id>``: a supplier;
* ``<manager id>``: a contract manager, by the bare id alerts name them by (party ids
  hold no ``:``, so no manager id reads as a supplier's actor).

The rules:

=====================  ========  ============================================
event                  kind      which one
=====================  ========  ============================================
ContractRegistered     manager   the contract's manager or deputy (for a new
                                 contract: the manager or deputy it names)
CommitmentMade         manager   the contract's manager or deputy
MilestoneScheduled     manager   the contract's manager or deputy
EvidenceVerified       manager   the contract's manager or deputy
EvidenceRejected       manager   the contract's manager or deputy
EvidenceSubmitted      supplier  the contract's own supplier
EvidenceRetracted      supplier  the contract's own supplier
ClockTicked            system    ``system``
=====================  ========  ============================================
"""

from __future__ import annotations

from typing import Literal

from svmon.core import events as ev
from svmon.core.state import ContractState, Terms

Kind = Literal["manager", "supplier", "system"]

SYSTEM_ACTOR = "system"
SUPPLIER_PREFIX = "supplier:"

# which kind of actor may emit each event type
SENDERS: dict[type[ev.ContractEvent], Kind] = {
    ev.ContractRegistered: "manager",
    ev.CommitmentMade: "manager",
    ev.MilestoneScheduled: "manager",
    ev.EvidenceVerified: "manager",
    ev.EvidenceRejected: "manager",
    ev.EvidenceSubmitted: "supplier",
    ev.EvidenceRetracted: "supplier",
    ev.ClockTicked: "system",
}


def actor_for(kind: str, party: str = "") -> str:
    """The actor string of a party of ``kind`` (as the API writes it on events)."""
    if kind == "system":
        return SYSTEM_ACTOR
    return f"{SUPPLIER_PREFIX}{party}" if kind == "supplier" else party


def parse_actor(actor: str) -> tuple[str, str]:
    """(kind, party) of an actor string; kind ``"unknown"`` when it names nobody."""
    if actor == SYSTEM_ACTOR:
        return "system", ""
    if actor.startswith(SUPPLIER_PREFIX):
        party = actor[len(SUPPLIER_PREFIX):]
        return ("supplier", party) if party else ("unknown", actor)
    if not actor or ":" in actor or not actor.isprintable() or actor != actor.strip():
        return "unknown", actor
    return "manager", actor


def manages(party: str, terms: Terms | ev.ContractRegistered) -> bool:
    """Is ``party`` the contract's manager or its deputy?"""
    return bool(party) and party in (terms.manager, terms.deputy)


def supplies(party: str, terms: Terms) -> bool:
    """Is ``party`` the contract's own supplier?"""
    return bool(party) and party == terms.supplier_id


def _managers(terms: Terms | ev.ContractRegistered) -> str:
    who = f"manager {terms.manager!r}"
    return f"{who} or deputy {terms.deputy!r}" if terms.deputy else who


def refusal(e: ev.ContractEvent, terms: Terms | None) -> str | None:
    """What actor ``e`` needed when its actor may not emit it, else ``None``.

    ``terms`` are the contract's terms before ``e`` (``None`` when it is not
    registered yet). Without terms only the actor's kind is judged (except for a
    registration, judged by the manager it names): which party may act is known
    once the registration is.
    """
    kind = SENDERS.get(type(e))
    actor = e.actor
    if terms is not None:  # the common case first: the rightful party
        if kind == "supplier":
            if terms.supplier_id and actor[len(SUPPLIER_PREFIX):] == terms.supplier_id \
                    and actor.startswith(SUPPLIER_PREFIX):
                return None
        elif kind == "manager" and actor and actor in (terms.manager, terms.deputy) \
                and parse_actor(actor)[0] == "manager":
            return None
    name = type(e).__name__
    if kind is None:
        return f"an actor allowed to send {name} (no one may)"
    got, party = parse_actor(actor)
    if kind == "system":
        return None if got == "system" else f"{SYSTEM_ACTOR!r} (only the system sends {name})"
    basis = terms if terms is not None else e if isinstance(e, ev.ContractRegistered) else None
    if got == kind:
        if kind == "supplier" and (terms is None or supplies(party, terms)):
            return None
        if kind == "manager" and (basis is None or manages(party, basis)):
            return None
    if kind == "supplier":
        who = "the contract's supplier, as 'supplier:<supplier id>'" if terms is None else \
            f"the contract's own supplier, {actor_for('supplier', terms.supplier_id)!r}"
    elif basis is None:
        who = "the contract's manager or deputy, by their id"
    else:
        who = f"{'the' if terms is not None else 'the new'} contract's {_managers(basis)}"
    this = "" if got == kind else f"; this actor is {_article(got)}"
    return f"{who} (only they send {name}{this})"


def _article(kind: str) -> str:
    return {"manager": "a manager", "supplier": "a supplier", "system": "the system"}.get(
        kind, "no known party")


def already_applied(s: ContractState, e: ev.ContractEvent) -> bool:
    """Has ``s`` applied ``e`` already? A redelivered event is not judged again (its
    authority was judged when it was applied, before any amendment of the terms)."""
    if isinstance(e, ev.ContractRegistered):
        return s.terms is not None and e.event_id in s.terms.event_ids
    if isinstance(e, ev.CommitmentMade):
        c = s.commitments.get(e.measure)
        return c is not None and e.event_id in c.event_ids
    if isinstance(e, ev.MilestoneScheduled):
        m = s.milestones.get(e.milestone_id)
        return m is not None and e.event_id in m.event_ids
    if isinstance(e, ev.EvidenceSubmitted | ev.EvidenceVerified | ev.EvidenceRejected
                  | ev.EvidenceRetracted):
        r = s.evidence.get(e.evidence_id)
        return r is not None and e.event_id in r.event_ids
    return False
