"""The booking calendar over HTTP against real PostgreSQL and NATS, on the injected clock (ADR 25): shifts and
leave limit a slot to the technicians on shift, twenty online bookings at once take exactly the places there
are, a freed place goes down the waitlist with holds that expire on the platform's timers, holidays and
make-up working days, holds on the online form, confirmations for customers who miss appointments, and the
customer's pages behind their links."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from workorder_harness import BRANCH, Harness, advance, contend, local, rows, stored

from pitlane_events.workorder import WaitlistSlotOffered
from pitlane_platform.security.links import BookingLink, BookingLinkKind, sign_booking_link
from pitlane_platform.testing.jetstream import wait_until
from pitlane_workorder.service_layer.availability import shift_time

PUBLIC = f"/v1/public/branches/{BRANCH}"
STAFF = f"/v1/branches/{BRANCH}"
MONDAY = "2026-11-16"


def utc(hour: int, *, day: int = 16) -> str:
    """A slot start as the API answers it (UTC) for a local hour in Shanghai."""
    return f"2026-11-{day:02d}T{hour - 8:02d}:00:00Z"


def customer(n: int, hour: int = 10, *, day: int = 16, **extra: Any) -> dict[str, Any]:
    return {
        "slot_start": local(hour, day=day),
        "customer_name": f"客户{n}",
        "phone": f"139{n:08d}",
        "plate": f"沪D{n:05d}",
        "service_requested": "小保养",
        **extra,
    }


async def put(h: Harness, path: str, body: Any, *, role: str = "manager") -> httpx.Response:
    return await h.client.put(path, json=body, headers=h.auth(role, sub="max"))


async def add_technician(h: Harness, staff_id: str = "kai") -> None:
    added = await h.post(
        f"{STAFF}/staff",
        {"staff_id": staff_id, "display_name": "王师傅", "role": "technician"},
        role="manager",
        sub="max",
    )
    assert added.status_code == 201, added.text


def shift(staff_id: str, starts: str, ends: str, *breaks: tuple[str, str]) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "starts_at": starts,
        "ends_at": ends,
        "breaks": [{"starts_at": b[0], "ends_at": b[1]} for b in breaks],
    }


async def roster(h: Harness, day: str, *shifts: dict[str, Any]) -> None:
    answer = await put(h, f"{STAFF}/shifts/{day}", {"shifts": list(shifts)})
    assert answer.status_code == 204, answer.text


async def day_slots(h: Harness, day: str = MONDAY) -> dict[str, dict[str, Any]]:
    answer = await h.client.get(f"{PUBLIC}/slots", params={"on": day})
    assert answer.status_code == 200, answer.text
    return {slot["start"]: slot for slot in answer.json()["slots"]}


async def booked_at(h: Harness, start: str) -> int:
    [(count,)] = await rows(
        h, "SELECT count(*) FROM appointments WHERE status = 'booked' AND slot_start = %s", start
    )
    return int(count)


async def timers_caught_up(h: Harness) -> None:
    """Every timer due by the clock's "now" has fired (the runner looked at this time and found none)."""
    runner = h.service.runtime.timer_runner
    assert runner is not None
    now = h.clock.now()

    async def caught_up() -> bool:
        return runner.status.checked_until is not None and runner.status.checked_until >= now

    await wait_until(caught_up)


def offer_link(h: Harness, entry_id: str, slot_start: str) -> str:
    """The offer's page, as notification links it: the chain's link secret, valid until the slot begins (after
    the hold lapses the page says so)."""
    link = BookingLink(BookingLinkKind.WAITLIST_OFFER, entry_id, BRANCH, datetime.fromisoformat(slot_start))
    return f"/c/waitlist/{sign_booking_link(h.settings.link_secret.get_secret_value(), link)}"


def appointment_link(h: Harness, appointment_id: str) -> str:
    link = BookingLink(BookingLinkKind.APPOINTMENT, appointment_id, BRANCH, h.clock.now() + timedelta(days=3))
    return f"/c/appointments/{sign_booking_link(h.settings.link_secret.get_secret_value(), link)}"


# Shifts ---------------------------------------------------------------------------------------------------------


