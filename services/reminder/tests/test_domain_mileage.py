"""reminder's mileage estimate, without servers: the daily distance from odometer readings, the readings it
sets aside (backwards, impossible), corrections that start a new baseline, and the projection."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import accumulate, pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitlane_reminder.domain.mileage import Projection, Reading, SetAside, about_km_a_day, estimate

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """An instant in UTC, given on the Shanghai clock (the branch's)."""
    return datetime(year, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


# 6,000 km in 120 days: about 50 km a day.
HISTORY = (
    Reading(at(2025, 9, 3), 34_000),
    Reading(at(2025, 11, 2), 37_000),
    Reading(at(2026, 1, 1), 40_000),
)


def test_three_readings_over_four_months_give_about_50_km_a_day() -> None:
    result = estimate(HISTORY)

    assert result.km_per_day == pytest.approx(50.0)
    assert result.last == HISTORY[-1]
    assert result.based_on == HISTORY
    assert result.set_aside == ()
    assert result.defaulted is False
    assert result.explain(SHANGHAI) == "about 50 km a day from 3 readings between 2025-09-03 and 2026-01-01"


def test_readings_in_any_order_give_the_same_estimate() -> None:
    shuffled = list(HISTORY)
    random.Random(7).shuffle(shuffled)
    assert estimate(list(reversed(HISTORY))) == estimate(HISTORY) == estimate(shuffled)


def test_a_reading_ten_times_too_high_is_set_aside_and_later_readings_still_count() -> None:
    typo = Reading(at(2026, 1, 8), 400_000)  # 40,000 with a zero too many, a week later
    result = estimate([*HISTORY, typo])

    assert result.set_aside == (SetAside(typo, "implies 51,429 km a day since the last reading"),)
    assert result.km_per_day == pytest.approx(50.0)
    assert result.last == HISTORY[-1]
    assert result.explain(SHANGHAI) == (
        "about 50 km a day from 3 readings between 2025-09-03 and 2026-01-01; "
        "1 reading set aside (implies 51,429 km a day since the last reading)"
    )

    # The next true reading is checked against 40,000 km, not against the typo.
    later = Reading(at(2026, 1, 15), 40_700)
    assert estimate([*HISTORY, typo, later]).last == later


def test_a_backwards_reading_is_set_aside() -> None:
    backwards = Reading(at(2026, 1, 15), 39_500)
    result = estimate([*HISTORY, backwards])

    assert result.set_aside == (SetAside(backwards, "goes backwards from 40,000 km"),)
    assert result.last == HISTORY[-1]
    assert result.km_per_day == pytest.approx(50.0)


def test_a_backwards_correction_is_accepted_and_starts_a_new_baseline() -> None:
    new_odometer = Reading(at(2026, 2, 1), 300, correction=True)
    two_weeks_on = Reading(at(2026, 2, 15), 1_000)
    result = estimate([*HISTORY, new_odometer, two_weeks_on])

    assert result.set_aside == ()
    assert result.based_on == (new_odometer, two_weeks_on)
    assert result.last == two_weeks_on
    assert result.km_per_day == pytest.approx(50.0)
    assert result.explain(SHANGHAI) == (
        "about 50 km a day from 2 readings between 2026-02-01 and 2026-02-15; "
        "counted from the odometer correction on 2026-02-01"
    )


def test_history_before_a_correction_no_longer_counts_toward_the_rate() -> None:
    new_odometer = Reading(at(2026, 2, 1), 300, correction=True)
    three_days_on = Reading(at(2026, 2, 4), 450)
    result = estimate([*HISTORY, new_odometer, three_days_on])

    assert result.based_on == (new_odometer, three_days_on)
    assert result.km_per_day is None  # 3 days since the new odometer: too short, whatever came before
    assert result.explain(SHANGHAI) == (
        "no daily distance yet (too short a history: 2 readings between 2026-02-01 and 2026-02-04); "
        "counted from the odometer correction on 2026-02-01"
    )


def test_the_daily_limit_itself_is_plausible_and_anything_beyond_it_is_not() -> None:
    start = Reading(at(2026, 1, 1), 40_000)
    at_the_limit = Reading(at(2026, 1, 8), 47_000)  # 1,000 km a day for a week
    beyond = Reading(at(2026, 1, 8), 47_001)

    assert estimate([start, at_the_limit]).set_aside == ()
    assert estimate([start, beyond]).set_aside == (
        SetAside(beyond, "implies 1,000 km a day since the last reading"),
    )
    assert estimate([start, at_the_limit], max_km_per_day=999.0).last == start


def test_within_a_day_a_days_driving_is_plausible() -> None:
    morning = Reading(at(2026, 1, 1, 9), 40_000)
    an_hour_on_the_motorway = Reading(at(2026, 1, 1, 10), 40_060)  # 1,440 km a day, were it a rate
    an_impossible_hour_later = Reading(at(2026, 1, 1, 11), 41_200)

    result = estimate([morning, an_hour_on_the_motorway, an_impossible_hour_later])

    assert result.based_on == (morning, an_hour_on_the_motorway)
    assert result.set_aside == (
        SetAside(an_impossible_hour_later, "implies 1,140 km a day since the last reading"),
    )


def test_of_readings_taken_at_the_same_instant_the_lower_plausible_one_is_kept() -> None:
    same_time_typo = Reading(at(2026, 1, 8), 400_500)
    same_time = Reading(at(2026, 1, 8), 40_050)
    result = estimate([*HISTORY, same_time_typo, same_time])

    assert result.last == same_time
    assert result.set_aside == (
        SetAside(same_time_typo, "taken at the same time as the 40,050 km reading kept"),
    )

    # The lower one is kept only if it passes the checks: one that goes backwards gives way to the other.
    backwards = Reading(at(2026, 1, 8), 39_000)
    forwards = Reading(at(2026, 1, 8), 40_300)
    result = estimate([*HISTORY, forwards, backwards])
    assert result.last == forwards
    assert result.set_aside == (SetAside(backwards, "goes backwards from 40,000 km"),)


def test_of_readings_taken_at_the_same_instant_a_correction_is_kept() -> None:
    old_odometer = Reading(at(2026, 2, 1), 40_500)
    new_odometer = Reading(at(2026, 2, 1), 60_000, correction=True)  # a second-hand cluster, read higher

    for order in ([old_odometer, new_odometer], [new_odometer, old_odometer]):
        result = estimate([*HISTORY, *order])
        assert result.last == new_odometer
        assert result.set_aside == (
            SetAside(old_odometer, "taken at the same time as the 60,000 km reading kept"),
        )


def test_the_same_reading_reported_twice_counts_once() -> None:
    result = estimate([*HISTORY, HISTORY[-1]])
    assert result.based_on == HISTORY
    assert result.set_aside == ()


def test_a_short_history_falls_back_to_the_default_rate_or_none() -> None:
    one = [Reading(at(2026, 1, 1), 40_000)]
    six_days = [*one, Reading(at(2026, 1, 7), 40_300)]
    seven_days = [*one, Reading(at(2026, 1, 8), 40_350)]

    assumed = estimate(one, default_km_per_day=30.0)
    assert (assumed.km_per_day, assumed.defaulted) == (30.0, True)
    assert assumed.explain(SHANGHAI) == (
        "about 30 km a day assumed (too short a history: 1 reading on 2026-01-01)"
    )
    unknown = estimate(one)
    assert (unknown.km_per_day, unknown.defaulted) == (None, False)
    assert unknown.explain(SHANGHAI) == "no daily distance yet (too short a history: 1 reading on 2026-01-01)"

    assert estimate(six_days, default_km_per_day=30.0).km_per_day == 30.0
    assert estimate(six_days, min_span_days=6.0).km_per_day == pytest.approx(50.0)
    computed = estimate(seven_days, default_km_per_day=30.0)
    assert (computed.km_per_day, computed.defaulted) == (pytest.approx(50.0), False)


def test_no_readings_project_nothing() -> None:
    result = estimate([], default_km_per_day=30.0)
    assert result.last is None
    assert result.projection.projected_km(at(2026, 1, 1)) is None
    assert result.projection.date_reaching(45_000) is None
    assert result.explain() == "no mileage readings"


def test_the_projection_runs_forward_from_the_last_reading_never_below_it() -> None:
    result = estimate(HISTORY)

    assert result.projection.projected_km(at(2026, 4, 11)) == 45_000
    assert result.projection.projected_km(at(2026, 1, 1, 22)) == 40_025
    assert result.projection.projected_km(at(2025, 12, 1)) == 40_000  # before the last reading: not below it
    assert estimate(HISTORY[:1]).projection.projected_km(at(2026, 4, 11)) is None


def test_the_date_a_mileage_is_reached() -> None:
    result = estimate(HISTORY)

    assert result.projection.date_reaching(45_000) == at(2026, 4, 11)
    assert (
        result.projection.date_reaching(40_000) == result.projection.date_reaching(39_000) == at(2026, 1, 1)
    )  # already reached
    assert estimate(HISTORY[-1:]).projection.date_reaching(45_000) is None
    assert estimate(HISTORY[-1:]).projection.date_reaching(40_000) == at(2026, 1, 1)


def test_a_car_that_does_not_move_never_reaches_a_mileage() -> None:
    parked = estimate([Reading(at(2026, 1, 1), 40_000), Reading(at(2026, 3, 1), 40_000)])
    assert parked.km_per_day == 0.0
    assert parked.projection.date_reaching(40_001) is None

    hardly_used = estimate([Reading(at(2023, 1, 1), 40_000), Reading(at(2026, 1, 1), 40_001)])
    assert (
        hardly_used.projection.date_reaching(45_000) is None
    )  # about 15,000 years away: past the calendar's end
    assert hardly_used.explain(SHANGHAI) == (
        "about 0.00091 km a day from 2 readings between 2023-01-01 and 2026-01-01"
    )


@pytest.mark.parametrize(
    ("km_per_day", "text"),
    [
        (50.0, "about 50 km a day"),
        (1_250.4, "about 1,250 km a day"),
        (10.0, "about 10 km a day"),
        (9.96, "about 10 km a day"),
        (2.75, "about 2.8 km a day"),
        (0.3, "about 0.3 km a day"),
    ],
)
def test_a_daily_distance_reads_naturally(km_per_day: float, text: str) -> None:
    assert about_km_a_day(km_per_day) == text


def test_a_reading_needs_an_aware_time_and_a_positive_mileage() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading(datetime(2026, 1, 1, 10), 40_000)
    with pytest.raises(ValueError, match="negative"):
        Reading(at(2026, 1, 1), -1)


@pytest.mark.parametrize(
    "limits",
    [
        {"max_km_per_day": 0.0},
        {"min_span_days": 0.0},
        {"default_km_per_day": 0.0},
        {"default_km_per_day": -5.0},
    ],
)
def test_the_estimates_limits_are_positive(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        estimate(HISTORY, **limits)


def history(steps: list[tuple[int, int]]) -> list[Reading]:
    """Readings from 20,000 km on 2024-01-01, each some hours after the one before and some km more (or
    fewer: a backwards reading)."""
    hours = accumulate(hours for hours, _ in steps)
    kms = accumulate((km for _, km in steps), initial=20_000)
    return [
        Reading(at(2024, 1, 1) + timedelta(hours=h), km) for h, km in zip(hours, list(kms)[1:], strict=True)
    ]


histories = st.lists(
    st.tuples(st.integers(0, 24 * 200), st.integers(-3_000, 80_000)), min_size=1, max_size=12
).map(history)


@settings(deadline=None, database=None)
@given(histories)
def test_every_reading_is_accepted_or_set_aside_and_the_accepted_ones_are_plausible(
    readings: list[Reading],
) -> None:
    result = estimate(readings)

    accepted = result.based_on
    set_aside = [aside.reading for aside in result.set_aside]
    assert len(accepted) + len(set_aside) == len(set(readings))
    assert set(accepted) | set(set_aside) == set(readings)
    for earlier, later in pairwise(accepted):
        days = (later.at - earlier.at) / timedelta(days=1)
        assert days > 0
        assert 0 <= later.km - earlier.km <= 1000.0 * max(days, 1.0)
    assert result.km_per_day is None or result.km_per_day >= 0


@settings(deadline=None, database=None)
@given(histories, st.integers(1, 100))
def test_a_reading_ten_times_too_high_never_changes_the_estimate(readings: list[Reading], days: int) -> None:
    before = estimate(readings)
    assert before.last is not None
    # At least 9 × 17,000 km more within 100 days: beyond 1,000 km a day.
    typo = Reading(before.last.at + timedelta(days=days), before.last.km * 10)

    after = estimate([*readings, typo])

    assert (after.km_per_day, after.last, after.based_on) == (before.km_per_day, before.last, before.based_on)
    assert typo in [aside.reading for aside in after.set_aside]


@settings(deadline=None, database=None)
@given(
    st.floats(min_value=1e-9, max_value=1_000.0),
    st.integers(0, 1_000_000),
    st.integers(1, 300_000),
)
def test_the_projection_and_the_date_reaching_agree(km_per_day: float, last_km: int, more_km: int) -> None:
    last = Reading(at(2026, 1, 1), last_km)
    projection = Projection(last, km_per_day)

    reached_at = projection.date_reaching(last_km + more_km)

    if reached_at is not None:  # None only when it lies beyond the year 9999
        assert reached_at > last.at
        projected = projection.projected_km(reached_at)
        assert projected is not None
        assert abs(projected - (last_km + more_km)) <= 1
    else:
        assert more_km / km_per_day > (datetime.max.replace(tzinfo=UTC) - last.at).days
