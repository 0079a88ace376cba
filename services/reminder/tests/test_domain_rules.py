"""reminder's due rules, without servers: maintenance by mileage or time (rolling or on a fixed schedule),
calendar months, insurance renewal, the annual inspection (年检) and the follow-up dates."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitlane_reminder.domain.mileage import Projection, Reading, estimate
from pitlane_reminder.domain.rules import (
    Due,
    InspectionSchedule,
    IntervalMode,
    MaintenanceRule,
    add_months,
    declined_work_due,
    detractor_task_due,
    inspection_due,
    maintenance_due,
    renewal_due,
    win_back_due,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROLLING = MaintenanceRule()  # 5,000 km or 6 months from the service
FIXED = MaintenanceRule(mode=IntervalMode.FIXED)


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """An instant in UTC, given on the Shanghai clock (the branch's)."""
    return datetime(year, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


# 34,000 km on 2025-09-03, serviced at 40,000 km on 2026-01-01: 6,000 km in 120 days, 50 km a day.
FIFTY_KM_A_DAY = (Reading(at(2025, 9, 3), 34_000), Reading(at(2026, 1, 1), 40_000))


def serviced_on_new_years_day(readings: Sequence[Reading], rule: MaintenanceRule = ROLLING) -> Due:
    return maintenance_due(
        rule,
        last_service_on=date(2026, 1, 1),
        last_service_km=40_000,
        mileage=estimate(readings).projection,
        tz=SHANGHAI,
    )


def at_a_steady_rate(km_per_day: float, last: Reading) -> Projection:
    return Projection(last, km_per_day)


def test_a_car_doing_50_km_a_day_is_due_by_mileage_100_days_after_its_service() -> None:
    assert serviced_on_new_years_day(FIFTY_KM_A_DAY) == Due(
        due_on=date(2026, 4, 11),
        due_mileage_km=45_000,
        reason="mileage",
        basis="5,000 km after the service at 40,000 km on 2026-01-01, reached about 2026-04-11 at about 50 km a day",
    )


def test_a_reading_ten_times_too_high_does_not_move_the_due_date() -> None:
    typo = Reading(at(2026, 1, 8), 400_000)
    due = serviced_on_new_years_day([*FIFTY_KM_A_DAY, typo])
    assert due == serviced_on_new_years_day(FIFTY_KM_A_DAY)
    assert (due.due_on, due.reason) == (date(2026, 4, 11), "mileage")


def test_a_car_hardly_driven_is_due_six_months_after_its_service() -> None:
    ten_km_a_day = (Reading(at(2025, 9, 3), 38_800), Reading(at(2026, 1, 1), 40_000))
    assert serviced_on_new_years_day(ten_km_a_day) == Due(
        date(2026, 7, 1), 45_000, "time", "6 months after the service on 2026-01-01"
    )


def test_a_tie_between_mileage_and_time_is_the_date_and_a_day_earlier_is_the_mileage() -> None:
    serviced = Reading(at(2026, 1, 1), 40_000)  # 2026-07-01 is 181 days later

    def due_at(km_per_day: float) -> Due:
        return maintenance_due(
            ROLLING,
            last_service_on=date(2026, 1, 1),
            last_service_km=40_000,
            mileage=at_a_steady_rate(km_per_day, serviced),
            tz=SHANGHAI,
        )

    assert (due_at(5_000 / 181).due_on, due_at(5_000 / 181).reason) == (date(2026, 7, 1), "time")
    assert (due_at(5_000 / 180).due_on, due_at(5_000 / 180).reason) == (date(2026, 6, 30), "mileage")


def test_without_a_daily_distance_the_date_decides_and_the_mileage_is_still_told() -> None:
    assert serviced_on_new_years_day(FIFTY_KM_A_DAY[-1:]) == Due(
        date(2026, 7, 1), 45_000, "time", "6 months after the service on 2026-01-01"
    )


def test_without_the_services_mileage_only_the_date_counts() -> None:
    due = maintenance_due(
        ROLLING,
        last_service_on=date(2026, 1, 1),
        last_service_km=None,
        mileage=estimate(FIFTY_KM_A_DAY).projection,
        tz=SHANGHAI,
    )
    assert due == Due(date(2026, 7, 1), None, "time", "6 months after the service on 2026-01-01")


def test_a_reading_past_the_due_mileage_makes_it_due_without_a_daily_distance() -> None:
    past_it = Reading(at(2026, 3, 1), 45_600)
    assert serviced_on_new_years_day([past_it]) == Due(
        date(2026, 3, 1),
        45_000,
        "mileage",
        "5,000 km after the service at 40,000 km on 2026-01-01, passed by the reading of 45,600 km on 2026-03-01",
    )


def test_a_reading_of_exactly_the_due_mileage_makes_it_due_that_day() -> None:
    due = serviced_on_new_years_day([Reading(at(2026, 3, 1), 45_000)])
    assert (due.due_on, due.reason) == (date(2026, 3, 1), "mileage")
    assert due.basis.endswith(", passed by the reading of 45,000 km on 2026-03-01")


def test_an_assumed_daily_distance_says_so() -> None:
    due = maintenance_due(
        ROLLING,
        last_service_on=date(2026, 1, 1),
        last_service_km=40_000,
        mileage=estimate(FIFTY_KM_A_DAY[-1:], default_km_per_day=40.0).projection,
        tz=SHANGHAI,
    )
    assert due == Due(
        date(2026, 5, 6),
        45_000,
        "mileage",
        "5,000 km after the service at 40,000 km on 2026-01-01, reached about 2026-05-06 at about 40 km a day (assumed)",
    )


def test_the_mileage_date_is_the_chains_local_date() -> None:
    # Read at 18:00 UTC, 02:00 the next morning in Shanghai: the projection lands on 2026-04-11 18:00 UTC.
    late = (
        Reading(datetime(2025, 9, 3, 18, tzinfo=UTC), 34_000),
        Reading(datetime(2026, 1, 1, 18, tzinfo=UTC), 40_000),
    )

    def due_in(zone: ZoneInfo) -> date:
        return maintenance_due(
            ROLLING,
            last_service_on=date(2026, 1, 1),
            last_service_km=40_000,
            mileage=estimate(late).projection,
            tz=zone,
        ).due_on

    assert due_in(SHANGHAI) == date(2026, 4, 12)
    assert due_in(ZoneInfo("UTC")) == date(2026, 4, 11)


def test_an_odometer_replaced_after_the_service_leaves_only_the_date() -> None:
    # A second-hand cluster reading 60,000 km: compared with the service's 40,000 km it would be overdue.
    replaced = Reading(at(2026, 2, 1), 60_000, correction=True)
    two_weeks_on = Reading(at(2026, 2, 15), 60_700)
    assert serviced_on_new_years_day([*FIFTY_KM_A_DAY, replaced, two_weeks_on]) == Due(
        date(2026, 7, 1), None, "time", "6 months after the service on 2026-01-01"
    )


def test_an_odometer_replaced_at_the_service_counts_from_the_new_one() -> None:
    replaced = Reading(at(2026, 2, 1), 300, correction=True)
    two_weeks_on = Reading(at(2026, 2, 15), 1_000)
    due = maintenance_due(
        ROLLING,
        last_service_on=date(2026, 2, 1),
        last_service_km=300,
        mileage=estimate([*FIFTY_KM_A_DAY, replaced, two_weeks_on]).projection,
        tz=SHANGHAI,
    )
    assert (due.due_on, due.due_mileage_km, due.reason) == (date(2026, 5, 12), 5_300, "mileage")


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 8, 31), 6, date(2026, 2, 28)),
        (date(2023, 8, 31), 6, date(2024, 2, 29)),  # a leap year
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 3, 31), 6, date(2026, 9, 30)),
        (date(2026, 11, 15), 3, date(2027, 2, 15)),
        (date(2026, 12, 31), 12, date(2027, 12, 31)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), 0, date(2026, 1, 15)),
    ],
)
def test_calendar_months_end_on_the_months_last_day_when_shorter(
    day: date, months: int, expected: date
) -> None:
    assert add_months(day, months) == expected


