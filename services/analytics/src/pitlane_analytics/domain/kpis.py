"""The formulas of ../shared/KPI.md over figures counted from the read models.

Exact arithmetic throughout (integers and Fractions); a figure is rounded once, where it is shown, half to
even: money to whole fen, rates to four decimals (0.6667), NPS to one decimal, days and years to one and two.
A ratio is kept as numerator / denominator beside its rounded value, so a reader can check it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

DAYS_PER_YEAR = 365  # "scaled to 365 days" (KPI.md); a lifetime's years use the same year
_MICROSECONDS_PER_DAY = 86_400 * 1_000_000
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
ACTIVITY_WINDOWS_DAYS = (30, 90, 365)


def rounded(value: Fraction, places: int) -> Decimal:
    """`value` to `places` decimals, half to even (exact: no binary floating point on the way)."""
    scaled = round(value * 10**places)  # Fraction rounds half to even
    return Decimal(scaled).scaleb(-places)


def whole_fen(value: Fraction) -> int:
    """An exact amount of money to whole fen, half to even (分 is the smallest unit a bill shows)."""
    return round(value)


def days(span: timedelta) -> Fraction:
    return Fraction(span // timedelta(microseconds=1), _MICROSECONDS_PER_DAY)


@dataclass(frozen=True)
class Rate:
    """numerator ÷ denominator; `value` is None when there is nothing to divide by."""

    numerator: int
    denominator: int

    @property
    def exact(self) -> Fraction | None:
        return Fraction(self.numerator, self.denominator) if self.denominator else None

    @property
    def value(self) -> Decimal | None:
        exact = self.exact
        return None if exact is None else rounded(exact, 4)


@dataclass(frozen=True)
class Nps:
    answers: int
    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> Decimal | None:
        """% promoters − % detractors, to one decimal; None without answers."""
        if not self.answers:
            return None
        return rounded(Fraction(100 * (self.promoters - self.detractors), self.answers), 1)


def nps(scores: Iterable[int]) -> Nps:
    listed = list(scores)
    promoters = sum(1 for score in listed if score >= PROMOTER_MIN)
    detractors = sum(1 for score in listed if score <= DETRACTOR_MAX)
    return Nps(
        answers=len(listed),
        promoters=promoters,
        passives=len(listed) - promoters - detractors,
        detractors=detractors,
    )


def spend_per_year(paid_fen: int, customers: int, period_days: int) -> Fraction | None:
    """Paid amount per customer with a visit in the period, scaled from the period's days to 365."""
    if not customers:
        return None
    return Fraction(paid_fen, customers) * Fraction(DAYS_PER_YEAR, period_days)


@dataclass(frozen=True)
class Lifetime:
    customers: int
    mean_years: Fraction | None
    median_years: Fraction | None


def lifetime(first_and_last_visits: Iterable[tuple[datetime, datetime]]) -> Lifetime:
    """Mean and median of (last visit − first visit) in years over customers; one visit counts as 0."""
    years = sorted(days(last - first) / DAYS_PER_YEAR for first, last in first_and_last_visits)
    if not years:
        return Lifetime(customers=0, mean_years=None, median_years=None)
    return Lifetime(
        customers=len(years), mean_years=sum(years, Fraction(0)) / len(years), median_years=median(years)
    )


def median(ordered: Sequence[Fraction]) -> Fraction:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def ltv(spend_per_year_fen: Fraction | None, lifetime_years: Fraction | None) -> int | None:
    """Average spend per year × average lifetime in years, from the exact factors, in whole fen."""
    if spend_per_year_fen is None or lifetime_years is None:
        return None
    return whole_fen(spend_per_year_fen * lifetime_years)


def mean_days(gaps: Iterable[timedelta]) -> Fraction | None:
    listed = [days(gap) for gap in gaps]
    return sum(listed, Fraction(0)) / len(listed) if listed else None


def is_active(last_visit: datetime, window_start: datetime) -> bool:
    """Active over the window: a visit in it. Everyone else with a visit before `to` has churned over it."""
    return last_visit >= window_start


def roi(revenue_fen: int, cost_fen: int) -> Rate:
    """(revenue − cost) ÷ cost; no value for a campaign that cost nothing."""
    return Rate(numerator=revenue_fen - cost_fen, denominator=cost_fen)
