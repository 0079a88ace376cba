"""What each reminder rule says is due, given the facts: maintenance by mileage or time, insurance renewal,
the annual inspection (年检), declined work, win-back and an unhappy customer's call back.

Dates are local dates in the chain's time zone; instants are timezone-aware.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import count
from typing import Literal

from pitlane_reminder.domain.ladder import DEFAULT_LADDER, Ladder
from pitlane_reminder.domain.mileage import Projection, about_km_a_day


class IntervalMode(StrEnum):
    ROLLING = "rolling"  # counted from when the work was done
    FIXED = "fixed"  # on the schedule: multiples of the interval from an anchor, whenever the work was done


@dataclass(frozen=True)
class MaintenanceRule:
    """Service every `km_interval` km or `months_interval` months, whichever comes first."""

    km_interval: int = 5000
    months_interval: int = 6
    mode: IntervalMode = IntervalMode.ROLLING
    ladder: Ladder = DEFAULT_LADDER

    def __post_init__(self) -> None:
        if self.km_interval <= 0 or self.months_interval <= 0:
            raise ValueError("a maintenance rule's intervals are positive")


@dataclass(frozen=True)
class Due:
    """When a service is due, why, and how that was worked out (for the advisor)."""

    due_on: date
    due_mileage_km: int | None  # the reading it is due at, also when the date comes first ("or 45,000 km")
    reason: Literal["mileage", "time"]
    basis: str


def add_months(day: date, months: int) -> date:
    """Calendar months later, on the same day of the month or the month's last day: 31 Aug + 6 = 28/29 Feb."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def maintenance_due(
    rule: MaintenanceRule,
    *,
    last_service_on: date,
    last_service_km: int | None,
    mileage: Projection,
    anchor_on: date | None = None,
    tz: tzinfo,
) -> Due:
    """Whichever comes first: the day the projected odometer reaches the next service mileage (in `tz`), or
    the next service date; on a tie the date, which is certain where the mileage is projected.

    ROLLING: `km_interval` km and `months_interval` months after the last service. FIXED: the next multiple
    of `km_interval` above the last service's mileage, and the first `anchor_on` + k × `months_interval`
    months (k = 0, 1, 2…) after the last service (`anchor_on`, e.g. the first service or the purchase date,
    defaults to the last service).

    The mileage is left out when the service's mileage is unknown, when the odometer has not reached it and
    there is no daily distance to project with, and when the odometer was replaced after the service (its
    readings are not comparable with the service's).
    """
    if rule.mode is IntervalMode.FIXED:
        anchor = anchor_on or last_service_on
        time_due = _first_on_schedule_after(last_service_on, anchor, rule.months_interval)
        time_basis = (
            f"every {rule.months_interval} months from {anchor}, the first such date after the service on "
            f"{last_service_on}"
        )
    else:
        time_due = add_months(last_service_on, rule.months_interval)
        time_basis = f"{rule.months_interval} months after the service on {last_service_on}"

    due_km = _due_km(rule, last_service_km) if _comparable(mileage, last_service_on, tz) else None
    reaching = _reaching(mileage, due_km, tz) if due_km is not None else None
    if reaching is None or reaching[0] >= time_due:
        return Due(time_due, due_km, "time", time_basis)

    reached_on, how = reaching
    if rule.mode is IntervalMode.FIXED:
        mileage_basis = f"the {due_km:,} km service (every {rule.km_interval:,} km)"
    else:
        mileage_basis = (
            f"{rule.km_interval:,} km after the service at {last_service_km:,} km on {last_service_on}"
        )
    return Due(reached_on, due_km, "mileage", f"{mileage_basis}, {how}")


# (until_year, every_years): inspection deadlines every `every_years` years from the registration date while
# they fall within `until_year` years of it; the last step (until None) runs on for good.
InspectionSchedule = tuple[tuple[int | None, float], ...]