def test_a_service_on_the_31st_of_august_is_due_on_the_last_day_of_february() -> None:
    due = maintenance_due(
        ROLLING,
        last_service_on=date(2025, 8, 31),
        last_service_km=None,
        mileage=estimate([]).projection,
        tz=SHANGHAI,
    )
    assert due.due_on == date(2026, 2, 28)


@settings(deadline=None, database=None)
@given(st.dates(date(1950, 1, 1), date(2150, 12, 31)), st.integers(-600, 600))
def test_calendar_months_keep_the_day_unless_the_month_is_shorter(day: date, months: int) -> None:
    later = add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    assert later.day == min(day.day, calendar.monthrange(later.year, later.month)[1])


# Bought 2025-01-10, serviced a month and ten days late for its 6-month service, on 2025-08-20 at 41,200 km.
LATE_SERVICE = Reading(at(2025, 8, 20), 41_200)


def serviced_late(rule: MaintenanceRule, km_per_day: float | None) -> Due:
    history = (
        at_a_steady_rate(km_per_day, LATE_SERVICE)
        if km_per_day is not None
        else estimate([LATE_SERVICE]).projection
    )
    return maintenance_due(
        rule,
        last_service_on=date(2025, 8, 20),
        last_service_km=41_200,
        mileage=history,
        anchor_on=date(2025, 1, 10),
        tz=SHANGHAI,
    )


