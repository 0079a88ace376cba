"""A walk-in customer's 360° figures do not depend on the order in which workorder's events of different
aggregates are applied: completions (and voids) of their work orders applied before the customer's or the
car's introduction — as after the consumer process is killed and its batch redelivered late — count once
the row appears, exactly as when the introductions come first (ADR 11, addendum).

Each order is forced: the events are published on workorder's stream in that order, and every group waits
for its inbox rows (`handled`) before the next is published — except a car introduced before its owner,
which waits for its owner by design."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from profile_testing import (
    Producer,
    Service,
    completion,
    figures,
    handled,
    inconsistencies,
    register_customer,
)
from sqlalchemy import select

from pitlane_customer_profile.adapters.tables import customers, vehicles
from pitlane_events import Envelope
from pitlane_events.workorder import BookingChannel, CustomerIntroduced, VehicleIntroduced, WorkOrderVoided

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CUSTOMER = "wo-customer-1"
CAR = "wo-vehicle-1"
PLATE = "粤BD12345"
PHONE = "+8613812345678"  # the phone `register_customer` registers


async def publish_group(producer: Producer, group: str) -> list[Envelope[Any]]:
    """Publish one group of workorder's events: the customer's introduction, the car's, or the visits —
    wo-1 and wo-2 completed (100 and 200 fen, the later one at 12 000 km) and wo-3 completed and voided."""
    if group == "customer":
        introduction = CustomerIntroduced(
            customer_id=CUSTOMER, full_name="李梅", phone=PHONE, met_through=BookingChannel.WALK_IN
        )
        return [await producer.publish(introduction, aggregate_id=CUSTOMER)]
    if group == "car":
        car = VehicleIntroduced(
            vehicle_id=CAR, owner_customer_id=CUSTOMER, plate=PLATE, brand="比亚迪", model="汉"
        )
        return [await producer.publish(car, aggregate_id=CAR)]
    published = []
    for number, (total_fen, mileage_km) in enumerate([(100, 10_000), (200, 12_000), (300, 11_000)], start=1):
        done = completion(
            work_order_id=f"wo-{number}",
            customer_id=CUSTOMER,
            vehicle_id=CAR,
            plate=PLATE,
            mileage_km=mileage_km,
            completed_at=START + timedelta(days=number * 30 if number < 3 else 45),
            total_fen=total_fen,
        )
        published.append(await producer.publish(done, aggregate_id=f"wo-{number}", version=5))
    void = WorkOrderVoided(work_order_id="wo-3", customer_id=CUSTOMER, reason="录入错误", manager_id="mia")
    published.append(await producer.publish(void, aggregate_id="wo-3", version=6))
    return published


async def publish_in_order(service: Service, producer: Producer, order: tuple[str, ...]) -> None:
    published: list[Envelope[Any]] = []
    owner_published = False
    for group in order:
        published += await publish_group(producer, group)
        owner_published |= group == "customer"
        if owner_published:
            await handled(service, *published)
    await handled(service, *published)


async def last_service(service: Service, table: Any, key: Any, row_id: str) -> tuple[Any, ...]:
    async with service.runtime.sessions() as session:
        row = (
            await session.execute(
                select(
                    table.c.visit_count,
                    table.c.total_spend_fen,
                    table.c.last_service_at,
                    table.c.last_service_mileage_km,
                ).where(key == row_id)
            )
        ).one()
    return tuple(row)


EXPECTED = (2, 300, START + timedelta(days=60), 12_000)  # wo-1 and wo-2; wo-3 voided


@pytest.mark.parametrize(
    "order",
    [
        ("customer", "car", "visits"),
        ("visits", "customer", "car"),
        ("customer", "visits", "car"),
        ("car", "visits", "customer"),
    ],
    ids=["introductions-first", "visits-first", "visits-between", "car-held-for-its-owner"],
)
async def test_a_walk_in_customers_and_cars_figures_are_the_same_whichever_is_applied_first(
    service: Service, producer: Producer, order: tuple[str, ...]
) -> None:
    await publish_in_order(service, producer, order)

    assert await last_service(service, customers, customers.c.customer_id, CUSTOMER) == EXPECTED
    assert await last_service(service, vehicles, vehicles.c.vehicle_id, CAR) == EXPECTED
    profile = (await service.get(f"/v1/customers/{CUSTOMER}")).json()
    assert (profile["figures"]["visit_count"], profile["figures"]["total_spend_fen"]) == (2, 300)
    assert await inconsistencies(service) == []


async def test_visits_applied_before_an_introduction_merged_into_a_registered_customer_count_for_that_customer(
    service: Service, producer: Producer
) -> None:
    registered = await register_customer(service)  # holds PHONE: the introduction is merged into them
    await publish_in_order(service, producer, ("visits", "customer"))

    async with service.runtime.sessions() as session:
        merged_into = await session.scalar(
            select(customers.c.merged_into).where(customers.c.customer_id == CUSTOMER)
        )
    assert merged_into == registered
    assert await figures(service, registered) == (2, 300)
    assert await inconsistencies(service) == []