# A private small passenger car (非营运小微型载客汽车, vans excepted) under the rule in force since the 2022
# reform: every 2 years up to its 10th year (on-site inspections at years 6 and 10 only; the others are
# exempt, a sticker applied for online), yearly beyond 10 years, every 6 months beyond 15. Each deadline is
# a registration anniversary; other vehicles (commercial, vans) need their own schedule.
PRIVATE_CAR_INSPECTIONS: InspectionSchedule = ((10, 2), (15, 1), (None, 0.5))


def inspection_due(
    registration_date: date, *, today: date, schedule: InspectionSchedule = PRIVATE_CAR_INSPECTIONS
) -> date:
    """The next annual-inspection (年检) deadline on or after `today`."""
    _check(schedule)
    return next(
        deadline for deadline in _inspection_deadlines(registration_date, schedule) if deadline >= today
    )


def renewal_due(expires_on: date, *, lead_days: int) -> date:
    """When to remind of an insurance renewal (交强险 or 商业险): `lead_days` before the policy expires."""
    if lead_days < 0:
        raise ValueError("lead_days must not be negative")
    return expires_on - timedelta(days=lead_days)


def declined_work_due(declined_on: date, *, after_days: int = 14) -> date:
    """When to remind a customer of work they declined (e.g. brake pads found worn)."""
    return declined_on + timedelta(days=after_days)


def win_back_due(last_visit_on: date, *, after_days: int) -> date:
    """When a customer who has not come back is contacted."""
    return last_visit_on + timedelta(days=after_days)


def detractor_task_due(answered_at: datetime, *, within: timedelta = timedelta(hours=24)) -> datetime:
    """When an advisor must have called a customer who answered the NPS survey as a detractor."""
    return answered_at + within


def _first_on_schedule_after(day: date, anchor: date, every_months: int) -> date:
    """The first of anchor, anchor + every_months, anchor + 2 × every_months… after `day`, each counted from
    the anchor so that a schedule from 31 Aug stays on 31 Aug (not 28 Feb, then 28 Aug)."""
    on_schedule = (add_months(anchor, k * every_months) for k in count())
    return next(on for on in on_schedule if on > day)


def _reaching(mileage: Projection, due_km: int, tz: tzinfo) -> tuple[date, str] | None:
    """The local date the odometer reaches `due_km` and how that is known, or None if it cannot be told."""
    last, km_per_day = mileage.last, mileage.km_per_day
    if last is not None and last.km >= due_km:
        read_on = last.at.astimezone(tz).date()
        return read_on, f"passed by the reading of {last.km:,} km on {read_on}"
    reached_at = mileage.date_reaching(due_km)
    if reached_at is None or km_per_day is None:
        return None
    reached_on = reached_at.astimezone(tz).date()
    assumed = " (assumed)" if mileage.defaulted else ""
    return reached_on, f"reached about {reached_on} at {about_km_a_day(km_per_day)}{assumed}"


def _due_km(rule: MaintenanceRule, last_service_km: int | None) -> int | None:
    if last_service_km is None:
        return None
    if rule.mode is IntervalMode.FIXED:
        return (last_service_km // rule.km_interval + 1) * rule.km_interval
    return last_service_km + rule.km_interval


def _comparable(mileage: Projection, last_service_on: date, tz: tzinfo) -> bool:
    """Whether the readings are on the odometer the service's mileage was read from: not when a correction
    (a new odometer) came after the service day."""
    replaced = mileage.odometer_replaced_at
    return replaced is None or replaced.astimezone(tz).date() <= last_service_on


def _inspection_deadlines(registration_date: date, schedule: InspectionSchedule) -> Iterator[date]:
    months_since_registration = 0
    for until_year, every_years in schedule:
        every_months = round(every_years * 12)
        while until_year is None or months_since_registration + every_months <= until_year * 12:
            months_since_registration += every_months
            yield add_months(registration_date, months_since_registration)


def _check(schedule: InspectionSchedule) -> None:
    untils = [until for until, _ in schedule]
    if not untils or untils[-1] is not None or None in untils[:-1]:
        raise ValueError("an inspection schedule's last step, and only it, has no until_year")
    if any(every <= 0 or every * 12 != round(every * 12) for _, every in schedule):
        raise ValueError("inspections come every whole number of months")