def test_a_rolling_rule_counts_from_when_the_work_was_done() -> None:
    assert serviced_late(ROLLING, None) == Due(
        date(2026, 2, 20), 46_200, "time", "6 months after the service on 2025-08-20"
    )
    assert serviced_late(ROLLING, 50.0) == Due(
        date(2025, 11, 28),
        46_200,
        "mileage",
        "5,000 km after the service at 41,200 km on 2025-08-20, reached about 2025-11-28 at about 50 km a day",
    )


def test_a_fixed_rule_keeps_to_its_schedule_whenever_the_work_was_done() -> None:
    assert serviced_late(FIXED, None) == Due(
        date(2026, 1, 10),
        45_000,
        "time",
        "every 6 months from 2025-01-10, the first such date after the service on 2025-08-20",
    )
    assert serviced_late(FIXED, 50.0) == Due(
        date(2025, 11, 4),
        45_000,
        "mileage",
        "the 45,000 km service (every 5,000 km), reached about 2025-11-04 at about 50 km a day",
    )


@pytest.mark.parametrize(
    ("serviced_on", "due_on"),
    [
        (date(2026, 2, 27), date(2026, 2, 28)),
        (date(2026, 2, 28), date(2026, 8, 31)),  # on a slot: the next one, still on the 31st
        (date(2026, 3, 10), date(2026, 8, 31)),
        (date(2027, 9, 1), date(2028, 2, 29)),
    ],
)
def test_a_fixed_schedule_from_the_31st_stays_on_the_months_last_day(serviced_on: date, due_on: date) -> None:
    due = maintenance_due(
        FIXED,
        last_service_on=serviced_on,
        last_service_km=None,
        mileage=estimate([]).projection,
        anchor_on=date(2025, 8, 31),
        tz=SHANGHAI,
    )
    assert due.due_on == due_on


def test_a_fixed_schedule_is_anchored_on_the_last_service_by_default() -> None:
    assert serviced_on_new_years_day(FIFTY_KM_A_DAY[-1:], FIXED) == Due(
        date(2026, 7, 1),
        45_000,
        "time",
        "every 6 months from 2026-01-01, the first such date after the service on 2026-01-01",
    )


def test_a_fixed_schedules_anchor_is_its_first_date() -> None:
    # A used car last serviced by its previous owner, then bought: its schedule from the purchase starts there.
    due = maintenance_due(
        FIXED,
        last_service_on=date(2025, 5, 1),
        last_service_km=None,
        mileage=estimate([]).projection,
        anchor_on=date(2025, 6, 1),
        tz=SHANGHAI,
    )
    assert due.due_on == date(2025, 6, 1)


def test_fixed_mileage_is_the_next_multiple_of_the_interval_above_the_service() -> None:
    assert serviced_on_new_years_day(FIFTY_KM_A_DAY[-1:], FIXED).due_mileage_km == 45_000
    due = maintenance_due(
        MaintenanceRule(km_interval=10_000, mode=IntervalMode.FIXED),
        last_service_on=date(2026, 1, 1),
        last_service_km=39_999,
        mileage=estimate([]).projection,
        tz=SHANGHAI,
    )
    assert due.due_mileage_km == 40_000


