"""The rare paths, each through the real service: import rows that meet what is stored; events that come
late, twice or out of order (an older answer after a newer one, a late completion, a void delivered again, a
completion replayed after its void, a reminder's history replayed); readings that are not news; events
under ids merged away twice; workorder's introductions that come again or before their owner.

Absences are asserted only after a positive signal: the inbox rows of the events under test (`handled`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from profile_testing import (
    CHAIN,
    Producer,
    Service,
    completion,
    customer_declined,
    figures,
    handled,
    inconsistencies,
    make_vin,
    mileage_events,
    opening,
    register_customer,
    register_vehicle,
    serving,
    upload,
)
from sqlalchemy import func, select

from pitlane_customer_profile.adapters.tables import customers, reminders, visits
from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_customer_profile.service_layer.importer import identity
from pitlane_events.notification import NpsAnswered
from pitlane_events.reminder import ReminderCancelled, ReminderKind, ReminderScheduled
from pitlane_events.workorder import (
    BookingChannel,
    CustomerIntroduced,
    VehicleIntroduced,
    WorkOrderVoided,
)
from pitlane_platform.schema import events

START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
IMPORT_HEADER = "姓名,手机,其他电话,备注,车牌,VIN,品牌,车型\n"


async def customer_count(service: Service) -> int:
    async with service.runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(customers)) or 0


# -- importing rows that meet stored customers and cars -------------------------------------------------


async def test_import_rows_meeting_stored_customers_and_cars_join_them_or_are_reported_never_duplicated(
    service: Service,
) -> None:
    stored = await register_customer(service)  # 王建国, 13812345678, other 13900001111, notes 只在周末来店
    await register_vehicle(service, stored, "沪A12345")
    other_car = make_vin(2)
    other = await register_customer(service, full_name="李梅", phone="13700000000", other_phones=[])
    await register_vehicle(service, other, "沪C00002", other_car)
    rows = [
        "王先生,13812345678,,新备注,沪B11111,,大众,朗逸",  # 2: the stored customer's phone: their new car
        "王某,13900001111,,,沪B22222,,大众,朗逸",  # 3: the stored customer's other phone: the same
        "李四,13600000000,13900001111,,沪B33333,,大众,朗逸",  # 4: another phone of the stored customer
        "赵六,13500000000,,,沪A12345,,大众,朗逸",  # 5: a new customer; the car is stored, left with its owner
        f"钱七,13400000000,,,沪B44444,{other_car},大众,朗逸",  # 6: a VIN stored under another plate
    ]
    content = (IMPORT_HEADER + "\n".join(rows) + "\n").encode()

    dry = await upload(service, content, dry_run=True)
    real = await upload(service, content, dry_run=False)

    for report in (dry, real):
        assert [(p["row"], p["field"]) for p in report["problems"]] == [(4, "other_phones"), (6, "vin")]
        assert (report["customers_created"], report["customers_existing"]) == (1, 2)
        assert (report["vehicles_created"], report["vehicles_existing"]) == (2, 1)
    profile = (await service.get(f"/v1/customers/{stored}")).json()
    assert (profile["customer"]["full_name"], profile["customer"]["notes"]) == ("王建国", "只在周末来店")
    assert profile["customer"]["source"] == "walk_in"
    assert sorted(v["plate"] for v in profile["vehicles"]) == ["沪A12345", "沪B11111", "沪B22222"]
    newcomer = (await service.get("/v1/lookup", phone="13500000000")).json()
    assert newcomer["customer"]["source"] == "import" and newcomer["vehicles"] == []
    for refused in ("13600000000", "13400000000"):
        assert (await service.get("/v1/lookup", phone=refused)).status_code == 404
    assert await customer_count(service) == 3
    assert await inconsistencies(service) == []
    again = await upload(service, content, dry_run=False)
    assert (again["customers_created"], again["vehicles_created"]) == (0, 0)


async def test_a_customer_erased_and_a_plate_given_up_can_be_imported_again(service: Service) -> None:
    """The ids an import derives from a phone or a plate may belong to a stream already: an erased customer
    who comes back, a plate a car no longer carries. Once the whole import failed with a 409 on them."""
    content = (IMPORT_HEADER + "王建国,13812345678,,,沪A12345,,大众,朗逸\n").encode()
    await upload(service, content, dry_run=False)
    first = (await service.get("/v1/lookup", phone="13812345678")).json()
    [car] = first["vehicles"]
    assert (
        await service.patch(f"/v1/vehicles/{car['vehicle_id']}", {"plate": "沪A54321"})
    ).status_code == 200
    erased = await service.client.post(
        f"/v1/customers/{first['customer']['customer_id']}/erasure", headers=service.owner_headers()
    )
    assert erased.status_code == 200, erased.text

    dry = await upload(service, content, dry_run=True)
    real = await upload(service, content, dry_run=False)

    for report in (dry, real):
        assert report["problems"] == []
        assert (report["customers_created"], report["vehicles_created"]) == (1, 1)
    back = (await service.get("/v1/lookup", phone="13812345678")).json()
    assert back["customer"]["customer_id"] != first["customer"]["customer_id"]
    assert [v["plate"] for v in back["vehicles"]] == ["沪A12345"]
    assert back["vehicles"][0]["vehicle_id"] != car["vehicle_id"]
    again = await upload(service, content, dry_run=False)
    assert (again["customers_created"], again["customers_existing"], again["vehicles_existing"]) == (0, 1, 1)
    assert await inconsistencies(service) == []

    # Erased again and back again: the first two ids of the phone are taken, the third derivation is used.
    erased_again = await service.client.post(
        f"/v1/customers/{back['customer']['customer_id']}/erasure", headers=service.owner_headers()
    )
    assert erased_again.status_code == 200, erased_again.text
    third = await upload(service, content, dry_run=False)
    assert third["problems"] == [] and third["customers_created"] == 1
    returned = (await service.get("/v1/lookup", phone="13812345678")).json()["customer"]["customer_id"]
    # Each derivation is of this chain: the same phone in another chain's import gets other ids.
    assert [first["customer"]["customer_id"], back["customer"]["customer_id"], returned] == [
        identity(CHAIN, "phone", key) for key in ("+8613812345678", "+8613812345678#1", "+8613812345678#2")
    ]


async def test_an_import_keeps_every_column_and_the_rows_after_a_customer_without_a_car(
    service: Service,
) -> None:
    content = (
        "姓名,手机,备注,会员等级,车牌,品牌,车型,购车日期,上牌日期,保险公司,保险到期\n"
        "王建国,13812345678,只在周末来店,gold,,,,,,,\n"  # a customer without a car
        "李梅,13700000000,,,沪B11111,大众,朗逸,2021-03-01,2021-03-15,中国人保,2027-05-01\n"
        "赵六,13600000000,,,沪B22222,大众,朗逸,,,中国平安,\n"  # an insurer without its expiry date
    ).encode()

    report = await upload(service, content, dry_run=False)

    assert [(p["row"], p["field"]) for p in report["problems"]] == [(4, "insurance_expires_on")]
    assert (report["customers_created"], report["vehicles_created"]) == (2, 1)
    carless = (await service.get("/v1/lookup", phone="13812345678")).json()
    assert (carless["customer"]["notes"], carless["customer"]["membership_tier"]) == ("只在周末来店", "gold")
    assert carless["vehicles"] == []
    [car] = (await service.get("/v1/lookup", phone="13700000000")).json()["vehicles"]
    assert (car["plate"], car["purchase_date"], car["registration_date"]) == (
        "沪B11111",
        "2021-03-01",
        "2021-03-15",
    )
    assert car["insurance"] == {
        "compulsory": {"insurer": "中国人保", "policy_number": None, "expires_on": "2027-05-01"}
    }


async def test_rows_repeating_a_plate_or_vin_of_an_earlier_row_with_another_owner_are_reported(
    service: Service,
) -> None:
    vin, other_vin = make_vin(1), make_vin(2)
    rows = [
        f"王建国,13812345678,,,沪B11111,{vin},大众,朗逸",
        "李梅,13700000000,,,沪B11111,,大众,朗逸",  # 3: the plate of row 2, another phone
        f"赵六,13600000000,,,沪B22222,{vin},大众,朗逸",  # 4: the VIN of row 2, another plate
        f"王建国,13812345678,,,沪B11111,{vin},大众,朗逸",  # 5: row 2 again: the same car, once is enough
        f"钱七,13500000000,,,沪B33333,{other_vin},大众,朗逸",
        "孙八,1234567,,,,,,",  # 7: a phone that is no mobile number, said as the API says it
    ]
    content = (IMPORT_HEADER + "\n".join(rows) + "\n").encode()

    report = await upload(service, content, dry_run=False)

    assert [(p["row"], p["field"], p["reason"]) for p in report["problems"]] == [
        (3, "plate", "沪B11111 appears above with another phone"),
        (4, "vin", f"{vin} appears above with another plate"),
        (7, "phone", "'1234567' is not a mainland mobile number (11 digits starting 13–19)"),
    ]
    assert (report["vehicles_created"], report["vehicles_existing"]) == (2, 1)


async def test_an_import_of_the_most_rows_allowed_runs_and_one_more_is_a_422_naming_the_file(
    settings: CustomerProfileSettings,
) -> None:
    rows = [f"客户{n},139{n:08d},,,,,," for n in range(4)]
    async with serving(settings, import_max_rows=3) as service:
        fits = await upload(service, (IMPORT_HEADER + "\n".join(rows[:3]) + "\n").encode(), dry_run=False)
        too_many = await service.client.post(
            "/v1/imports",
            params={"dry_run": "false"},
            files={"file": ("customers.csv", (IMPORT_HEADER + "\n".join(rows) + "\n").encode())},
            headers=service.owner_headers(),
        )
        assert fits["customers_created"] == 3
        assert too_many.status_code == 422, too_many.text
        assert [(e["field"], e["message"]) for e in too_many.json()["errors"]] == [
            ("file", "at most 3 rows per import; split the file")
        ]
        assert await customer_count(service) == 3


# -- events late, twice, or out of order ----------------------------------------------------------------


async def test_an_older_nps_answer_delivered_after_a_newer_one_does_not_replace_it(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)

    def answer(survey_id: str, score: int, comment: str) -> NpsAnswered:
        return NpsAnswered(
            survey_id=survey_id,
            work_order_id=f"wo-{survey_id}",
            customer_id=customer_id,
            advisor_id="amy",
            technician_ids=("tom",),
            branch_id="b1",
            score=score,
            comment=comment,
        )

    newer = await producer.publish(
        answer("s-2", 9, "后来很满意"), aggregate_id="s-2", occurred_at=START + timedelta(days=30)
    )
    older = await producer.publish(answer("s-1", 3, "当时不满意"), aggregate_id="s-1", occurred_at=START)
    await handled(service, newer, older)

    latest = (await service.get(f"/v1/customers/{customer_id}")).json()["figures"]
    assert (latest["latest_nps_score"], latest["latest_nps_comment"]) == (9, "后来很满意")
    assert latest["latest_nps_at"].startswith((START + timedelta(days=30)).date().isoformat())


async def test_a_completion_delivered_late_rolls_back_neither_the_last_service_nor_the_odometer(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")

    def done(work_order_id: str, mileage_km: int, completed_at: datetime, total_fen: int) -> object:
        return completion(
            work_order_id=work_order_id,
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=mileage_km,
            completed_at=completed_at,
            total_fen=total_fen,
        )

    later = await producer.publish(
        done("wo-2", 30_000, START + timedelta(days=30), 200), aggregate_id="wo-2", version=5
    )
    late = await producer.publish(done("wo-1", 25_000, START, 100), aggregate_id="wo-1", version=5)
    await handled(service, later, late)

    profile = (await service.get(f"/v1/customers/{customer_id}")).json()
    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    last = (START + timedelta(days=30)).date().isoformat()
    assert (profile["figures"]["visit_count"], profile["figures"]["total_spend_fen"]) == (2, 300)
    for record in (profile["figures"], vehicle):
        assert record["last_service_at"].startswith(last), record
        assert record["last_service_mileage_km"] == 30_000
    # The late reading is lower and not a correction: set aside, the odometer stays.
    assert vehicle["mileage_km"] == 30_000
    assert [r["data"]["mileage_km"] for r in await mileage_events(service, vehicle_id)] == [30_000]


async def test_the_same_reading_at_check_in_and_at_completion_is_recorded_once(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", mileage_km=10_000)
    opened = await producer.publish(
        opening(customer_id, vehicle_id),
        aggregate_id="wo-1",
        version=1,
    )
    completed = await producer.publish(
        completion(
            work_order_id="wo-1",
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=12_000,
            completed_at=START,
        ),
        aggregate_id="wo-1",
        version=5,
    )
    await handled(service, opened, completed)

    readings = await mileage_events(service, vehicle_id)
    assert [(r["data"]["mileage_km"], r["data"]["source"]) for r in readings] == [(12_000, "check_in")]
    history = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()["mileage_history"]
    assert sorted(r["mileage_km"] for r in history) == [10_000, 12_000]


async def test_a_void_delivered_twice_takes_the_visit_back_once(service: Service, producer: Producer) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    published = []
    for work_order_id, total_fen, day in (("wo-1", 9_900, 0), ("wo-2", 100, 1)):
        published.append(
            await producer.publish(
                completion(
                    work_order_id=work_order_id,
                    customer_id=customer_id,
                    vehicle_id=vehicle_id,
                    plate="沪A12345",
                    mileage_km=1_000 + day,
                    completed_at=START + timedelta(days=day),
                    total_fen=total_fen,
                ),
                aggregate_id=work_order_id,
                version=5,
            )
        )
    void = WorkOrderVoided(work_order_id="wo-1", customer_id=customer_id, reason="录入错误", manager_id="mia")
    # The same void in a second envelope (a producer replaying its history): a new event id, the same fact.
    for _ in range(2):
        published.append(await producer.publish(void, aggregate_id="wo-1", version=6))
    await handled(service, *published)

    assert await figures(service, customer_id) == (1, 100)
    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert (vehicle["visit_count"], vehicle["total_spend_fen"]) == (1, 100)
    profile = (await service.get(f"/v1/customers/{customer_id}")).json()
    assert [v["work_order_id"] for v in profile["visits"]] == ["wo-2"]


async def test_a_completion_replayed_after_its_void_does_not_count_again(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    done = completion(
        work_order_id="wo-1",
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        plate="沪A12345",
        mileage_km=1_000,
        completed_at=START,
        total_fen=9_900,
    )
    published = [
        await producer.publish(done, aggregate_id="wo-1", version=5),
        await producer.publish(
            WorkOrderVoided(
                work_order_id="wo-1", customer_id=customer_id, reason="录入错误", manager_id="mia"
            ),
            aggregate_id="wo-1",
            version=6,
        ),
        await producer.publish(done, aggregate_id="wo-1", version=5),  # replayed, in a new envelope
    ]
    await handled(service, *published)

    assert await figures(service, customer_id) == (0, 0)
    async with service.runtime.sessions() as session:
        assert (await session.execute(select(visits.c.work_order_id, visits.c.voided))).all() == [
            ("wo-1", True)
        ]
    assert (await service.get(f"/v1/customers/{customer_id}")).json()["visits"] == []


async def test_a_reminders_history_replayed_after_its_cancellation_does_not_bring_it_back(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    scheduled = ReminderScheduled(
        reminder_id="r-1",
        rule_id="oil",
        kind=ReminderKind.SERVICE_DUE_BY_DATE,
        vehicle_id=vehicle_id,
        customer_id=customer_id,
        due_on=date(2027, 1, 10),
    )
    published = [
        await producer.publish(scheduled, aggregate_id="r-1", version=1),
        await producer.publish(
            ReminderCancelled(reminder_id="r-1", reason="manual"), aggregate_id="r-1", version=2
        ),
        await producer.publish(scheduled, aggregate_id="r-1", version=1),  # the history again, new envelope
    ]
    await handled(service, *published)

    async with service.runtime.sessions() as session:
        assert await session.scalar(select(reminders.c.status).where(reminders.c.reminder_id == "r-1")) == (
            "cancelled"
        )
    assert (await service.get(f"/v1/customers/{customer_id}")).json()["reminders"] == []


async def test_the_completions_add_on_summary_keeps_the_reason_the_decline_brought(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    published = [
        await producer.publish(
            opening(customer_id, vehicle_id),
            aggregate_id="wo-1",
            version=1,
        ),
        await producer.publish(
            customer_declined("更换前刹车片", 68_000, decided_at=START),
            aggregate_id="wo-1",
            version=3,
        ),
        await producer.publish(
            completion(
                work_order_id="wo-1",
                customer_id=customer_id,
                vehicle_id=vehicle_id,
                plate="沪A12345",
                mileage_km=12_000,
                completed_at=START + timedelta(hours=3),
                declined=(("ao-1", "更换前刹车片", 68_000),),
            ),
            aggregate_id="wo-1",
            version=5,
        ),
    ]
    await handled(service, *published)

    [declined] = (await service.get(f"/v1/customers/{customer_id}")).json()["declined_add_ons"]
    assert (declined["add_on_id"], declined["item"], declined["reason"]) == (
        "ao-1",
        "更换前刹车片",
        "下次再换",
    )


# -- ids merged away, introductions again or early ------------------------------------------------------


async def test_events_under_an_id_merged_away_twice_count_for_the_last_survivor(
    service: Service, producer: Producer
) -> None:
    first = await register_customer(service, phone="13700000001", other_phones=[], wechat_id=None)
    second = await register_customer(service, phone="13700000002", other_phones=[], wechat_id=None)
    last = await register_customer(service, phone="13700000003", other_phones=[], wechat_id=None)
    vehicle_id = await register_vehicle(service, first, "沪A12345")
    for survivor, merged in ((second, first), (last, second)):
        response = await service.post(f"/v1/customers/{survivor}/merge", {"merged_customer_ids": [merged]})
        assert response.status_code == 200, response.text

    published = [
        await producer.publish(
            completion(
                work_order_id="wo-1",
                customer_id=first,  # workorder still knows the customer by the first id
                vehicle_id=vehicle_id,
                plate="沪A12345",
                mileage_km=20_000,
                completed_at=START,
                total_fen=45_600,
            ),
            aggregate_id="wo-1",
            version=5,
        ),
        await producer.publish(
            NpsAnswered(
                survey_id="s-1",
                work_order_id="wo-1",
                customer_id=first,
                advisor_id="amy",
                technician_ids=("tom",),
                branch_id="b1",
                score=10,
            ),
            aggregate_id="s-1",
        ),
    ]
    await handled(service, *published)

    assert await figures(service, last) == (1, 45_600)
    profile = (await service.get(f"/v1/customers/{last}")).json()
    assert [v["work_order_id"] for v in profile["visits"]] == ["wo-1"]
    assert profile["figures"]["latest_nps_score"] == 10
    assert [v["vehicle_id"] for v in profile["vehicles"]] == [vehicle_id]
    assert await inconsistencies(service) == []


async def test_an_introduction_delivered_again_adopts_the_customer_once(
    service: Service, producer: Producer
) -> None:
    introduction = CustomerIntroduced(
        customer_id="wo-customer-1",
        full_name="王先生",
        phone="+8613812345678",
        met_through=BookingChannel.ONLINE,
    )
    published = [await producer.publish(introduction, aggregate_id="wo-customer-1") for _ in range(2)]
    await handled(service, *published)

    async with service.runtime.sessions() as session:
        registered = await session.scalar(
            select(func.count())
            .select_from(events)
            .where(events.c.event_type == "customer-profile.CustomerRegistered")
        )
    assert registered == 1
    profile = (await service.get("/v1/lookup", phone="13812345678")).json()
    assert (profile["customer"]["customer_id"], profile["customer"]["source"]) == (
        "wo-customer-1",
        "online_booking",
    )
    assert await inconsistencies(service) == []


async def test_a_car_introduced_before_its_owner_waits_for_the_owner_and_a_known_plate_keeps_its_car(
    service: Service, producer: Producer
) -> None:
    known_owner = await register_customer(service)
    known_car = await register_vehicle(service, known_owner, "沪A12345")

    def car(vehicle_id: str, plate: str) -> VehicleIntroduced:
        return VehicleIntroduced(
            vehicle_id=vehicle_id, owner_customer_id="wo-customer-1", plate=plate, brand="比亚迪", model="汉"
        )

    published = [
        await producer.publish(car("wo-vehicle-1", "粤BD12345"), aggregate_id="wo-vehicle-1"),
        await producer.publish(car("wo-vehicle-2", "沪A12345"), aggregate_id="wo-vehicle-2"),
        await producer.publish(
            CustomerIntroduced(
                customer_id="wo-customer-1",
                full_name="李梅",
                phone="+8613700000000",
                met_through=BookingChannel.WALK_IN,
            ),
            aggregate_id="wo-customer-1",
        ),
    ]
    await handled(service, *published)

    newcomer = (await service.get("/v1/lookup", plate="粤BD12345")).json()
    assert newcomer["customer"]["customer_id"] == "wo-customer-1"
    assert [v["vehicle_id"] for v in newcomer["vehicles"]] == ["wo-vehicle-1"]
    known = (await service.get("/v1/lookup", plate="沪A12345")).json()
    assert (known["customer"]["customer_id"], [v["vehicle_id"] for v in known["vehicles"]]) == (
        known_owner,
        [known_car],
    )
    assert (await service.get("/v1/vehicles/wo-vehicle-2")).status_code == 404
    assert await inconsistencies(service) == []