async def test_with_two_of_three_technicians_off_shift_a_slot_takes_one_car_and_a_second_booking_is_a_409(
    branch: Harness,
) -> None:
    await add_technician(branch)
    await roster(
        branch,
        MONDAY,
        shift("tom", "09:00", "18:00", ("12:00", "13:00")),
        shift("lee", "11:00", "18:00"),  # not on shift before 11:00
        shift("kai", "09:00", "18:00"),
    )
    sick = await branch.post(
        f"{STAFF}/staff/kai/leave",
        {"starts_at": "2026-11-16T00:00:00+08:00", "ends_at": "2026-11-17T00:00:00+08:00", "kind": "sick"},
        role="manager",
        sub="max",
    )
    assert sick.status_code == 201, sick.text

    places = {start: slot["places"] for start, slot in (await day_slots(branch)).items()}
    assert [places[utc(hour)] for hour in (9, 10, 11, 12, 13)] == [1, 1, 2, 1, 2]  # 12:00: tom's lunch
    assert (await branch.book(10)).status_code == 201
    before = await branch.counts()

    second = await branch.book(10, phone="13900000002", plate="沪C22222", online=True)

    assert second.status_code == 409, second.text
    problem = second.json()
    assert (problem["title"], problem["rule"]) == ("Slot fully booked", "capacity")
    assert "all 1 technicians on shift" in problem["detail"]
    assert [s["start"] for s in problem["next_free_slots"]] == [utc(11), utc(12), utc(13)]
    assert await branch.counts() == before and await booked_at(branch, utc(10)) == 1

    # kai comes back: the leave withdrawn, 10:00 takes a second car.
    withdrawn = await branch.client.delete(
        f"{STAFF}/staff/kai/leave/{sick.json()['leave_id']}", headers=branch.auth("manager", sub="max")
    )
    assert withdrawn.status_code == 204, withdrawn.text
    assert (await branch.book(10, phone="13900000002", plate="沪C22222", online=True)).status_code == 201

    read = await branch.get(f"{STAFF}/shifts", params={"from": MONDAY, "to": MONDAY}, role="technician")
    assert read.status_code == 200 and read.json()["plans_by_shifts"] is True
    assert [(s["staff_id"], s["starts_at"]) for s in read.json()["shifts"]] == [
        ("kai", "09:00:00"),
        ("lee", "11:00:00"),
        ("tom", "09:00:00"),
    ]
    assert read.json()["leave"] == []


async def test_a_branch_without_shifts_books_by_bays_and_a_day_without_shifts_of_a_rostered_branch_by_none(
    branch: Harness,
) -> None:
    assert {slot["places"] for slot in (await day_slots(branch)).values()} == {3}  # bays alone, as before
    await roster(branch, "2026-11-17", shift("tom", "09:00", "18:00"))
    assert {slot["places"] for slot in (await day_slots(branch)).values()} == {0}  # Monday: nobody on shift
    refused = await branch.book(10)
    assert refused.status_code == 409 and "no technician is on shift" in refused.json()["detail"]
    assert refused.json()["next_free_slots"][0]["start"] == utc(9, day=17)


async def test_time_on_shift_is_there_for_dispatch(branch: Harness) -> None:
    await roster(
        branch, MONDAY, shift("tom", "09:00", "18:00", ("12:00", "13:00")), shift("lee", "13:00", "18:00")
    )
    advance(branch, hours=4, minutes=30)  # 12:30, tom at lunch
    async with branch.service.runtime.driver.transaction() as unit:
        times = await shift_time(unit, BRANCH, branch.clock.now())
    assert {staff: (t.on_shift, t.worked_minutes, t.remaining_minutes) for staff, t in times.items()} == {
        "tom": (False, 180, 300),
        "lee": (False, 0, 300),
    }


# No double booking -----------------------------------------------------------------------------------------------


