"""Issue #22: the performance notice and the replay's delivery cut on delivery time.

Worked examples with the paper calculation in the docstrings; the pure core only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from svmon.audit.axes import delivered_by_day, delivered_totals, delivery_axis_text, record_axis
from svmon.audit.exports import performance_notice
from svmon.audit.replay import cut_at_delivery, rebuild
from svmon.core import events as ev
from svmon.core.rules import expected_by
from tests.unit._builders import (
    CATALOGUE,
    apply,
    committed,
    registered,
    rejected,
    submitted,
    verified,
)


def _notice_log() -> list[ev.ContractEvent]:
    """Term 2025-01-01..2025-12-31 (364 days from start to end), 364 volunteering hours
    committed, no milestones: the trajectory expects 90 hours by 1 April (90 days in).

    - E1, January-March, 60 h, verified 5 April: counts in full by 1 April.
    - E2, 15 March-13 April (30 days), 30 h, verified 15 April: 18 of its 30 days are on
      or before 1 April, so 30 x 18/30 = 18 h count.
    - E3, April-June, 91 h, verified 3 July: a later period, never counts for 1 April.
    - E4, February, 12 h, rejected 1 May: the decision as known now removes it.
    Delivered by 1 April: 60 + 18 = 78 h of 90 expected (0.867): "requires improvement".
    Rated on today's totals, as before, it was 60 + 30 + 91 = 181 of 90: "good".
    """
    return [registered(), committed("L-VOL", "364"),
            submitted("E4", "L-VOL", "12", "2025-02-01", "2025-02-28", "2025-03-05"),
            submitted("E1", "L-VOL", "60", "2025-01-01", "2025-03-31", "2025-04-03"),
            verified("E1", "2025-04-05"),
            submitted("E2", "L-VOL", "30", "2025-03-15", "2025-04-13", "2025-04-14"),
            verified("E2", "2025-04-15"),
            rejected("E4", "2025-05-01"),
            submitted("E3", "L-VOL", "91", "2025-04-02", "2025-06-30", "2025-07-02"),
            verified("E3", "2025-07-03")]


def test_performance_notice_rates_delivery_up_to_the_assessment_date() -> None:
    s, _ = apply(_notice_log())
    on = date(2025, 4, 1)
    assert s.terms is not None
    assert expected_by(Decimal(364), s.terms.start, s.terms.end, [], on) == 90
    known = datetime(2025, 7, 10, 12, tzinfo=UTC)
    notice = performance_notice(s, CATALOGUE, on, known_at=known)
    (kpi,) = notice["kpis"]
    assert kpi["kpi"] == "L-VOL" and kpi["expected_by_now"] == "90.00"
    assert kpi["verified"] == "78"  # 60 + 30 x 18/30; E3's 91 h are for later periods
    assert kpi["verified_for_later_periods"] == "103"  # 181 verified in all - 78
    assert kpi["rating"] == "requires improvement"  # 78/90 = 0.867; 181/90 said "good"
    assert notice["time_axes"] == {
        "delivery": "delivery time: evidence periods up to 2025-04-01 (a period spanning "
                    "it counted pro rata by days)",
        "record": "record time: events recorded up to 2025-07-10T12:00:00+00:00"}


def test_performance_notice_on_a_date_before_any_evidence_period_rates_nothing_delivered(
        ) -> None:
    """The reported defect: a notice dated before the first evidence period must not
    count that evidence (C-005's D-DIS showed 3 verified and "good")."""
    s, _ = apply(_notice_log())
    (kpi,) = performance_notice(s, CATALOGUE, date(2024, 12, 31))["kpis"]
    assert (kpi["verified"], kpi["expected_by_now"], kpi["rating"]) == ("0", "0.00", "other")
    (kpi,) = performance_notice(s, CATALOGUE, date(2025, 1, 31))["kpis"]
    # E1 (January-March, 60 h) spans 31 January: 60 x 31/90 = 20.666667; 30 expected
    assert kpi["verified"] == "20.666667" and kpi["rating"] == "inadequate"


def test_a_notice_on_the_term_end_counts_everything_verified() -> None:
    s, _ = apply(_notice_log())
    (kpi,) = performance_notice(s, CATALOGUE, date(2025, 12, 31))["kpis"]
    assert kpi["verified"] == str(s.totals_for("L-VOL").verified) == "181"
    assert kpi["verified_for_later_periods"] == "0"


def test_delivery_cut_of_a_state_keeps_claimed_and_verified_by_the_same_rule() -> None:
    s, _ = apply(_notice_log()[:7])  # E4 still submitted (claimed), E1 and E2 verified
    t = delivered_totals(s, "L-VOL", date(2025, 3, 31))
    # claimed: E4 12 + E1 60 + E2 30 x 17/30 = 89; verified: 60 + 17
    assert (t.claimed, t.verified) == (Decimal(89), Decimal(77))
    cut = delivered_by_day(s, date(2025, 3, 14))
    # E1 60 x 73/90 = 48.666667 (E2 starts 15 March: not listed, not counted)
    assert cut.totals_for("L-VOL").verified == Decimal("48.666667")
    assert sorted(cut.evidence) == ["E1", "E4"]
    assert cut.milestones == s.milestones and cut.by_period == s.by_period


def test_replay_cut_changes_only_the_states() -> None:
    rebuilt = rebuild(_notice_log(), CATALOGUE)
    cut = cut_at_delivery(rebuilt, date(2025, 4, 1))
    assert cut.events == rebuilt.events and cut.derived == rebuilt.derived
    assert cut.states["C-001"].totals_for("L-VOL").verified == 78
    assert rebuilt.states["C-001"].totals_for("L-VOL").verified == 181


def test_axis_words() -> None:
    assert record_axis(None) == "record time: every event recorded (as known now)"
    assert delivery_axis_text(None) == "delivery time: every evidence period"