@pytest.mark.parametrize("intervals", [{"km_interval": 0}, {"months_interval": 0}, {"months_interval": -6}])
def test_a_maintenance_rules_intervals_are_positive(intervals: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MaintenanceRule(**intervals)  # type: ignore[arg-type]


def test_an_insurance_renewal_is_due_its_lead_before_the_policy_expires() -> None:
    assert renewal_due(date(2027, 3, 15), lead_days=30) == date(2027, 2, 13)
    assert renewal_due(date(2028, 3, 15), lead_days=30) == date(2028, 2, 14)  # a leap year
    assert renewal_due(date(2027, 3, 15), lead_days=0) == date(2027, 3, 15)
    with pytest.raises(ValueError, match="negative"):
        renewal_due(date(2027, 3, 15), lead_days=-1)


TODAY = date(2026, 5, 20)


@pytest.mark.parametrize(
    ("registered_on", "deadline"),
    [
        (date(2023, 3, 15), date(2027, 3, 15)),  # 3 years old: every 2 years (2025, 2027)
        (date(2015, 8, 1), date(2026, 8, 1)),  # 11 years old: every year
        (date(2010, 4, 1), date(2026, 10, 1)),  # 16 years old: every 6 months (2026-04-01 has passed)
    ],
)
def test_the_next_inspection_deadline_by_the_cars_age(registered_on: date, deadline: date) -> None:
    assert inspection_due(registered_on, today=TODAY) == deadline


@pytest.mark.parametrize(
    ("today", "deadline"),
    [
        (date(2026, 5, 20), date(2026, 7, 1)),  # the 10th year's is still biennial
        (date(2026, 7, 1), date(2026, 7, 1)),  # on the deadline itself
        (date(2026, 7, 2), date(2027, 7, 1)),  # then yearly
    ],
)
def test_inspections_turn_yearly_after_the_tenth_year(today: date, deadline: date) -> None:
    assert inspection_due(date(2016, 7, 1), today=today) == deadline


def test_inspections_turn_half_yearly_after_the_fifteenth_year() -> None:
    assert inspection_due(date(2011, 7, 1), today=date(2026, 7, 1)) == date(2026, 7, 1)
    assert inspection_due(date(2011, 7, 1), today=date(2026, 7, 2)) == date(2027, 1, 1)


def test_a_car_registered_on_a_leap_day_is_due_on_the_last_day_of_february() -> None:
    assert inspection_due(date(2020, 2, 29), today=date(2021, 1, 1)) == date(2022, 2, 28)
    assert inspection_due(date(2020, 2, 29), today=date(2023, 1, 1)) == date(2024, 2, 29)


def test_the_inspection_schedule_is_configurable() -> None:
    before_2022: InspectionSchedule = ((6, 2), (15, 1), (None, 0.5))  # yearly after 6 years, not 10
    assert inspection_due(date(2018, 5, 1), today=TODAY) == date(2028, 5, 1)
    assert inspection_due(date(2018, 5, 1), today=TODAY, schedule=before_2022) == date(2027, 5, 1)


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ((), "no until_year"),
        (((10, 2),), "no until_year"),
        (((None, 1), (15, 1)), "no until_year"),
        (((10, 2), (None, 0)), "whole number of months"),
        (((None, 0.3),), "whole number of months"),
    ],
)
def test_an_inspection_schedule_runs_on_for_good_in_whole_months(
    schedule: InspectionSchedule, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        inspection_due(date(2020, 1, 1), today=TODAY, schedule=schedule)


@settings(deadline=None, database=None)
@given(
    st.dates(date(1990, 1, 1), date(2030, 12, 31)),
    st.dates(date(2020, 1, 1), date(2040, 12, 31)),
    st.integers(0, 800),
)
def test_the_next_inspection_is_the_first_deadline_on_or_after_today(
    registered_on: date, today: date, days_later: int
) -> None:
    deadline = inspection_due(registered_on, today=today)

    assert today <= deadline <= add_months(max(today, registered_on), 24)
    in_between = min(today + timedelta(days=days_later), deadline)
    assert inspection_due(registered_on, today=in_between) == deadline  # none skipped on the way
    assert inspection_due(registered_on, today=deadline + timedelta(days=1)) > deadline


def test_declined_work_win_back_and_a_detractors_call_back() -> None:
    assert declined_work_due(date(2026, 3, 10)) == date(2026, 3, 24)
    assert declined_work_due(date(2026, 3, 10), after_days=30) == date(2026, 4, 9)
    assert win_back_due(date(2026, 1, 15), after_days=180) == date(2026, 7, 14)
    answered = datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
    assert detractor_task_due(answered) == datetime(2026, 3, 11, 13, 30, tzinfo=UTC)
    assert detractor_task_due(answered, within=timedelta(hours=4)) == datetime(
        2026, 3, 10, 17, 30, tzinfo=UTC
    )
