"""Pure rules: shortfall, target trajectory and forecast.

Functions of numbers and dates only; the fold and the read side both call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal
from itertools import pairwise
from typing import Literal

ZERO = Decimal(0)


def canonical(d: Decimal) -> Decimal:
    """The same number without trailing zeros (1.500000 -> 1.5, 1E+2 -> 100). Python
    prints a small one with an exponent (6E-7); format it with ``"f"`` to show it."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


Rating = Literal["good", "approaching target", "requires improvement", "inadequate", "other"]


@dataclass(frozen=True, slots=True)
class RatingThresholds:
    """Delivered ÷ expected-by-now at or above which each rating applies.

    The four ratings (and "other") are those of a Procurement Act 2023 contract
    performance notice; the thresholds are the contracting authority's to set.
    """

    good: Decimal = Decimal("1.0")
    approaching: Decimal = Decimal("0.9")
    requires_improvement: Decimal = Decimal("0.7")


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds for the derived facts (global defaults; per contract later)."""

    # At risk when forecast < target × at_risk_threshold ...
    at_risk_threshold: Decimal = Decimal("0.9")
    # ... once at least this fraction of the term has elapsed (enough history).
    min_elapsed_fraction: Decimal = Decimal("0.2")
    # Delivery is reported in arrears: suppliers report a period after it ends and
    # managers need time to verify. A milestone is judged this many days after its
    # due date, and a forecast projects from delivery as at this many days ago.
    reporting_lag_days: int = 30
    # KPI ratings (Procurement Act 2023 performance notices): a change is announced.
    rating: RatingThresholds = RatingThresholds()


    def with_overrides(self, overrides: tuple[tuple[str, Decimal], ...]) -> Policy:
        """This policy with a contract's own thresholds (keys in ``POLICY_KEYS``)."""
        if not overrides:
            return self
        o = dict(overrides)
        rating = RatingThresholds(
            good=o.get("rating_good", self.rating.good),
            approaching=o.get("rating_approaching", self.rating.approaching),
            requires_improvement=o.get("rating_requires_improvement",
                                       self.rating.requires_improvement))
        return Policy(
            at_risk_threshold=o.get("at_risk_threshold", self.at_risk_threshold),
            min_elapsed_fraction=o.get("min_elapsed_fraction", self.min_elapsed_fraction),
            reporting_lag_days=int(o.get("reporting_lag_days", self.reporting_lag_days)),
            rating=rating)


DEFAULT_POLICY = Policy()
POLICY_KEYS = ("at_risk_threshold", "min_elapsed_fraction", "reporting_lag_days",
               "rating_good", "rating_approaching", "rating_requires_improvement")


def rating_for(delivered: Decimal, expected: Decimal,
               thresholds: RatingThresholds = RatingThresholds()) -> Rating:
    """The KPI rating of delivery against what the trajectory expects by now.

    "other" when nothing is expected yet (no basis for a rating).
    """
    if expected <= 0:
        return "other"
    ratio = delivered / expected
    if ratio >= thresholds.good:
        return "good"
    if ratio >= thresholds.approaching:
        return "approaching target"
    if ratio >= thresholds.requires_improvement:
        return "requires improvement"
    return "inadequate"


def shortfall(target: Decimal, delivered: Decimal) -> Decimal:
    """How much is still owed: ``max(0, target − delivered)``."""
    return max(ZERO, target - delivered)


def term_days(start: date, end: date) -> int:
    """Days in the contract term, counting both ends (a one-day term has 1)."""
    return (end - start).days + 1


def elapsed_days(start: date, end: date, today: date) -> int:
    """Whole days of the term completed before ``today`` begins (0 … term_days)."""
    return max(0, min(term_days(start, end), (today - start).days))


def forecast(delivered: Decimal, start: date, end: date, today: date) -> Decimal | None:
    """Linear projection of end-of-term delivery from delivery so far.

    ``None`` before the term starts (nothing to project from).
    """
    done = elapsed_days(start, end, today)
    if done == 0:
        return None
    return delivered * term_days(start, end) / done


def elapsed_fraction(start: date, end: date, today: date) -> Decimal:
    return Decimal(elapsed_days(start, end, today)) / term_days(start, end)


# ------------------------------------------------------------------ milestones

MilestoneJudgement = Literal["met", "met late", "partially met", "not met"]
MET = frozenset({"met", "met late"})
# How close each judgement is to "met" (late evidence can only raise it).
JUDGEMENT_RANK = {"not met": 0, "partially met": 1, "met late": 2, "met": 3}
# A pro rata share of evidence is rounded half-even to this exponent (6 decimal places),
# so that sums of shares are exact and do not depend on the order they are added in.
SHARE_EXPONENT = Decimal("0.000001")
_SHARE_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)  # not the thread's context


def delivered_by(quantity: Decimal, period_start: date, period_end: date, due: date
                 ) -> Decimal:
    """The part of one piece of evidence delivered on or before ``due`` (delivery time).

    Evidence whose period ends on or before ``due`` counts in full, evidence whose period
    starts after it not at all; a period spanning ``due`` counts pro rata by days, both
    ends included: ``quantity × days(period_start..due) ÷ days(period_start..period_end)``,
    computed in Decimal (28 significant digits) and rounded half-even to 6 decimal
    places (``SHARE_EXPONENT``).
    """
    if period_end <= due:
        return quantity
    if period_start > due:
        return ZERO
    within = (due - period_start).days + 1
    days = (period_end - period_start).days + 1
    c = _SHARE_CONTEXT
    return c.divide(c.multiply(quantity, Decimal(within)), Decimal(days)).quantize(
        SHARE_EXPONENT, context=c)


def milestone_judgement(target: Decimal, delivered: Decimal, on_time: Decimal
                        ) -> MilestoneJudgement:
    """A due milestone's status from verified delivery towards it (delivery time).

    ``delivered`` counts every verified piece of evidence for periods up to the due date
    (:func:`delivered_by`), ``on_time`` only those verified by the milestone's first
    judgement (so ``on_time <= delivered``). "met": the target was reached with evidence
    known at the first judgement; "met late": only with evidence recorded after it;
    "partially met": something but less than the target; "not met": nothing.
    """
    if on_time >= target:
        return "met"
    if delivered >= target:
        return "met late"
    if delivered > 0:
        return "partially met"
    return "not met"


def expected_by(
    target: Decimal,
    start: date,
    end: date,
    milestones: Sequence[tuple[date, Decimal]],
    today: date,
) -> Decimal:
    """Cumulative delivery expected by ``today`` on the target trajectory.

    The trajectory runs from 0 at the start through each milestone (due date,
    cumulative target) to the full target at the end, linear in between.
    """
    points = [(start, ZERO), *sorted(milestones), (end, target)]
    if today <= start:
        return ZERO
    if today >= end:
        return target
    for (d0, v0), (d1, v1) in pairwise(points):
        if d0 <= today <= d1:
            span = (d1 - d0).days
            if span == 0:
                return v1
            return v0 + (v1 - v0) * Decimal((today - d0).days) / span
    return target  # pragma: no cover - the points cover [start, end]