async def test_twenty_online_bookings_at_once_for_a_slot_of_three_places_book_three(harness: Harness) -> None:
    """Guard: the branch row lock every decision on places takes first (availability.branch_grid(lock=True)).
    Twenty online bookings through the public HTTP route of three service instances (a pool of connections
    each) read the slot while the test holds the appointments table; without the lock all twenty would see
    three places free and book."""
    await harness.open_branch(bays=4)
    await add_technician(harness)
    await roster(
        harness,
        MONDAY,
        shift("tom", "09:00", "18:00"),
        shift("lee", "09:00", "18:00"),
        shift("kai", "09:00", "18:00"),
    )
    assert (await day_slots(harness))[utc(10)]["places"] == 3  # three technicians, four bays

    async with harness.instance() as second, harness.instance() as third:
        clients = (harness.client, second, third)
        answers = await contend(
            harness,
            "appointments",
            *(clients[n % 3].post(f"{PUBLIC}/appointments", json=customer(n)) for n in range(20)),
        )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * 3 + [409] * 17, [a.text for a in answers if a.status_code not in (201, 409)]
    for refused in (answer.json() for answer in answers if answer.status_code == 409):
        assert (refused["title"], refused["rule"]) == ("Slot fully booked", "capacity")
        assert [s["start"] for s in refused["next_free_slots"]] == [utc(11), utc(12), utc(13)]
    assert await booked_at(harness, utc(10)) == 3
    assert len(await stored(harness, "AppointmentBooked")) == 3
    assert (await day_slots(harness))[utc(10)] | {"end": None} == {
        "start": utc(10),
        "end": None,
        "places": 3,
        "booked": 3,
        "held": 0,
        "remaining": 0,
        "bookable": False,
    }


# Waitlists --------------------------------------------------------------------------------------------------------


async def entries(h: Harness) -> dict[str, dict[str, Any]]:
    listed = await h.get(f"{STAFF}/waitlist", params={"on": MONDAY})
    assert listed.status_code == 200, listed.text
    return {entry["customer_name"]: entry for entry in listed.json()}


async def test_a_cancelled_place_goes_to_the_first_in_line_whose_hold_lapses_and_then_to_the_next(
    harness: Harness,
) -> None:
    await harness.open_branch(bays=1)
    rules = await put(harness, f"{STAFF}/booking-rules", {"waitlist_hold_minutes": 20})
    assert rules.status_code == 204, rules.text
    taken = await harness.book(10)
    assert taken.status_code == 201

    first = await harness.client.post(f"{PUBLIC}/waitlist", json=customer(1))
    second = await harness.client.post(f"{PUBLIC}/waitlist", json=customer(2))
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert (first.json()["ahead"], second.json()["ahead"]) == (0, 1)
    assert "customer_id" not in first.json()  # whoever typed the phone learns nothing of its owner
    has_room = await harness.client.post(f"{PUBLIC}/waitlist", json=customer(3, hour=11))
    assert has_room.status_code == 409 and has_room.json()["title"] == "Slot has room"
    again = await harness.client.post(f"{PUBLIC}/waitlist", json=customer(1))
    assert again.status_code == 409 and "already waits" in again.json()["detail"]
    before = await harness.counts()

    cancelled = await harness.post(
        f"{STAFF}/appointments/{taken.json()['appointment_id']}/cancel", {"reason": "客户改期"}
    )
    assert cancelled.status_code == 204, cancelled.text

    [offer] = await stored(harness, "WaitlistSlotOffered")
    assert offer["aggregate_id"] == first.json()["waitlist_entry_id"] and offer["branch_id"] == BRANCH
    expires = datetime.fromisoformat(offer["data"]["offer_expires_at"])
    assert expires == harness.clock.now() + timedelta(minutes=20)
    listed = await entries(harness)
    assert (listed["客户1"]["status"], listed["客户2"]["status"]) == ("offered", "waiting")
    assert datetime.fromisoformat(listed["客户1"]["offer_expires_at"]) == expires
    held = (await day_slots(harness))[utc(10)]
    assert (held["booked"], held["held"], held["remaining"], held["bookable"]) == (0, 1, 0, False)
    walk_up = await harness.book(10, phone="13700000009", plate="沪E99999", online=True)
    assert walk_up.status_code == 409  # the place is the first in line's while the hold lasts
    first_page = offer_link(harness, first.json()["waitlist_entry_id"], local(10))
    page = await harness.client.get(first_page)
    assert page.status_code == 200 and 'id="take"' in page.text and "有空位" in page.text

    advance(harness, minutes=19, seconds=59)
    await timers_caught_up(harness)
    assert len(await stored(harness, "WaitlistSlotOffered")) == 1  # still held for the first
    advance(harness, seconds=1)  # the hold's time is up
    await timers_caught_up(harness)

    offers = await stored(harness, "WaitlistSlotOffered")
    assert [o["aggregate_id"] for o in offers] == [
        first.json()["waitlist_entry_id"],
        second.json()["waitlist_entry_id"],
    ]
    listed = await entries(harness)
    assert (listed["客户1"]["status"], listed["客户2"]["status"]) == ("lapsed", "offered")
    lapsed_page = await harness.client.get(first_page)
    assert lapsed_page.status_code == 200 and "名额已转给下一位" in lapsed_page.text
    assert 'id="take"' not in lapsed_page.text
    too_late = await harness.client.post(f"{first_page}/acceptance")
    assert too_late.status_code == 409 and "text/html" in too_late.headers["content-type"]

    second_page = offer_link(harness, second.json()["waitlist_entry_id"], local(10))
    taken_up = await harness.client.post(f"{second_page}/acceptance?lang=en")
    assert taken_up.status_code == 200 and "You are booked for 2026-11-16 10:00" in taken_up.text
    assert (await harness.client.post(f"{second_page}/acceptance")).status_code == 200  # a second tap
    [(customer_id, channel)] = await rows(
        harness,
        "SELECT customer_id, channel FROM appointments WHERE status = 'booked' AND slot_start = %s",
        utc(10),
    )
    [(waiting_customer, status)] = await rows(
        harness,
        "SELECT customer_id, status FROM waitlist_entries WHERE entry_id = %s",
        second.json()["waitlist_entry_id"],
    )
    assert (customer_id, channel, status) == (waiting_customer, "online", "booked")
    assert (await day_slots(harness))[utc(10)]["held"] == 0
    assert len(await stored(harness, "AppointmentBooked")) == 2  # the cancelled one and the taken offer
    published = await harness.published(at_least=before[0] + 4)
    assert any(isinstance(e.data, WaitlistSlotOffered) for e in published)


