"""Who the customer and the car are (ADR 11): check-ins and bookings resolve phones and plates through the
directory, which customer-profile's real events feed over JetStream; customers and cars nobody knows are
introduced; a reading below the car's last one needs a correction. Every refusal changes nothing."""

from __future__ import annotations

from typing import Any

from workorder_harness import BRANCH, Harness, directory_has, publish_from_profile, stored

from pitlane_events.customer_profile import (
    CustomerRegistered,
    CustomersMerged,
    CustomerSource,
    MileageSource,
    VehicleMileageRecorded,
    VehicleRegistered,
)
from pitlane_events.workorder import AppointmentBooked, CustomerIntroduced, VehicleIntroduced, WorkOrderOpened
from platform_flow import wait_until

WALK_INS = f"/v1/branches/{BRANCH}/work-orders"


def check_in(**body: Any) -> dict[str, Any]:
    return {"mileage_km": 50_000, "complaint": "保养", **body}


async def test_a_walk_in_by_phone_and_plate_finds_the_customer_and_car_customer_profile_knows(
    branch: Harness,
) -> None:
    await publish_from_profile(
        branch,
        (
            CustomerRegistered(
                customer_id="c-known", full_name="周杰", phone="+8613711112222", source=CustomerSource.WALK_IN
            ),
            "c-known",
            1,
        ),
        (
            VehicleRegistered(
                vehicle_id="v-known",
                owner_customer_id="c-known",
                plate="沪A88888",
                brand="大众",
                model="帕萨特",
                mileage_km=30_000,
            ),
            "v-known",
            1,
        ),
        (
            VehicleMileageRecorded(
                vehicle_id="v-known",
                mileage_km=45_000,
                source=MileageSource.STAFF,
                recorded_at=branch.clock.now(),
            ),
            "v-known",
            2,
        ),
    )

    async def known() -> bool:
        return await directory_has(
            branch, "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-known' AND mileage_km = 45000"
        )

    await wait_until(known)
    by_plate = await branch.post(WALK_INS, check_in(plate="沪A 88888"))
    assert by_plate.status_code == 201, by_plate.text
    by_phone = await branch.post(WALK_INS, check_in(phone="137 1111 2222", plate="沪A88888"))
    assert by_phone.status_code == 201, by_phone.text

    published = await branch.published(at_least=6)  # branch + 3 staff + 2 openings
    opened = [e.data for e in published if isinstance(e.data, WorkOrderOpened)]
    assert [(o.customer_id, o.vehicle_id) for o in opened] == [("c-known", "v-known")] * 2
    assert not [e for e in published if isinstance(e.data, CustomerIntroduced | VehicleIntroduced)]


async def test_a_new_customer_and_car_are_introduced_once_and_found_again(branch: Harness) -> None:
    first = await branch.post(
        WALK_INS,
        check_in(phone="13922223333", customer_name="吴女士", plate="粤B D12345", brand="比亚迪", model="汉"),
    )
    assert first.status_code == 201, first.text
    again = await branch.post(WALK_INS, check_in(plate="粤BD12345", mileage_km=50_100))
    assert again.status_code == 201, again.text
    booked = await branch.book(11, phone="13922223333", plate="粤BD12345", online=True)
    assert booked.status_code == 201, booked.text

    published = await branch.published(at_least=9)  # branch + 3 staff, 2 introductions, 2 openings, booking
    [customer] = [e.data for e in published if isinstance(e.data, CustomerIntroduced)]
    [vehicle] = [e.data for e in published if isinstance(e.data, VehicleIntroduced)]
    assert (customer.full_name, customer.phone, customer.met_through) == (
        "吴女士",
        "+8613922223333",
        "walk_in",
    )
    assert (vehicle.plate, vehicle.brand, vehicle.model, vehicle.owner_customer_id) == (
        "粤BD12345",
        "比亚迪",
        "汉",
        customer.customer_id,
    )
    opened = [e.data for e in published if isinstance(e.data, WorkOrderOpened)]
    assert [(o.customer_id, o.vehicle_id) for o in opened] == [(customer.customer_id, vehicle.vehicle_id)] * 2
    [booking] = [e.data for e in published if isinstance(e.data, AppointmentBooked)]
    assert booking.customer_id == customer.customer_id
    assert "customer_id" not in booked.json()  # an online booking tells nobody whose phone it was


