"""Does the database hold exactly what a replay of the log says? (0 lost, 0 counted twice)

The integration and fault tests compare the worker's projections with the pure fold of
the events they sent: totals per contract and measure, the derived notices, and one
journal row per distinct event.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from svmon.catalogue_files import load_catalogue
from svmon.core import events as ev
from svmon.core.fold import fold_all
from svmon.models.repository import Repository
from svmon.models.tables import NoticeRow


def journalled(repo: Repository) -> int:
    c = repo.counts()
    return c["journal"] + c["dead_letters"]


def _expected(events: list[ev.ContractEvent]) -> tuple[dict[tuple[str, str], tuple[Any, ...]],
                                                       set[str]]:
    """(contract, measure) -> (target, claimed, verified, verified £) and derived ids."""
    cat = load_catalogue()
    states, derived = fold_all(events, cat)
    totals = {}
    for cid, s in states.items():
        assert s.terms is not None
        for m in s.measures():
            t = s.totals_for(m)
            c = s.commitments.get(m)
            proxy = cat.measure(s.terms.catalogue_edition, m)
            totals[(cid, m)] = (c.target if c else None, t.claimed, t.verified,
                                proxy.value_gbp(t.verified))
    return totals, {d.derived_id for d in derived}


def _actual(repo: Repository) -> tuple[dict[tuple[str, str], tuple[Any, ...]], set[str]]:
    report = repo.report()
    totals = {}
    for c in report["contracts"]:
        for m in c["measures"]:
            totals[(c["contract_id"], m["measure"])] = (
                Decimal(m["target"]) if m["target"] is not None else None,
                Decimal(m["claimed"]), Decimal(m["verified"]), Decimal(m["verified_gbp"]))
    with repo.engine.connect() as conn:
        notices = {r[0] for r in conn.execute(select(NoticeRow.__table__.c.derived_id))}
    return totals, notices


def assert_matches_fold(repo: Repository, events: list[ev.ContractEvent]) -> None:
    want_totals, want_notices = _expected(events)
    got_totals, got_notices = _actual(repo)
    assert got_totals == want_totals
    assert got_notices == want_notices
    assert repo.counts()["journal"] == len({e.event_id for e in events})


def tally(repo: Repository, events: list[ev.ContractEvent]) -> dict[str, int]:
    """The figures a fault test prints, against a replay of the events sent:
    ``lost``: events sent but not journalled; ``duplicated``: (contract, measure) totals
    above the replay's (something counted twice; the journal's unique key already
    refuses a second row for an event); ``wrong_totals``: totals that differ at all."""
    keys = {(r["contract_id"], r["event_id"]) for r in repo.journal_rows()}
    sent = {(e.contract_id, e.event_id) for e in events}
    want, _ = _expected(events)
    got, _ = _actual(repo)

    def over(k: tuple[str, str]) -> bool:
        w, g = want.get(k), got.get(k)
        return w is None or (g is not None and any(
            b > a for a, b in zip(w[1:], g[1:], strict=True)))

    return {"sent": len(sent), "journalled": len(keys & sent), "lost": len(sent - keys),
            "duplicated": sum(1 for k in got if over(k)),
            "wrong_totals": sum(1 for k in want.keys() | got.keys()
                                if want.get(k) != got.get(k))}