# The calendar: holidays and make-up working days --------------------------------------------------------------------


async def test_a_make_up_working_sunday_is_bookable_and_a_holiday_is_not(harness: Harness) -> None:
    await harness.open_branch(
        opening_hours=[{"weekday": d, "opens_at": "09:00:00", "closes_at": "18:00:00"} for d in range(1, 7)]
    )
    chain = await put(
        harness,
        "/v1/booking-rules",
        {
            "dates": [
                {"on": "2026-11-22", "closed": False, "as_weekday": 1, "note": "调休"},
                {"on": "2026-11-23", "closed": True, "note": "公休"},
            ]
        },
        role="owner",
    )
    assert chain.status_code == 204, chain.text

    sunday = await harness.book(10, day=22, online=True)
    assert sunday.status_code == 201, sunday.text
    holiday = await harness.book(10, day=23, phone="13900000002", plate="沪C22222", online=True)
    assert holiday.status_code == 422, holiday.text
    assert holiday.json()["errors"] == [
        {"field": "body.slot_start", "message": "2026-11-23 is closed (公休)"}
    ]
    # The nearest free slots: the make-up Sunday's last ones (17 to 19 hours before), not the Tuesday's (23).
    assert [s["start"] for s in holiday.json()["nearest_free_slots"]] == [
        utc(15, day=22),
        utc(16, day=22),
        utc(17, day=22),
    ]
    assert len(await day_slots(harness, "2026-11-22")) == 9 and await day_slots(harness, "2026-11-23") == {}
    other_sunday = await harness.book(10, day=29, phone="13900000003", plate="沪C33333", online=True)
    assert other_sunday.status_code == 422  # a Sunday like any other: closed

    # A branch may open on the chain's holiday, its own way; the chain's make-up Sunday stays.
    branch = await put(
        harness,
        f"{STAFF}/booking-rules",
        {
            "dates": [
                {
                    "on": "2026-11-23",
                    "closed": False,
                    "opening_hours": [{"opens_at": "10:00", "closes_at": "12:00"}],
                }
            ]
        },
    )
    assert branch.status_code == 204, branch.text
    assert list(await day_slots(harness, "2026-11-23")) == [utc(10, day=23), utc(11, day=23)]
    read = (await harness.get(f"{STAFF}/booking-rules", role="technician")).json()
    assert [(d["on"], d["closed"]) for d in read["effective"]["dates"]] == [
        ("2026-11-22", False),
        ("2026-11-23", False),
    ]
    assert read["chain"]["dates"][1]["note"] == "公休" and read["branch"]["dates"][0]["closed"] is False