async def test_a_booking_with_a_new_cars_make_model_and_vin_introduces_the_car(branch: Harness) -> None:
    booked = await branch.book(
        10,
        online=True,
        phone="13966667777",
        plate="沪D66666",
        brand="大众",
        model="朗逸",
        vin="LSVAU218XN2183294",
    )
    assert booked.status_code == 201, booked.text
    [vehicle] = [envelope["data"] for envelope in await stored(branch, "VehicleIntroduced")]
    [booking] = [envelope["data"] for envelope in await stored(branch, "AppointmentBooked")]
    assert (vehicle["plate"], vehicle["brand"], vehicle["model"], vehicle["vin"]) == (
        "沪D66666",
        "大众",
        "朗逸",
        "LSVAU218XN2183294",
    )
    assert booking["vehicle_id"] == vehicle["vehicle_id"]
    assert vehicle["owner_customer_id"] == booking["customer_id"]


async def test_an_arrival_checks_in_the_customer_and_car_the_booking_named(branch: Harness) -> None:
    """The front desk booked for a customer and car of the chain's (by id, as customer-profile knows them,
    though this branch has never seen them): on arrival the advisor types only what the car needs."""
    booked = await branch.book(10, customer_id="c-7", vehicle_id="v-7", plate="沪A77777")
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["appointment_id"]
    arrived = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{appointment}/arrival",
        {"mileage_km": 42_000, "complaint": "保养"},
    )
    assert arrived.status_code == 201, arrived.text
    [booking] = [envelope["data"] for envelope in await stored(branch, "AppointmentBooked")]
    [opened] = [envelope["data"] for envelope in await stored(branch, "WorkOrderOpened")]
    assert (booking["customer_id"], booking["vehicle_id"]) == ("c-7", "v-7")
    assert (opened["customer_id"], opened["vehicle_id"], opened["plate"], opened["appointment_id"]) == (
        "c-7",
        "v-7",
        "沪A77777",
        appointment,
    )


WHY_NEEDED = {
    "body.phone": "is required for a customer the chain does not know yet",
    "body.customer_name": "is required for a customer the chain does not know yet",
    "body.brand": "the chain does not know 沪E55555 yet: give its make and model",
    "body.model": "the chain does not know 沪E55555 yet: give its make and model",
    "body.plate": "is required to check a car in",
}


async def test_a_customer_or_car_nobody_knows_without_what_it_takes_to_introduce_them_is_a_422(
    branch: Harness,
) -> None:
    before = await branch.counts()
    cases = [
        (check_in(plate="沪E55555", brand="丰田", model="凯美瑞"), "body.phone"),
        (check_in(phone="13933334444", plate="沪E55555", brand="丰田", model="凯美瑞"), "body.customer_name"),
        (check_in(phone="13933334444", customer_name="郑先生", plate="沪E55555"), "body.brand"),
        (check_in(phone="13933334444", customer_name="郑先生", plate="沪E55555", brand="丰田"), "body.model"),
        (check_in(phone="13933334444", customer_name="郑先生"), "body.plate"),
    ]
    for body, field in cases:
        refused = await branch.post(WALK_INS, body)
        assert refused.status_code == 422, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == [field]
        assert refused.json()["errors"][0]["message"] == WHY_NEEDED[field]
    assert await branch.counts() == before


