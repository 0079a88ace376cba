"""reminder's ladder, without servers: the steps of a due cycle and which are still to send, with one
catch-up step for a vehicle found late."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitlane_reminder.domain.ladder import DEFAULT_LADDER, Ladder, step_dates, steps_to_schedule

DUE = date(2026, 4, 11)
STEPS = [
    (-30, date(2026, 3, 12)),
    (-7, date(2026, 4, 4)),
    (0, date(2026, 4, 11)),
    (7, date(2026, 4, 18)),
    (30, date(2026, 5, 11)),
]


def test_the_default_ladder_steps_around_the_due_date() -> None:
    assert step_dates(DEFAULT_LADDER, DUE) == STEPS


@pytest.mark.parametrize(
    ("offsets", "problem"),
    [
        ((), "at least one step"),
        ((-7, -7, 0), "strictly increasing"),
        ((7, -7), "strictly increasing"),
        ((-366, 0), "within 365 days"),
        ((0, 366), "within 365 days"),
    ],
)
def test_a_ladder_is_a_strictly_increasing_series_within_a_year(
    offsets: tuple[int, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Ladder(offsets)


def test_a_ladder_may_reach_a_year_either_side() -> None:
    assert step_dates(Ladder((-365, 365)), DUE) == [(-365, date(2025, 4, 11)), (365, date(2027, 4, 11))]


def test_before_the_first_step_every_step_keeps_its_date() -> None:
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent=(), today=date(2026, 2, 1)) == STEPS


def test_steps_already_sent_are_not_scheduled_again() -> None:
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent={-30}, today=date(2026, 3, 20)) == STEPS[1:]
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent={-30, -7, 0}, today=date(2026, 4, 11)) == STEPS[3:]


def test_a_step_due_today_goes_today() -> None:
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent={-30}, today=date(2026, 4, 4)) == STEPS[1:]


def test_a_vehicle_found_overdue_gets_one_catch_up_step_today_not_one_per_missed_step() -> None:
    today = date(2026, 4, 21)  # 10 days overdue: four steps missed

    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent=(), today=today) == [
        (7, today),
        (30, date(2026, 5, 11)),
    ]


def test_once_the_catch_up_is_sent_the_steps_it_skipped_never_are() -> None:
    for today in (date(2026, 4, 21), date(2026, 4, 22), date(2026, 5, 10)):
        assert steps_to_schedule(DEFAULT_LADDER, DUE, sent={7}, today=today) == [(30, date(2026, 5, 11))]


def test_a_catch_up_not_yet_sent_moves_to_the_next_day() -> None:
    tomorrow = date(2026, 4, 22)
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent=(), today=tomorrow) == [
        (7, tomorrow),
        (30, date(2026, 5, 11)),
    ]


def test_a_vehicle_found_on_its_due_date_hears_only_that_it_is_due() -> None:
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent=(), today=DUE) == STEPS[2:]


def test_after_the_last_step_it_is_caught_up_once_then_the_cycle_is_done() -> None:
    today = date(2026, 6, 10)
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent=(), today=today) == [(30, today)]
    assert steps_to_schedule(DEFAULT_LADDER, DUE, sent={30}, today=today) == []


ladders = st.lists(st.integers(-365, 365), min_size=1, max_size=8, unique=True).map(
    lambda offsets: Ladder(tuple(sorted(offsets)))
)


@settings(deadline=None, database=None)
@given(ladders, st.integers(-400, 400))
def test_sent_day_by_day_a_ladder_only_climbs_one_step_a_day_and_always_reaches_its_last_step(
    ladder: Ladder, found_days_from_due: int
) -> None:
    found_on = DUE + timedelta(days=found_days_from_due)
    sent: list[int] = []
    sent_on: dict[int, date] = {}
    today = found_on
    while today <= DUE + timedelta(days=400):
        due_today = [
            offset for offset, on in steps_to_schedule(ladder, DUE, sent=sent, today=today) if on == today
        ]
        assert len(due_today) <= 1
        for offset in due_today:
            sent.append(offset)
            sent_on[offset] = today
        today += timedelta(days=1)

    assert sent == sorted(set(sent))  # each step once, in order
    assert sent[-1] == ladder.offsets_days[-1]
    for offset, on in step_dates(ladder, DUE):
        if on >= found_on:
            assert sent_on[offset] == on  # every step after the car was found goes on its own date