# Rules at the edge ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "role", "body", "field"),
    [
        ("/v1/booking-rules", "owner", {"min_notice_minutes": -1}, "body.min_notice_minutes"),
        ("/v1/booking-rules", "owner", {"max_days_ahead": True}, "body.max_days_ahead"),
        ("/v1/booking-rules", "owner", {"buffer_after_minutes": 241}, "body.buffer_after_minutes"),
        ("/v1/booking-rules", "owner", {"max_per_service_per_day": {"": 3}}, "body.max_per_service_per_day"),
        ("/v1/booking-rules", "owner", {"dates": [{"on": "2026-11-23", "closed": False}]}, "body.dates.0"),
        ("/v1/booking-rules", "owner", {"dates": [{"on": "23/11/2026", "closed": True}]}, "body.dates.0.on"),
        (
            f"{STAFF}/booking-rules",
            "manager",
            {"dates": [{"on": "2026-11-23", "closed": True}, {"on": "2026-11-23", "closed": True}]},
            "body.dates.1.on",
        ),
        (f"{STAFF}/booking-rules", "manager", {"unknown_rule": 1}, "body.unknown_rule"),
        (
            f"{STAFF}/shifts/{MONDAY}",
            "manager",
            {"shifts": [shift("nobody", "09:00", "18:00")]},
            "body.shifts.0.staff_id",
        ),
        (
            f"{STAFF}/shifts/{MONDAY}",
            "manager",
            {"shifts": [shift("tom", "09:00", "18:00"), shift("tom", "19:00", "20:00")]},
            "body.shifts.1.staff_id",
        ),
        (
            f"{STAFF}/shifts/{MONDAY}",
            "manager",
            {"shifts": [shift("tom", "18:00", "09:00")]},
            "body.shifts.0",
        ),
        (
            f"{STAFF}/shifts/{MONDAY}",
            "manager",
            {"shifts": [shift("tom", "09:00", "12:00", ("11:30", "12:30"))]},
            "body.shifts.0",
        ),
        (f"{STAFF}/shifts/2026-02-30", "manager", {"shifts": []}, "path.day"),
    ],
)
async def test_bad_rules_and_shifts_are_a_422_naming_the_field_and_change_nothing(
    branch: Harness, path: str, role: str, body: dict[str, Any], field: str
) -> None:
    answer = await put(branch, path, body, role=role)
    assert answer.status_code == 422, answer.text
    assert any(error["field"].startswith(field) for error in answer.json()["errors"]), answer.json()
    assert await rows(branch, "SELECT * FROM booking_rules") == []
    assert await rows(branch, "SELECT * FROM staff_shifts") == []


async def test_who_sets_rules_and_shifts(branch: Harness) -> None:
    assert (await put(branch, "/v1/booking-rules", {"max_per_day": 9}, role="manager")).status_code == 403
    assert (
        await put(branch, f"{STAFF}/booking-rules", {"max_per_day": 9}, role="advisor")
    ).status_code == 403
    assert (await put(branch, f"{STAFF}/shifts/{MONDAY}", {"shifts": []}, role="advisor")).status_code == 403
    leave = {"starts_at": "2026-11-16T09:00:00+08:00", "ends_at": "2026-11-16T08:00:00+08:00", "kind": "sick"}
    backwards = await branch.post(f"{STAFF}/staff/tom/leave", leave, role="manager", sub="max")
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "body"
    assert await rows(branch, "SELECT * FROM staff_leave") == []
    assert (await put(branch, f"{STAFF}/booking-rules", {"max_per_day": 1})).status_code == 204