async def test_a_reading_below_the_last_one_needs_a_correction_with_a_reason(branch: Harness) -> None:
    car = check_in(phone="13944445555", customer_name="孙先生", plate="沪F66666", brand="本田", model="雅阁")
    assert (await branch.post(WALK_INS, {**car, "mileage_km": 91_000})).status_code == 201
    before = await branch.counts()

    lower = await branch.post(WALK_INS, check_in(plate="沪F66666", mileage_km=1_200))
    assert lower.status_code == 422, lower.text
    assert [error["field"] for error in lower.json()["errors"]] == ["body.mileage_km"]
    assert "91000 km" in lower.json()["detail"]
    assert await branch.counts() == before

    corrected = await branch.post(
        WALK_INS, check_in(plate="沪F66666", mileage_km=1_200, mileage_correction="更换仪表")
    )
    assert corrected.status_code == 201, corrected.text
    # The corrected reading is now the last one: a later check-in just above it needs no correction.
    assert (await branch.post(WALK_INS, check_in(plate="沪F66666", mileage_km=1_300))).status_code == 201
    published = await branch.published(at_least=9)  # branch + 3 staff, 2 introductions, 3 openings
    readings = [
        (o.mileage_km, o.mileage_correction)
        for o in (e.data for e in published)
        if isinstance(o, WorkOrderOpened)
    ]
    assert readings == [(91_000, None), (1_200, "更换仪表"), (1_300, None)]


async def test_after_a_merge_the_merged_customers_phone_and_orders_belong_to_the_survivor(
    branch: Harness,
) -> None:
    introduced = await branch.post(
        WALK_INS,
        check_in(phone="13955556666", customer_name="钱女士", plate="沪G77777", brand="宝马", model="3系"),
    )
    assert introduced.status_code == 201
    order = introduced.json()["work_order_id"]
    published = await branch.published(at_least=7)  # branch + 3 staff, customer and car introduced, opened
    [newcomer] = [e.data.customer_id for e in published if isinstance(e.data, CustomerIntroduced)]
    await publish_from_profile(
        branch,
        (
            CustomerRegistered(
                customer_id="c-old", full_name="钱女士", phone="+8613955556666", source=CustomerSource.PHONE
            ),
            "c-old",
            1,
        ),
        (CustomersMerged(surviving_customer_id="c-old", merged_customer_ids=(newcomer,)), "c-old", 2),
    )

    async def followed() -> bool:
        return await directory_has(
            branch,
            f"SELECT 1 FROM directory_customers WHERE customer_id = '{newcomer}' AND merged_into = 'c-old'",
        )

    await wait_until(followed)
    board = (await branch.get(f"/v1/branches/{BRANCH}/board")).json()
    assert [card["customer_id"] for card in board["columns"]["opened"] if card["work_order_id"] == order] == [
        "c-old"
    ]
    for body in (
        check_in(phone="13955556666", plate="沪G77777"),
        check_in(customer_id=newcomer, plate="沪G77777"),
    ):
        assert (await branch.post(WALK_INS, body)).status_code == 201
    opened = [e.data for e in await branch.published(at_least=9) if isinstance(e.data, WorkOrderOpened)]
    assert [o.customer_id for o in opened] == [newcomer, "c-old", "c-old"]


async def test_a_check_in_naming_the_car_by_id_alone_takes_the_plate_the_chain_knows(branch: Harness) -> None:
    await publish_from_profile(
        branch,
        (
            VehicleRegistered(
                vehicle_id="v-by-id",
                owner_customer_id="c-by-id",
                plate="沪F12345",
                brand="本田",
                model="思域",
                mileage_km=20_000,
            ),
            "v-by-id",
            1,
        ),
    )

    async def known() -> bool:
        return await directory_has(branch, "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-by-id'")

    await wait_until(known)
    checked_in = await branch.post(WALK_INS, check_in(customer_id="c-by-id", vehicle_id="v-by-id"))
    assert checked_in.status_code == 201, checked_in.text
    [opened] = [envelope["data"] for envelope in await stored(branch, "WorkOrderOpened")]
    assert (opened["vehicle_id"], opened["plate"]) == ("v-by-id", "沪F12345")


async def test_a_check_in_naming_a_car_the_chain_knows_no_plate_for_without_one_is_a_422(
    branch: Harness,
) -> None:
    before = await branch.counts()
    refused = await branch.post(WALK_INS, check_in(customer_id="c-9", vehicle_id="v-nobody-knows"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "body.plate", "message": "the chain knows no plate for vehicle v-nobody-knows: give it"}
    ]
    assert await branch.counts() == before
