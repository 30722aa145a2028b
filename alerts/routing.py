"""Who hears about what, per contract (pure)."""

from __future__ import annotations

from svmon.core.state import Terms


def recipients_for(kind: str, terms: Terms) -> list[str]:
    """The contract's people for an alert kind: the manager always; the supplier's
    contact for rejected evidence and met targets. The deputy is for escalation."""
    people = [terms.manager]
    if kind in ("EvidenceRejected", "TargetMet"):
        people.append(terms.supplier_contact)
    return [p for i, p in enumerate(people) if p and p not in people[:i]]


def escalation_recipients(manager: str, deputy: str) -> list[str]:
    """Who hears about an alert the manager left unacknowledged: the deputy, if any."""
    return [deputy] if deputy and deputy != manager else []
