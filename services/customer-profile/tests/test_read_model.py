"""The 360° view fed by other services' real events on JetStream: visits, spend, mileage, declined add-ons,
NPS, reminders; each event counted once however often it is delivered."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from profile_testing import (
    Producer,
    Service,
    completion,
    customer_declined,
    eventually,
    figures,
    handled,
    make_vin,
    mileage_events,
    opening,
    register_customer,
    register_vehicle,
)
from sqlalchemy import select, text

from pitlane_events.customer_profile import ConsentChanged
from pitlane_events.notification import CustomerUnsubscribed, NpsAnswered, UnsubscribeSource
from pitlane_events.reminder import ReminderCancelled, ReminderKind, ReminderScheduled
from pitlane_events.types import Channel, Purpose
from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    WorkOrderOpened,
    WorkOrderVoided,
)
from pitlane_platform.schema import events

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def test_lookup_by_plate_returns_three_vehicles_ten_visits_and_everything_else(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    plates = ["沪A12345", "粤BD12345", "京N8888F"]
    vehicle_ids = [
        await register_vehicle(service, customer_id, plate, make_vin(10 + i), mileage_km=10_000)
        for i, plate in enumerate(plates)
    ]
    for visit in range(10):
        which = visit % 3
        await producer.publish(
            completion(
                work_order_id=f"wo-{visit}",
                customer_id=customer_id,
                vehicle_id=vehicle_ids[which],
                plate=plates[which],
                mileage_km=10_000 + 1_000 * (visit + 1),
                completed_at=START + timedelta(days=30 * visit),
                total_fen=10_000 + visit,
                declined=(("ao-brakes", "更换前刹车片", 68_000),) if visit == 9 else (),
            ),
            aggregate_id=f"wo-{visit}",
            version=5,
        )
    await producer.publish(
        NpsAnswered(
            survey_id="s-1",
            work_order_id="wo-9",
            customer_id=customer_id,
            advisor_id="amy",
            technician_ids=("tom",),
            branch_id="b1",
            score=9,
            comment="很专业",
        ),
        aggregate_id="s-1",
    )
    await producer.publish(
        ReminderScheduled(
            reminder_id="r-1",
            rule_id="oil",
            kind=ReminderKind.SERVICE_DUE_BY_DATE,
            vehicle_id=vehicle_ids[0],
            customer_id=customer_id,
            due_on=date(2027, 1, 10),
        ),
        aggregate_id="r-1",
    )

    async def all_arrived() -> bool:
        profile = (await service.get("/v1/lookup", plate="京N8888F")).json()
        return (
            len(profile["visits"]) == 10
            and profile["figures"]["latest_nps_score"] == 9
            and bool(profile["reminders"])
        )

    await eventually(all_arrived)
    profile = (await service.get("/v1/lookup", plate="京N8888F")).json()

    assert profile["customer"]["full_name"] == "王建国"
    assert sorted(v["plate"] for v in profile["vehicles"]) == sorted(plates)
    assert [v["work_order_id"] for v in profile["visits"]] == [f"wo-{n}" for n in reversed(range(10))]
    assert profile["visits"][0]["line_items"][0]["name"] == "更换机油机滤"
    assert profile["figures"]["visit_count"] == 10
    assert profile["figures"]["total_spend_fen"] == sum(10_000 + n for n in range(10))
    assert profile["figures"]["last_service_at"].startswith((START + timedelta(days=270)).date().isoformat())
    assert profile["figures"]["last_service_mileage_km"] == 20_000
    assert profile["figures"]["latest_nps_comment"] == "很专业"
    assert [a["item"] for a in profile["declined_add_ons"]] == ["更换前刹车片"]
    assert profile["reminders"][0]["due_on"] == "2027-01-10"
    by_plate = {v["plate"]: v for v in profile["vehicles"]}
    assert by_plate["沪A12345"]["visit_count"] == 4
    # Visit 9 (the last) was on the first vehicle: its odometer moved, with a published reading.
    assert by_plate["沪A12345"]["mileage_km"] == 20_000
    readings = {(r["work_order_id"], r["mileage_km"]) for r in by_plate["沪A12345"]["mileage_history"]}
    assert {(None, 10_000), ("wo-9", 20_000)} <= readings


async def test_a_completion_delivered_twice_counts_once(service: Service, producer: Producer) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", mileage_km=10_000)
    done = completion(
        work_order_id="wo-1",
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        plate="沪A12345",
        mileage_km=15_000,
        completed_at=START,
        total_fen=50_000,
    )
    first = await producer.publish(done, aggregate_id="wo-1", version=5)
    # The same envelope again past the duplicate window (a new Nats-Msg-Id: JetStream stores it again), and
    # the same fact in a new envelope (a producer replaying its history): neither may count.
    await producer.publish(envelope=first, message_id=f"{first.event_id}-again")
    await producer.publish(done, aggregate_id="wo-1", version=5)
    marker = await producer.publish(
        completion(
            work_order_id="wo-2",
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=16_000,
            completed_at=START + timedelta(days=1),
            total_fen=1,
        ),
        aggregate_id="wo-2",
        version=5,
    )

    async def marker_applied() -> bool:
        return (await figures(service, customer_id))[1] >= 50_001

    await eventually(marker_applied)
    assert marker.event_id
    assert await figures(service, customer_id) == (2, 50_001)
    readings = await mileage_events(service, vehicle_id)
    assert [r["data"]["mileage_km"] for r in readings] == [15_000, 16_000]
    # A chain-wide vehicle's event, caused by the completion it came from.
    assert {r["branch_id"] for r in readings} == {None}
    assert readings[0]["causation_id"] == str(first.event_id)
    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert (vehicle["last_service_mileage_km"], vehicle["mileage_km"]) == (16_000, 16_000)


async def test_a_voided_work_order_no_longer_counts_and_a_cancelled_reminder_is_not_shown(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    published = [
        await producer.publish(
            completion(
                work_order_id="wo-1",
                customer_id=customer_id,
                vehicle_id=vehicle_id,
                plate="沪A12345",
                mileage_km=1_000,
                completed_at=START,
                total_fen=9_900,
            ),
            aggregate_id="wo-1",
            version=5,
        ),
        await producer.publish(
            WorkOrderVoided(
                work_order_id="wo-1", customer_id=customer_id, reason="录入错误", manager_id="mia"
            ),
            aggregate_id="wo-1",
            version=6,
        ),
        await producer.publish(
            ReminderScheduled(
                reminder_id="r-1",
                rule_id="ins",
                kind=ReminderKind.INSURANCE_RENEWAL,
                vehicle_id=vehicle_id,
                customer_id=customer_id,
                due_on=date(2027, 3, 1),
            ),
            aggregate_id="r-1",
            version=1,
        ),
        await producer.publish(
            ReminderCancelled(reminder_id="r-1", reason="manual"), aggregate_id="r-1", version=2
        ),
    ]
    # Waiting for "no spend, no visit, no reminder" would be waiting for what is true before anything
    # arrives: wait until each event was applied, then look.
    await handled(service, *published)

    profile = (await service.get(f"/v1/customers/{customer_id}")).json()
    assert (profile["figures"]["visit_count"], profile["figures"]["total_spend_fen"]) == (0, 0)
    assert profile["visits"] == [] and profile["reminders"] == []
    assert await figures(service, customer_id) == (0, 0)
    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert (vehicle["visit_count"], vehicle["total_spend_fen"]) == (0, 0)
    async with service.runtime.engine.connect() as connection:
        applied = (
            await connection.execute(
                text(
                    "SELECT (SELECT voided FROM visits WHERE work_order_id = 'wo-1'), "
                    "(SELECT status FROM reminders WHERE reminder_id = 'r-1')"
                )
            )
        ).one()
    assert tuple(applied) == (True, "cancelled")  # both were recorded, then taken back


async def test_an_unsubscribe_withdraws_consent_on_the_customer(service: Service, producer: Producer) -> None:
    customer_id = await register_customer(
        service, consents=[{"channel": "sms", "purpose": "marketing", "granted": True}]
    )
    await producer.publish(
        CustomerUnsubscribed(
            customer_id=customer_id,
            channel=Channel.SMS,
            purpose=Purpose.MARKETING,
            source=UnsubscribeSource.LINK,
        ),
        aggregate_id="n-1",
    )

    async def withdrawn() -> bool:
        consents = (await service.get(f"/v1/customers/{customer_id}")).json()["customer"]["consents"]
        return consents.get("sms:marketing") is False

    await eventually(withdrawn)
    async with service.runtime.sessions() as session:
        [change] = (
            await session.execute(
                select(events.c.envelope).where(
                    events.c.stream_id == customer_id,
                    events.c.event_type == ConsentChanged.event_type,
                    events.c.envelope["data"]["granted"].as_boolean().is_(False),
                )
            )
        ).scalars()
    assert change["data"]["source"] == "unsubscribe_link" and change["branch_id"] is None


async def test_a_declined_add_on_stays_open_until_a_later_visit_does_the_work(
    service: Service, producer: Producer
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", mileage_km=10_000)
    await producer.publish(
        opening(customer_id, vehicle_id),
        aggregate_id="wo-1",
        version=1,
    )
    await producer.publish(
        customer_declined("更换机油机滤", 38_800, decided_at=START),
        aggregate_id="wo-1",
        version=4,
    )

    async def declined_and_checked_in() -> bool:
        profile = (await service.get(f"/v1/customers/{customer_id}")).json()
        return bool(profile["declined_add_ons"]) and profile["vehicles"][0]["mileage_km"] == 12_000

    await eventually(declined_and_checked_in)
    [declined] = (await service.get(f"/v1/customers/{customer_id}")).json()["declined_add_ons"]
    assert (declined["item"], declined["reason"], declined["vehicle_id"]) == (
        "更换机油机滤",
        "下次再换",
        vehicle_id,
    )

    # The next visit's line 更换机油机滤 does the declined work: it is no longer open.
    await producer.publish(
        completion(
            work_order_id="wo-2",
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=15_000,
            completed_at=START + timedelta(days=60),
        ),
        aggregate_id="wo-2",
        version=5,
    )

    async def closed() -> bool:
        profile = (await service.get(f"/v1/customers/{customer_id}")).json()
        return profile["figures"]["visit_count"] == 1 and profile["declined_add_ons"] == []

    await eventually(closed)


async def test_a_completion_that_fails_once_then_its_void_ends_with_the_visit_voided(
    service: Service, producer: Producer
) -> None:
    """The completion's first attempt fails (a database error the handler cannot avoid, once); its void
    arrives meanwhile and must wait for it, or the voided visit would count for good."""
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    async with service.runtime.engine.begin() as connection:
        # nextval is not rolled back with the failing transaction: exactly the first insert fails.
        await connection.execute(text("CREATE SEQUENCE visit_insert_attempts"))
        await connection.execute(
            text(
                "CREATE FUNCTION fail_first_visit_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF nextval('visit_insert_attempts') = 1 THEN RAISE EXCEPTION 'injected failure'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER fail_first_visit_insert BEFORE INSERT ON visits "
                "FOR EACH ROW EXECUTE FUNCTION fail_first_visit_insert()"
            )
        )
    completed = await producer.publish(
        completion(
            work_order_id="wo-1",
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=1_000,
            completed_at=START,
            total_fen=9_900,
        ),
        aggregate_id="wo-1",
        version=5,
    )
    voided = await producer.publish(
        WorkOrderVoided(work_order_id="wo-1", customer_id=customer_id, reason="录入错误", manager_id="mia"),
        aggregate_id="wo-1",
        version=6,
    )

    async def both_applied() -> bool:
        async with service.runtime.engine.connect() as connection:
            handled = await connection.execute(
                text("SELECT count(*) FROM inbox WHERE event_id IN (:completed, :voided)"),
                {"completed": completed.event_id, "voided": voided.event_id},
            )
            return handled.scalar_one() == 2

    await eventually(both_applied)
    async with service.runtime.engine.connect() as connection:
        attempts = (
            await connection.execute(text("SELECT last_value FROM visit_insert_attempts"))
        ).scalar_one()
        visit = (
            await connection.execute(text("SELECT voided FROM visits WHERE work_order_id = 'wo-1'"))
        ).one()
    assert attempts == 2  # it did fail once, and was retried
    assert visit.voided is True
    assert await figures(service, customer_id) == (0, 0)


async def test_a_corrected_check_in_reading_moves_the_odometer_back_and_a_lower_one_is_set_aside_aloud(
    service: Service, producer: Producer, caplog: pytest.LogCaptureFixture
) -> None:
    customer_id = await register_customer(service)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", mileage_km=80_000)

    def opened(work_order_id: str, mileage_km: int, correction: str | None = None) -> WorkOrderOpened:
        return WorkOrderOpened(
            work_order_id=work_order_id,
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=mileage_km,
            complaint="保养",
            advisor_id="amy",
            mileage_correction=correction,
            process=BUILT_IN_PROCESS,
        )

    # Below the last reading without a correction (workorder refuses that at its edge; a late or stray
    # reading can still come): set aside, with a warning naming the vehicle and both readings.
    await producer.publish(opened("wo-stray", 1_000), aggregate_id="wo-stray", version=1)
    await producer.publish(
        opened("wo-new-odometer", 120, "更换仪表"), aggregate_id="wo-new-odometer", version=1
    )

    async def corrected() -> bool:
        vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
        return bool(vehicle["mileage_km"] == 120)

    await eventually(corrected)
    readings = await mileage_events(service, vehicle_id)
    assert [(r["data"]["mileage_km"], r["data"]["correction"]) for r in readings] == [(120, "更换仪表")]
    [warning] = [r for r in caplog.records if r.getMessage().startswith("mileage reading set aside")]
    assert (warning.vehicle_id, warning.mileage_km, warning.last_mileage_km) == (vehicle_id, 1_000, 80_000)  # type: ignore[attr-defined]
    assert warning.work_order_id == "wo-stray"  # type: ignore[attr-defined]
