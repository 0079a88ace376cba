"""The booking calendar's pure rules (ADR 25): who works when, the chain's and a branch's booking rules, and
what a slot takes under them — technicians on shift, buffers, caps, notice, horizon, holidays and 调休."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pitlane_events.types import OpeningHours, TimeSlot
from pitlane_events.workorder import AppointmentBooked, AppointmentConfirmed, BookingChannel, VisitType
from pitlane_platform.errors import ConflictError
from pitlane_workorder.domain.appointment import Appointment
from pitlane_workorder.domain.booking_rules import BookingRules, effective_rules
from pitlane_workorder.domain.capacity import (
    Availability,
    BookingCapError,
    BookingGrid,
    BookingRequest,
    Place,
    SlotFullError,
    UnbookableTimeError,
)
from pitlane_workorder.domain.shifts import Leave, Roster, Shift, ShiftTime

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 11, 16)
OIL = BookingRequest(VisitType.WAITING, "小保养")


def at(hour: int, minute: int = 0, *, day: date = MONDAY) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)


def slot(hour: int, *, day: date = MONDAY) -> TimeSlot:
    return TimeSlot(start=at(hour, day=day), end=at(hour + 1, day=day))


WEEKDAYS = tuple(OpeningHours(weekday=d, opens_at=time(9), closes_at=time(18)) for d in range(1, 7))
GRID = BookingGrid(timezone=SHANGHAI, opening_hours=WEEKDAYS, bays=3, slot_minutes=60)
EARLY = at(7)  # the Monday, before opening


def booked(
    hour: int, *, service: str = "小保养", visit: VisitType = VisitType.WAITING, n: int = 1
) -> list[Place]:
    return [
        Place(at(hour), at(hour + 1), visit, service, f"ap-{hour}-{service}-{visit}-{i}") for i in range(n)
    ]


def free(
    taken: list[Place] | None = None,
    *,
    rules: BookingRules | None = None,
    grid: BookingGrid = GRID,
    now: datetime = EARLY,
) -> Availability:
    return Availability(grid=grid, rules=rules or BookingRules(), taken=taken or [], now=now)


# Shifts --------------------------------------------------------------------------------------------------------

ROSTER = Roster(
    timezone=SHANGHAI,
    technicians=frozenset({"tom", "lee", "kai"}),
    shifts=[
        Shift("tom", MONDAY, time(9), time(18), breaks=((time(12), time(13)),)),
        Shift("lee", MONDAY, time(11), time(18)),
        Shift("kai", MONDAY, time(9), time(18)),
        Shift("amy", MONDAY, time(9), time(18)),  # the advisor: no bay work
    ],
    leave=[Leave("kai", at(0), at(0, day=MONDAY + timedelta(days=1)))],  # kai is off the whole Monday
)


def test_a_technician_counts_for_a_slot_only_working_all_of_it():
    assert ROSTER.technicians_working(at(9), at(10)) == 1  # tom; lee starts at 11; kai on leave; amy advises
    assert ROSTER.technicians_working(at(11), at(12)) == 2
    assert ROSTER.technicians_working(at(12), at(13)) == 1  # tom's lunch
    assert ROSTER.technicians_working(at(11, 30), at(12, 30)) == 1  # half of it on a break is not all of it
    assert ROSTER.technicians_working(at(17), at(18)) == 2
    assert ROSTER.technicians_working(at(18), at(19)) == 0


def test_leave_for_part_of_a_shift_takes_out_that_part_only():
    roster = Roster(
        timezone=SHANGHAI,
        technicians=frozenset({"tom"}),
        shifts=[Shift("tom", MONDAY, time(9), time(18))],
        leave=[Leave("tom", at(14), at(16))],  # the doctor's, in the afternoon
    )
    assert [roster.technicians_working(at(h), at(h + 1)) for h in range(9, 18)] == [1, 1, 1, 1, 1, 0, 0, 1, 1]
    assert roster.working_periods("tom") == [(at(9), at(14)), (at(16), at(18))]


def test_time_on_shift_for_dispatch_counts_worked_and_remaining_minutes_without_breaks_and_leave():
    assert ROSTER.shift_time(at(12, 30)) == {
        "tom": ShiftTime(on_shift=False, worked_minutes=180, remaining_minutes=300),  # at lunch
        "lee": ShiftTime(on_shift=True, worked_minutes=90, remaining_minutes=330),
        "kai": ShiftTime(on_shift=False, worked_minutes=0, remaining_minutes=0),  # on leave all day
    }
    assert ROSTER.shift_time(at(9, day=MONDAY + timedelta(days=1))) == {}  # nobody has a shift on Tuesday


# Rules ---------------------------------------------------------------------------------------------------------


def test_a_branch_overrides_the_chain_field_by_field_and_date_by_date():
    chain = {
        "min_notice_minutes": 120,
        "max_per_day": 20,
        "max_per_service_per_day": {"钣喷": 2, "四轮定位": 4},
        "max_waiting_per_day": 8,
        "dates": [
            {"on": "2026-11-22", "closed": False, "as_weekday": 1, "note": "调休"},
            {"on": "2026-11-23", "closed": True, "note": "公休"},
        ],
    }
    branch = {
        "max_per_day": 6,
        "max_per_service_per_day": {"钣喷": 1},
        "dates": [
            {
                "on": "2026-11-23",
                "closed": False,
                "opening_hours": [{"opens_at": "10:00:00", "closes_at": "14:00:00"}],
            }
        ],
    }
    rules = effective_rules(chain, branch)
    assert rules.min_notice == timedelta(minutes=120)  # the chain's
    assert rules.max_per_day == 6  # the branch's
    assert rules.max_per_service_per_day == {"钣喷": 1, "四轮定位": 4}
    assert rules.max_per_visit_type_per_day == {VisitType.WAITING: 8}
    assert rules.dates[date(2026, 11, 22)].as_weekday == 1
    assert rules.dates[date(2026, 11, 23)].hours == ((time(10), time(14)),)  # the branch opens its own way
    assert effective_rules({}, {}) == BookingRules()  # nothing set: booking as before there were rules


def test_confirmation_is_needed_above_the_threshold_only():
    assert not BookingRules().needs_confirmation(9)
    rules = BookingRules(no_show_threshold=2)
    assert not rules.needs_confirmation(2)
    assert rules.needs_confirmation(3)


# What a slot takes ---------------------------------------------------------------------------------------------


def test_a_slot_takes_the_bays_or_the_technicians_on_shift_if_fewer():
    rostered = free(grid=BookingGrid(SHANGHAI, WEEKDAYS, bays=3, slot_minutes=60, roster=ROSTER))
    assert [rostered.grid.places(slot(h)) for h in (9, 10, 11, 12, 13)] == [1, 1, 2, 1, 2]
    assert rostered.with_place(booked(10)[0]).has_room(slot(11), OIL)  # 11:00 takes two
    assert not rostered.with_place(booked(10)[0]).has_room(slot(10), OIL)
    with pytest.raises(SlotFullError) as full:
        free(booked(10), grid=rostered.grid).ensure_room(slot(10), OIL)
    assert full.value.rule == "capacity" and "all 1 technicians on shift" in str(full.value)
    assert [s.start for s in full.value.next_free] == [at(11), at(12), at(13)]
    nobody = BookingGrid(SHANGHAI, WEEKDAYS, bays=3, slot_minutes=60, roster=ROSTER)
    with pytest.raises(SlotFullError, match="no technician is on shift"):
        free(grid=nobody).ensure_room(slot(10, day=MONDAY + timedelta(days=1)), OIL)


def test_buffers_keep_a_place_before_and_after_its_slot():
    rules = BookingRules(buffer_after=timedelta(minutes=15))
    three_at_ten = booked(10, n=3)
    with pytest.raises(SlotFullError):
        free(three_at_ten, rules=rules).ensure_room(slot(11), OIL)  # the 10:00 cars leave the bays at 11:15
    free(three_at_ten, rules=rules).ensure_room(slot(12), OIL)
    free(three_at_ten).ensure_room(slot(11), OIL)  # without buffers the next slot is free
    before = BookingRules(buffer_before=timedelta(minutes=30))
    with pytest.raises(SlotFullError):
        free(three_at_ten, rules=before).ensure_room(slot(9), OIL)  # 10:00's preparation starts at 09:30


def test_caps_per_day_service_and_visit_type_name_their_rule_and_suggest_another_day():
    rules = BookingRules(
        max_per_day=3,
        max_per_service_per_day={"钣喷": 1},
        max_per_visit_type_per_day={VisitType.DROP_OFF: 1},
    )
    tuesday = MONDAY + timedelta(days=1)
    cases = [
        (booked(9) + booked(10) + booked(11), OIL, "max_per_day"),
        (booked(9, service="钣喷"), BookingRequest(VisitType.WAITING, "钣喷"), "max_per_service_per_day"),
        (
            booked(9, visit=VisitType.DROP_OFF),
            BookingRequest(VisitType.DROP_OFF, "小保养"),
            "max_drop_off_per_day",
        ),
    ]
    for taken, request, rule in cases:
        with pytest.raises(BookingCapError) as capped:
            free(taken, rules=rules).ensure_room(slot(15), request)
        assert capped.value.rule == rule, rule
        assert [s.start for s in capped.value.next_free] == [at(h, day=tuesday) for h in (9, 10, 11)]
    # Other services and visit types still fit on the day.
    free(booked(9, service="钣喷"), rules=rules).ensure_room(slot(15), OIL)
    free(booked(9, visit=VisitType.DROP_OFF), rules=rules).ensure_room(slot(15), OIL)


def test_notice_and_horizon_make_a_time_unbookable_naming_the_rule():
    rules = BookingRules(min_notice=timedelta(hours=2), max_days_ahead=7)
    with pytest.raises(UnbookableTimeError, match="min_notice_minutes") as soon:
        free(rules=rules, now=at(8)).slot_at(at(9), OIL, field="body.slot_start")
    assert soon.value.field == "body.slot_start"
    assert soon.value.nearest_free[0].start == at(10)  # the first slot two hours ahead
    free(rules=rules, now=at(8)).slot_at(at(10), OIL, field="body.slot_start")
    last = MONDAY + timedelta(days=7)
    free(rules=rules).slot_at(at(17, day=last), OIL, field="body.slot_start")
    with pytest.raises(UnbookableTimeError, match="max_days_ahead") as far:
        free(rules=rules).slot_at(at(9, day=last + timedelta(days=1)), OIL, field="body.slot_start")
    assert all(s.start < at(0, day=last + timedelta(days=1)) for s in far.value.nearest_free)


def test_a_holiday_has_no_slot_and_a_make_up_sunday_has_a_weekdays():
    rules = effective_rules(
        {
            "dates": [
                {"on": "2026-11-22", "closed": False, "as_weekday": 1, "note": "调休"},
                {"on": "2026-11-23", "closed": True, "note": "公休"},
            ]
        },
        {},
    )
    grid = BookingGrid(SHANGHAI, WEEKDAYS, bays=3, slot_minutes=60, dates=rules.dates)
    sunday, holiday, other_sunday = date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 29)
    assert [s.start for s in grid.slots_on(sunday)] == [at(h, day=sunday) for h in range(9, 18)]
    assert list(grid.slots_on(holiday)) == [] and list(grid.slots_on(other_sunday)) == []
    calendar = free(grid=grid, rules=rules)
    assert calendar.slot_at(at(10, day=sunday), OIL, field="slot_start") == slot(10, day=sunday)
    with pytest.raises(UnbookableTimeError, match=r"2026-11-23 is closed \(公休\)") as closed:
        calendar.slot_at(at(10, day=holiday), OIL, field="slot_start")
    assert holiday not in {s.start.astimezone(SHANGHAI).date() for s in closed.value.nearest_free}


def test_a_booking_moved_or_made_with_its_hold_is_not_counted_against_itself():
    held = Place(at(10), at(11), VisitType.WAITING, "小保养", "hold-1", held=True)
    full = free([*booked(10, n=2), held])
    with pytest.raises(SlotFullError):
        full.ensure_room(slot(10), OIL)
    full.without("hold-1").ensure_room(slot(10), OIL)
    [day] = [c for c in full.capacity_on(MONDAY, OIL) if c.slot == slot(10)]
    assert (day.places, day.booked, day.held, day.remaining, day.bookable) == (3, 2, 1, 0, False)


# The appointment's confirmation --------------------------------------------------------------------------------


def test_a_confirmation_is_recorded_once_and_ends_the_wait():
    appointment = Appointment.book(
        AppointmentBooked(
            appointment_id="ap-1",
            channel=BookingChannel.ONLINE,
            customer_id="c-1",
            plate="沪A12345",
            slot=slot(10),
            service_requested="小保养",
            visit_type=VisitType.DROP_OFF,
            confirmation_required=True,
        ),
        EARLY,
    )
    assert appointment.awaits_confirmation()
    assert appointment.confirm("customer", EARLY)
    assert not appointment.confirm("branch", EARLY)  # a second tap records nothing
    [confirmed] = [e for e in appointment.pending if isinstance(e, AppointmentConfirmed)]
    assert (confirmed.confirmed_by, confirmed.slot) == ("customer", slot(10))
    assert not appointment.awaits_confirmation()
    appointment.cancel("customer", "有事", EARLY)
    with pytest.raises(ConflictError, match="only a booked appointment can be confirmed"):
        appointment.confirm("branch", EARLY)