async def test_the_chain_sets_defaults_a_branch_overrides_them_and_the_caps_name_their_rule(
    branch: Harness,
) -> None:
    chain = {"max_per_day": 5, "max_drop_off_per_day": 1, "min_notice_minutes": 90, "max_days_ahead": 14}
    assert (await put(branch, "/v1/booking-rules", chain, role="owner")).status_code == 204
    assert (await put(branch, f"{STAFF}/booking-rules", {"max_per_day": 2})).status_code == 204
    effective = (await branch.get(f"{STAFF}/booking-rules")).json()["effective"]
    assert (effective["max_per_day"], effective["max_drop_off_per_day"], effective["hold_minutes"]) == (
        2,
        1,
        5,
    )

    assert (await branch.book(9, visit_type="drop_off")).status_code == 422  # 09:00 is an hour away
    assert (await branch.book(10, visit_type="drop_off")).status_code == 201
    second_drop_off = await branch.book(11, phone="13900000002", plate="沪C22222", visit_type="drop_off")
    assert second_drop_off.status_code == 409
    assert (second_drop_off.json()["title"], second_drop_off.json()["rule"]) == (
        "Booking cap reached",
        "max_drop_off_per_day",
    )
    assert (await branch.book(11, phone="13900000002", plate="沪C22222")).status_code == 201
    third = await branch.book(12, phone="13900000003", plate="沪C33333")
    assert (third.status_code, third.json()["rule"]) == (409, "max_per_day")
    assert third.json()["next_free_slots"][0]["start"] == utc(9, day=17)
    far = await branch.book(10, phone="13900000004", plate="沪C44444", slot_start="2026-12-01T10:00:00+08:00")
    assert far.status_code == 422 and "max_days_ahead" in far.json()["errors"][0]["message"]


# Holds --------------------------------------------------------------------------------------------------------------


async def test_a_hold_keeps_the_place_for_its_booking_and_frees_it_when_it_expires(harness: Harness) -> None:
    await harness.open_branch(bays=1)
    held = await harness.client.post(
        f"{PUBLIC}/holds", json={"slot_start": local(10), "service_requested": "小保养"}
    )
    assert held.status_code == 201, held.text
    hold = held.json()
    assert hold["slot"]["start"] == utc(10)
    assert datetime.fromisoformat(hold["expires_at"]) == harness.clock.now() + timedelta(minutes=5)
    other = await harness.book(10, phone="13900000002", plate="沪C22222", online=True)
    assert other.status_code == 409  # held for the customer filling in the form
    wrong = await harness.book(11, online=True, hold_id=hold["hold_id"])
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.hold_id"
    unknown = await harness.book(10, online=True, hold_id="no-such-hold")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "body.hold_id"

    booked = await harness.book(10, online=True, hold_id=hold["hold_id"])
    assert booked.status_code == 201, booked.text
    slot = (await day_slots(harness))[utc(10)]
    assert (slot["booked"], slot["held"]) == (1, 0)

    # A hold left to expire: its place is free again once its time is up.
    eleven = await harness.client.post(
        f"{PUBLIC}/holds",
        json={"slot_start": local(11), "service_requested": "洗车", "visit_type": "drop_off"},
    )
    assert eleven.status_code == 201
    assert (await harness.book(11, phone="13900000002", plate="沪C22222", online=True)).status_code == 409
    advance(harness, minutes=5)
    assert (await harness.book(11, phone="13900000002", plate="沪C22222", online=True)).status_code == 201
    await timers_caught_up(harness)
    [(status,)] = await rows(
        harness, "SELECT status FROM slot_holds WHERE hold_id = %s", eleven.json()["hold_id"]
    )
    assert status == "expired"


# Confirmations and the customer's appointment page ------------------------------------------------------------------


async def no_show(h: Harness, hour: int, *, day: int) -> None:
    """The customer 13812345678 books and does not come."""
    booked = await h.book(hour, day=day)
    assert booked.status_code == 201, booked.text
    h.clock.set(datetime.fromisoformat(local(hour, day=day)) + timedelta(minutes=20))
    missed = await h.post(f"{STAFF}/appointments/{booked.json()['appointment_id']}/no-show")
    assert missed.status_code == 204, missed.text


