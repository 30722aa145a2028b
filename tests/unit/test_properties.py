"""Properties of the pure core over random but valid contract logs (Hypothesis)."""

from __future__ import annotations

import csv
import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svmon.catalogue_files import demo_catalogue_path
from svmon.core import events as ev
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold, fold_all
from svmon.core.rules import forecast, shortfall
from svmon.core.state import ContractState, Totals
from svmon.schemas import decode_event, encode_event
from tests.unit._builders import CATALOGUE, EDITION

D = Decimal
ZERO = D(0)
# Logs are expensive to generate: 100 examples each keeps the file near 20 s.
PROPS = settings(max_examples=100, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHEAP = settings(PROPS, max_examples=200)
MEASURES = sorted(m.code for m in CATALOGUE.measures(EDITION))
PERCENT = {m.code for m in CATALOGUE.measures(EDITION) if m.unit == "%"}  # at most 100

Log = list[ev.ContractEvent]
States = dict[str, ContractState]

# ------------------------------------------------------------------ strategies

amounts = st.integers(0, 6).flatmap(
    lambda places: st.decimals(min_value=D(1).scaleb(-places), max_value=D(50_000),
                               places=places, allow_nan=False, allow_infinity=False))
percentages = st.decimals(min_value=D("0.01"), max_value=D(100), places=2)
# identifiers: printable, no spaces (drawn from a list: regex strategies are slow). The
# events' actors are the rightful parties' (svmon.core.authority): a manager's actor is
# their id, a supplier's "supplier:<id>" (at most 128 characters in all)
manager_ids = st.sampled_from(["mgr-aoife", "supplier-S01", "S02", "x", "a" * 128])
supplier_ids = st.sampled_from(["S01", "supplier-S01", "system", "x", "S.0:1_2+3", "a" * 119])
# free text: anything storable (UTF-8 encodable, so no lone surrogates, and no NUL)
chars = st.characters(codec="utf-8", exclude_characters="\x00")
texts = st.text(chars, max_size=20)
names = st.text(chars, min_size=1, max_size=20).map(lambda s: s if s.strip() else f"{s}x")
sha256s = st.binary(min_size=32, max_size=32).map(bytes.hex)
attachments = st.lists(st.builds(ev.Attachment, name=names, sha256=sha256s, uri=texts),
                       max_size=2).map(tuple)
DECISIONS = ("verify", "verify", "reject", "retract")
ACTIONS = ("submit", "submit", "submit", "decide", "decide", "tick", "amend")


@st.composite
def contract_logs(draw: st.DrawFn, cid: str = "C-001") -> Log:
    """Registration, commitments, milestones, then submissions, decisions and ticks."""
    seq = itertools.count(1)

    def eid(kind: str) -> str:
        return f"{cid}:{kind}:{next(seq)}"

    start = draw(st.dates(date(2023, 1, 1), date(2026, 12, 31)))
    end = start + timedelta(days=draw(st.integers(27, 1100)))
    now = datetime.combine(start - timedelta(days=draw(st.integers(0, 20))), time(9),
                           tzinfo=UTC)
    manager, supplier_id = draw(manager_ids), draw(supplier_ids)
    deputy = draw(st.one_of(st.just(""), manager_ids))
    managers = st.sampled_from([manager, deputy] if deputy else [manager])  # may manage
    supplier = f"supplier:{supplier_id}"
    log: Log = [ev.ContractRegistered(
        event_id=eid("registered"), contract_id=cid, occurred_at=now, actor=draw(managers),
        title=draw(names), buyer=draw(names), buyer_department=draw(texts),
        supplier_id=supplier_id, supplier_name=draw(names), start=start, end=end,
        value_gbp=draw(amounts), catalogue_edition=EDITION, manager=manager, deputy=deputy,
        reporting_cadence_days=draw(st.integers(1, 3660)))]
    measures = draw(st.lists(st.sampled_from(MEASURES), min_size=1, max_size=3, unique=True))
    targets: dict[str, Decimal] = {}
    for m in measures:
        targets[m] = draw(amounts)
        log.append(ev.CommitmentMade(event_id=eid("commit"), contract_id=cid,
                                     occurred_at=now, actor=draw(managers), measure=m,
                                     target=targets[m]))
    for m in measures:
        for _ in range(draw(st.integers(0, 2))):
            log.append(ev.MilestoneScheduled(
                event_id=eid("milestone"), contract_id=cid, occurred_at=now,
                actor=draw(managers),
                milestone_id=draw(st.sampled_from(["Q1", "Q2", "Q3", "H1"])) + f"-{m}",
                measure=m, due=draw(st.dates(start, end)),
                cumulative_target=draw(st.decimals(min_value=D("0.000001"),
                                                   max_value=targets[m], places=6))))
    evidence: list[str] = []
    for _ in range(draw(st.integers(0, 25))):
        now += timedelta(days=draw(st.integers(0, 60)), minutes=draw(st.integers(0, 600)))
        action = draw(st.sampled_from(ACTIONS))
        if action == "submit" and now.date() >= start:
            period_start = draw(st.dates(start, min(end, now.date())))
            evidence_id = eid("evidence")
            evidence.append(evidence_id)
            log.append(ev.EvidenceSubmitted(
                event_id=evidence_id, contract_id=cid, occurred_at=now, actor=supplier,
                evidence_id=evidence_id, measure=(m := draw(st.sampled_from(measures))),
                quantity=draw(percentages if m in PERCENT else amounts),
                period_start=period_start,
                period_end=draw(st.dates(period_start, min(end, now.date()))),
                description=draw(texts),
                attachments=draw(attachments)))
        elif action == "decide" and evidence:
            target = draw(st.sampled_from(evidence))
            decision = draw(st.sampled_from(DECISIONS))
            common: dict[str, Any] = {"event_id": eid(decision), "contract_id": cid,
                                      "occurred_at": now,
                                      "actor": supplier if decision == "retract"
                                      else draw(managers),
                                      "evidence_id": target}
            if decision == "verify":
                log.append(ev.EvidenceVerified(**common, note=draw(texts)))
            elif decision == "reject":
                log.append(ev.EvidenceRejected(**common, reason=draw(names)))
            else:
                log.append(ev.EvidenceRetracted(**common, reason=draw(texts)))
        elif action == "amend":  # a contract variation that raises a target
            m = draw(st.sampled_from(measures))
            targets[m] += draw(amounts)
            log.append(ev.CommitmentMade(event_id=eid("amend"), contract_id=cid,
                                         occurred_at=now, actor=draw(managers), measure=m,
                                         target=targets[m]))
        else:
            log.append(ev.ClockTicked(event_id=eid("tick"), contract_id=cid,
                                      occurred_at=now, at=now))
    if draw(st.booleans()):  # sometimes run the clock past the end of the term
        after = datetime.combine(end + timedelta(days=draw(st.integers(1, 60))), time(0),
                                 tzinfo=UTC)
        log.append(ev.ClockTicked(event_id=eid("tick"), contract_id=cid,
                                  occurred_at=max(after, now), at=max(after, now)))
    return log


def fold_log(log: Log, states: States | None = None) -> tuple[States, list[ev.Derived]]:
    """As the pipeline folds: fold_all, whose event-id gate skips copies it has seen."""
    return fold_all(log, CATALOGUE, states=states)


def fold_each(log: Log) -> tuple[States, list[ev.Derived]]:
    """fold() alone, event by event (no gate): redeliveries reach the fold itself."""
    states: States = {}
    derived: list[ev.Derived] = []
    for e in log:
        try:
            s, d = fold(states.get(e.contract_id, ContractState(e.contract_id)), e, CATALOGUE)
        except InvalidInput:
            continue
        states[e.contract_id] = s
        derived += d
    return states, derived


def totals(states: States) -> dict[tuple[str, str], Totals]:
    return {(cid, m): t for cid, s in states.items() for m, t in s.totals.items()}


# ------------------------------------------------------------------- rules


non_negative = st.decimals(min_value=0, max_value=D("1e9"), places=4)


@CHEAP
@given(target=non_negative, delivered=non_negative)
def test_shortfall_is_what_is_still_owed(target: Decimal, delivered: Decimal) -> None:
    owed = shortfall(target, delivered)
    assert owed == max(ZERO, target - delivered)
    assert owed >= 0
    assert owed + min(target, delivered) == target
    assert (owed == 0) == (delivered >= target)


@CHEAP
@given(delivered=non_negative, start=st.dates(date(2020, 1, 1), date(2030, 1, 1)),
       days=st.integers(0, 2000), after=st.integers(0, 400))
def test_forecast_after_the_term_is_the_delivery(delivered: Decimal, start: date, days: int,
                                                 after: int) -> None:
    end = start + timedelta(days=days)
    assert forecast(delivered, start, end, end + timedelta(days=1 + after)) == delivered
    assert forecast(delivered, start, end, start) is None


def _proxies_from_the_file() -> dict[tuple[str, str], str]:
    with demo_catalogue_path().open(newline="", encoding="utf-8") as fh:
        return {(r["edition"], r["code"]): r["proxy_gbp"] for r in csv.DictReader(fh)}


PROXIES = _proxies_from_the_file()


@CHEAP
@given(key=st.sampled_from(sorted(PROXIES)), units=amounts, more=amounts)
def test_pounds_are_units_times_the_editions_proxy(key: tuple[str, str], units: Decimal,
                                                   more: Decimal) -> None:
    m = CATALOGUE.measure(*key)
    proxy = PROXIES[key]
    expected = units * D(proxy) if proxy else ZERO
    assert m.value_gbp(units) == expected
    assert m.value_gbp(units + more) == m.value_gbp(units) + m.value_gbp(more)


# ---------------------------------------------------------------- the codec


@PROPS
@given(log=contract_logs())
def test_every_generated_event_round_trips_through_the_wire(log: Log) -> None:
    for e in log:
        back = decode_event(encode_event(e))
        assert back == e
        assert type(back) is type(e)


# ---------------------------------------------------------------- the fold


def _chunks(log: Log, cuts: list[int]) -> list[Log]:
    bounds = [0, *sorted(c % (len(log) + 1) for c in cuts), len(log)]
    return [log[a:b] for a, b in itertools.pairwise(bounds)]


@PROPS
@given(log=contract_logs(), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_batching_does_not_change_the_result(log: Log, cuts: list[int]) -> None:
    whole_states, whole_derived = fold_log(log)
    states: States = {}
    derived: list[ev.Derived] = []
    for chunk in _chunks(log, cuts):
        states, more = fold_log(chunk, states)
        derived += more
    assert states == whole_states
    assert derived == whole_derived


@PROPS
@given(log=contract_logs())
def test_every_event_delivered_twice_is_the_same_as_once(log: Log) -> None:
    once_states, once_derived = fold_log(log)
    doubled = [e for e in log for _ in (1, 2)]
    for replay in (fold_log, fold_each):
        twice_states, twice_derived = replay(doubled)
        assert totals(twice_states) == totals(once_states)
        assert twice_states == once_states
        assert twice_derived == once_derived


@PROPS
@given(log=contract_logs(), cut=st.integers(0, 10_000))
def test_redelivered_suffix_changes_nothing(log: Log, cut: int) -> None:
    once_states, once_derived = fold_log(log)
    suffix = log[cut % (len(log) + 1):]
    for replay in (fold_log, fold_each):
        again_states, again_derived = replay(log + suffix)
        assert totals(again_states) == totals(once_states)
        assert again_states == once_states
        assert again_derived == once_derived  # the redelivery derives nothing new
    # after a restart (state kept, event-id gate lost) the fold alone must hold the line
    restarted, more = fold_log(suffix, dict(once_states))
    assert restarted == once_states
    assert more == []


@PROPS
@given(log=contract_logs())
def test_totals_are_the_sums_of_evidence_by_status(log: Log) -> None:
    states, _ = fold_log(log)
    [s] = states.values()
    for m in set(s.totals) | {r.measure for r in s.evidence.values()}:
        records = [r for r in s.evidence.values() if r.measure == m]
        claimed = sum((r.quantity for r in records if r.status in ("submitted", "verified")),
                      ZERO)
        verified = sum((r.quantity for r in records if r.status == "verified"), ZERO)
        assert s.totals_for(m).claimed == claimed
        assert s.totals_for(m).verified == verified
        assert ZERO <= s.totals_for(m).verified <= s.totals_for(m).claimed
    # every submission was accepted and is on record, whatever became of it
    submitted = {e.evidence_id: e.quantity for e in log if isinstance(e, ev.EvidenceSubmitted)}
    assert {k: r.quantity for k, r in s.evidence.items()} == submitted
    assert all(r.status in ("submitted", "verified", "rejected", "retracted")
               for r in s.evidence.values())


def _interleave(a: Log, b: Log, picks: list[bool]) -> Log:
    ia, ib = iter(a), iter(b)
    return [next(ia) if pick else next(ib) for pick in picks]


@st.composite
def two_contracts(draw: st.DrawFn) -> tuple[Log, Log, Log]:
    a = draw(contract_logs("C-001"))
    b = draw(contract_logs("C-002"))
    picks = draw(st.permutations([True] * len(a) + [False] * len(b)))
    return a, b, _interleave(a, b, picks)


@PROPS
@given(logs=two_contracts())
def test_contracts_do_not_depend_on_interleaving(logs: tuple[Log, Log, Log]) -> None:
    a, b, merged = logs
    states, derived = fold_log(merged)
    a_states, a_derived = fold_log(a)
    b_states, b_derived = fold_log(b)
    assert states == {**a_states, **b_states}
    assert totals(states) == {**totals(a_states), **totals(b_states)}
    assert [x for x in derived if x.contract_id == "C-001"] == a_derived
    assert [x for x in derived if x.contract_id == "C-002"] == b_derived
