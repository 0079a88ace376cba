"""When a digest goes out and which period it covers: local dates and wall-clock times in the subscription's
zone, across daylight-saving changes (Europe/Berlin) and in Shanghai (none). Pure: no servers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from pitlane_analytics.domain.digest_schedule import Cadence, DigestPeriod, DigestSchedule

SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def daily(at: time, zone: ZoneInfo = SHANGHAI) -> DigestSchedule:
    return DigestSchedule(Cadence.DAILY, at, zone)


def test_the_next_send_is_strictly_after_the_instant_given() -> None:
    schedule = daily(time(8))

    assert schedule.next_send_day(utc(2026, 3, 14, 23, 59)) == date(2026, 3, 15)  # 07:59 in Shanghai
    assert schedule.next_send_day(utc(2026, 3, 15, 0, 0)) == date(2026, 3, 16)  # 08:00: this one is due
    assert schedule.send_instant(date(2026, 3, 15)) == utc(2026, 3, 15, 0, 0)


def test_a_daily_digest_stays_at_eight_across_both_daylight_saving_changes() -> None:
    schedule = daily(time(8), BERLIN)

    assert schedule.send_instant(date(2026, 3, 28)) == utc(2026, 3, 28, 7)  # CET, UTC+1
    assert schedule.send_instant(date(2026, 3, 29)) == utc(2026, 3, 29, 6)  # CEST from 02:00 that night
    assert schedule.send_instant(date(2026, 10, 25)) == utc(2026, 10, 25, 7)  # CET again
    # Sent at 08:00 on the 28th, the next is 08:00 on the 29th: 23 hours later, not 24.
    assert schedule.next_send_day(schedule.send_instant(date(2026, 3, 28))) == date(2026, 3, 29)


def test_a_skipped_time_goes_out_after_the_gap_and_a_repeated_one_at_its_first_occurrence() -> None:
    schedule = daily(time(2, 30), BERLIN)

    assert schedule.send_instant(date(2026, 3, 29)) == utc(
        2026, 3, 29, 1, 30
    )  # 03:30 CEST: no 02:30 that day
    assert schedule.send_instant(date(2026, 10, 25)) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first one
    assert schedule.next_send_day(utc(2026, 10, 25, 0, 30)) == date(2026, 10, 26)  # not again at 02:30 CET


@pytest.mark.parametrize(
    ("schedule", "after", "send_day", "period"),
    [
        (
            daily(time(8)),
            utc(2026, 3, 15, 1),
            date(2026, 3, 16),
            DigestPeriod(date(2026, 3, 15), date(2026, 3, 16), date(2026, 3, 14)),
        ),
        (  # weekly on Monday: last week, Monday to Sunday
            DigestSchedule(Cadence.WEEKLY, time(7, 30), SHANGHAI, weekday=1),
            utc(2026, 3, 15, 1),  # Sunday
            date(2026, 3, 16),
            DigestPeriod(date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 2)),
        ),
        (  # weekly on Wednesday: still last week, not the last seven days
            DigestSchedule(Cadence.WEEKLY, time(9), SHANGHAI, weekday=3),
            utc(2026, 3, 15, 1),
            date(2026, 3, 18),
            DigestPeriod(date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 2)),
        ),
        (  # monthly on the 1st in January: December, compared with November
            DigestSchedule(Cadence.MONTHLY, time(18, 5), SHANGHAI, month_day=1),
            utc(2026, 12, 31, 12),
            date(2027, 1, 1),
            DigestPeriod(date(2026, 12, 1), date(2027, 1, 1), date(2026, 11, 1)),
        ),
        (  # monthly on the 28th in March: February, compared with January
            DigestSchedule(Cadence.MONTHLY, time(8), SHANGHAI, month_day=28),
            utc(2026, 2, 28, 1),  # 09:00 on 28 February: that one has gone
            date(2026, 3, 28),
            DigestPeriod(date(2026, 2, 1), date(2026, 3, 1), date(2026, 1, 1)),
        ),
    ],
)
def test_each_cadence_covers_its_last_full_period(
    schedule: DigestSchedule, after: datetime, send_day: date, period: DigestPeriod
) -> None:
    assert schedule.next_send_day(after) == send_day
    assert schedule.period_sent_on(send_day) == period


@pytest.mark.parametrize(
    ("cadence", "fields"),
    [
        (Cadence.WEEKLY, {}),
        (Cadence.DAILY, {"weekday": 1}),
        (Cadence.MONTHLY, {}),
        (Cadence.WEEKLY, {"weekday": 1, "month_day": 1}),
        (Cadence.WEEKLY, {"weekday": 8}),
        (Cadence.MONTHLY, {"month_day": 29}),
    ],
)
def test_a_schedule_whose_fields_do_not_go_together_is_refused(
    cadence: Cadence, fields: dict[str, int]
) -> None:
    with pytest.raises(ValueError):
        DigestSchedule(cadence, time(8), SHANGHAI, **fields)
