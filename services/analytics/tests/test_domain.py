"""The domain's arithmetic: local periods as UTC instants, half-even rounding, the formulas' edge cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from pitlane_analytics.domain import kpis
from pitlane_analytics.domain.periods import EmptyPeriodError, Period

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_period_of_local_days_starts_and_ends_at_local_midnight() -> None:
    december = Period(date(2026, 12, 1), date(2027, 1, 1), SHANGHAI)

    assert december.utc_start == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert december.utc_end == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert december.days == 31
    assert december.days_before_end(30) == datetime(2026, 12, 1, 16, tzinfo=UTC)


def test_a_period_across_a_clock_change_keeps_local_midnights() -> None:
    march = Period(date(2026, 3, 1), date(2026, 4, 1), ZoneInfo("Europe/Berlin"))

    assert march.utc_start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert march.utc_end == datetime(2026, 3, 31, 22, tzinfo=UTC)


@pytest.mark.parametrize("end", [date(2026, 12, 1), date(2026, 11, 30)])
def test_a_period_ends_after_it_starts(end: date) -> None:
    with pytest.raises(EmptyPeriodError):
        Period(date(2026, 12, 1), end, SHANGHAI)


def test_rounding_is_half_to_even_and_exact() -> None:
    assert kpis.whole_fen(Fraction(5, 2)) == 2
    assert kpis.whole_fen(Fraction(7, 2)) == 4
    assert kpis.rounded(Fraction(1225, 100), 1) == Decimal("12.2")
    assert kpis.rounded(Fraction(1235, 100), 1) == Decimal("12.4")
    assert kpis.rounded(Fraction(2, 3), 4) == Decimal("0.6667")


def test_nps_is_promoters_minus_detractors_in_percent_to_one_decimal() -> None:
    score = kpis.nps([10, 9, 8, 7, 6, 0])

    assert (score.promoters, score.passives, score.detractors) == (2, 2, 2)
    assert score.score == Decimal("0.0")
    assert kpis.nps([10, 10, 3]).score == Decimal("33.3")
    assert kpis.nps([]).score is None


def test_spend_per_year_scales_the_periods_days_to_365() -> None:
    assert kpis.spend_per_year(73_000, 2, 73) == Fraction(182_500)
    assert kpis.spend_per_year(0, 0, 31) is None


def test_lifetime_counts_one_visit_as_zero_and_takes_the_middle_pair_for_an_even_median() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lifetime = kpis.lifetime(
        [
            (start, start),
            (start, start + timedelta(days=365)),
            (start, start + timedelta(days=730)),
            (start, start + timedelta(days=73)),
        ]
    )

    assert lifetime.customers == 4
    assert lifetime.mean_years == Fraction(0 + 1 + 2 + Fraction(1, 5), 4)
    assert lifetime.median_years == Fraction(1 + Fraction(1, 5), 2)


def test_ltv_multiplies_the_exact_factors() -> None:
    assert kpis.ltv(Fraction(100_001, 3), Fraction(3, 2)) == 50_000  # 50000.5 → half to even
    assert kpis.ltv(None, Fraction(1)) is None


def test_a_rate_without_a_denominator_has_no_value() -> None:
    assert kpis.Rate(0, 0).value is None
    assert kpis.roi(63_000, 50_000).value == Decimal("0.2600")