async def test_a_customer_over_the_no_show_threshold_must_confirm_or_the_booking_is_released(
    branch: Harness,
) -> None:
    rules = {"no_show_threshold": 1, "confirmation_deadline_minutes": 120}
    assert (await put(branch, "/v1/booking-rules", rules, role="owner")).status_code == 204
    await no_show(branch, 9, day=16)
    ok = await branch.book(10, day=18, online=True)  # one no-show is not over the threshold
    assert ok.status_code == 201
    await no_show(branch, 10, day=18)
    [(count,)] = await rows(branch, "SELECT no_shows FROM customer_no_shows")
    assert count == 2

    released = await branch.book(15, day=20, online=True)
    confirmed = await branch.book(16, day=20, online=True)
    by_phone = await branch.book(17, day=20)  # the front desk books with the customer on the line
    assert {released.status_code, confirmed.status_code, by_phone.status_code} == {201}
    assert released.json().keys() == {"appointment_id", "slot"}  # the answer says nothing of the no-shows
    listed = {
        a["appointment_id"]: a
        for a in (await branch.get(f"{STAFF}/appointments", params={"on": "2026-11-20"})).json()
    }
    assert [
        listed[a.json()["appointment_id"]]["confirmation_required"] for a in (released, confirmed, by_phone)
    ] == [
        True,
        True,
        False,
    ]

    page = appointment_link(branch, confirmed.json()["appointment_id"])
    shown = await branch.client.get(page)
    assert shown.status_code == 200 and "请在2026-11-20 14:00前确认" in shown.text
    answered = await branch.client.post(f"{page}/confirmation")
    assert answered.status_code == 200 and "您已确认到店" in answered.text
    assert (await branch.client.post(f"{page}/confirmation")).status_code == 200  # a second tap
    [confirmation] = await stored(branch, "AppointmentConfirmed")
    assert confirmation["data"]["confirmed_by"] == "customer" and confirmation["actor"]["kind"] == "customer"

    branch.clock.set(datetime.fromisoformat(local(12, day=20)) + timedelta(minutes=59))
    await timers_caught_up(branch)
    assert await stored(branch, "AppointmentCancelled") == []
    branch.clock.set(datetime.fromisoformat(local(13, day=20)))  # two hours before 15:00
    await timers_caught_up(branch)
    [cancelled] = await stored(branch, "AppointmentCancelled")
    assert cancelled["aggregate_id"] == released.json()["appointment_id"]
    assert (
        cancelled["data"]["cancelled_by"] == "branch"
        and cancelled["actor"]["id"] == "workorder.confirmations"
    )
    branch.clock.set(datetime.fromisoformat(local(14, day=20)))
    await timers_caught_up(branch)
    assert len(await stored(branch, "AppointmentCancelled")) == 1  # the confirmed one stands


async def test_the_customer_moves_an_appointment_to_a_free_slot_on_its_page(branch: Harness) -> None:
    booked = await branch.book(10, online=True)
    for n in range(3):
        assert (await branch.book(11, phone=f"1390000000{n}", plate=f"沪C0000{n}")).status_code == 201
    page = appointment_link(branch, booked.json()["appointment_id"])
    shown = await branch.client.get(page, params={"lang": "en"})
    assert shown.status_code == 200 and "When: 2026-11-16 10:00" in shown.text
    assert 'value="2026-11-16T04:00:00+00:00"' in shown.text  # 12:00 local
    assert 'value="2026-11-16T03:00:00+00:00"' not in shown.text  # 11:00: full

    full = await branch.client.post(f"{page}/reschedule", data={"slot_start": local(11)})
    assert full.status_code == 409 and "text/html" in full.headers["content-type"]
    moved = await branch.client.post(f"{page}/reschedule?lang=en", data={"slot_start": local(12)})
    assert moved.status_code == 200 and "Moved to 2026-11-16 12:00" in moved.text
    [rescheduled] = await stored(branch, "AppointmentRescheduled")
    assert rescheduled["actor"]["kind"] == "customer" and rescheduled["data"]["slot"]["start"] == utc(12)
    forged = await branch.client.get(page[:-2] + ("aa" if not page.endswith("aa") else "bb"))
    assert forged.status_code == 403 and "链接无效" in forged.text
    # An offer's link never opens an appointment, though it names the appointment's id.
    offer_token = offer_link(branch, booked.json()["appointment_id"], local(10))
    other_use = await branch.client.get(offer_token.replace("/c/waitlist/", "/c/appointments/"))
    assert other_use.status_code == 403
