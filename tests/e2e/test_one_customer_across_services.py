"""One customer and one car across services (issue 10, ADR 11): customer-profile and workorder, each with its
own database, on one real NATS, their relays and consumers running — workorder resolves bookings to the
customers customer-profile knows, and customer-profile adopts the ones workorder met first.

Both services are built in-process (e2e_cluster.py, the `cluster` fixture in conftest.py); the cluster as
separate processes is test_api_workers'.
"""

from __future__ import annotations

import asyncio

from e2e_cluster import Cluster, eventually, rows


async def test_a_registered_customer_who_books_online_keeps_one_id_and_their_visit(cluster: Cluster) -> None:
    customer_id = await cluster.register("13800001111")
    vehicle = {"owner_customer_id": customer_id, "plate": "沪A10001", "brand": "大众", "model": "朗逸"}
    vehicle_id = (await cluster.call(cluster.profile, "POST", "/v1/vehicles", vehicle))["id"]

    async def workorder_knows_them() -> bool:
        return bool(
            rows(
                cluster.workorder_database,
                "SELECT 1 FROM directory_vehicles WHERE vehicle_id = %s",
                vehicle_id,
            )
        ) and bool(
            rows(
                cluster.workorder_database,
                "SELECT 1 FROM directory_phones WHERE customer_id = %s",
                customer_id,
            )
        )

    await eventually(workorder_knows_them, "workorder's directory has the customer and the car")
    booked = await cluster.book_online("138 0000 1111", "沪A10001", slot=0)
    assert booked["customer_id"] == customer_id
    work_order_id = await cluster.serve(booked["appointment_id"], mileage_km=42_000)

    async def visit_counted() -> bool:
        found = await cluster.lookup(plate="沪A10001")
        return found is not None and found["figures"]["visit_count"] == 1

    await eventually(visit_counted, "customer-profile counted the visit")
    by_plate, by_phone = await cluster.lookup(plate="沪A10001"), await cluster.lookup(phone="13800001111")
    assert by_plate == by_phone and by_plate is not None
    assert by_plate["customer"]["customer_id"] == customer_id
    assert [visit["work_order_id"] for visit in by_plate["visits"]] == [work_order_id]
    assert by_plate["figures"]["total_spend_fen"] == 38_000
    [car] = by_plate["vehicles"]
    assert (car["vehicle_id"], car["mileage_km"]) == (vehicle_id, 42_000)
    opened = rows(
        cluster.workorder_database,
        "SELECT customer_id, plate FROM work_orders WHERE work_order_id = %s",
        work_order_id,
    )
    assert opened == [(customer_id, "沪A10001")]
    assert rows(cluster.profile_database, "SELECT count(*) FROM customers")[0][0] == 1


async def test_a_first_time_online_booker_becomes_one_customer_and_is_found_again(cluster: Cluster) -> None:
    booked = await cluster.book_online("13900002222", "沪B20002", slot=0, brand="丰田", model="卡罗拉")
    again = await cluster.book_online("13900002222", "沪B20002", slot=1)
    assert again["customer_id"] == booked["customer_id"]
    work_order_id = await cluster.serve(booked["appointment_id"], mileage_km=15_000)

    async def adopted_with_the_visit() -> bool:
        found = await cluster.lookup(phone="13900002222")
        return found is not None and found["figures"]["visit_count"] == 1

    await eventually(adopted_with_the_visit, "customer-profile adopted the booker with the visit")
    found = await cluster.lookup(phone="13900002222")
    assert found is not None
    assert found["customer"]["customer_id"] == booked["customer_id"]
    assert found["customer"]["source"] == "online_booking"
    assert [visit["work_order_id"] for visit in found["visits"]] == [work_order_id]
    [car] = found["vehicles"]
    assert (car["plate"], car["brand"], car["mileage_km"]) == ("沪B20002", "丰田", 15_000)
    holders = rows(
        cluster.profile_database, "SELECT customer_id FROM customer_phones WHERE phone = %s", "+8613900002222"
    )
    assert holders == [(booked["customer_id"],)]
    assert rows(cluster.profile_database, "SELECT count(*) FROM customers")[0][0] == 1


async def test_registering_and_booking_with_one_phone_at_once_always_ends_as_one_customer(
    cluster: Cluster,
) -> None:
    races = 20
    phones = [f"137{n:08d}" for n in range(races)]
    outcomes = await asyncio.gather(
        *(
            asyncio.gather(
                cluster.register_racing(phone, name="赵敏"), cluster.book_online(phone, f"沪C{n:05d}", slot=n)
            )
            for n, phone in enumerate(phones)
        )
    )
    orders = await asyncio.gather(
        *(
            cluster.serve(booked["appointment_id"], mileage_km=10_000, brand="比亚迪", model="秦")
            for _, booked in outcomes
        )
    )

    async def every_visit_counted() -> bool:
        counted = rows(
            cluster.profile_database,
            "SELECT count(*) FROM visits v JOIN customer_phones p ON p.customer_id = v.customer_id",
        )
        return counted[0][0] == races

    await eventually(every_visit_counted, "every visit counted on a customer holding its phone", timeout=60)
    # The race was run, not dodged: workorder met phones its directory did not have yet, and those customers
    # were merged by customer-profile (registration and booking are concurrent, the directory lags by a hop).
    merged = rows(cluster.profile_database, "SELECT count(*) FROM customers WHERE merged_into IS NOT NULL")
    assert merged[0][0] >= 1
    for phone, (registered_id, booked), work_order_id in zip(phones, outcomes, orders, strict=True):
        found = await cluster.lookup(phone=phone)
        assert found is not None
        survivor = found["customer"]["customer_id"]
        # One customer holds both histories: the registration and the visit booked under either id.
        assert survivor in (registered_id, booked["customer_id"])
        ids = [i for i in (registered_id, booked["customer_id"]) if i is not None]
        assert [visit["work_order_id"] for visit in found["visits"]] == [work_order_id]
        assert found["figures"]["visit_count"] == 1
        live = rows(
            cluster.profile_database,
            "SELECT customer_id FROM customers WHERE customer_id = ANY(%s) AND merged_into IS NULL",
            ids,
        )
        assert live == [(survivor,)]
    # workorder followed every merge: once its directory gives the phone the survivor, so does a booking.
    for n, phone in enumerate(phones):
        found = await cluster.lookup(phone=phone)
        assert found is not None
        survivor = found["customer"]["customer_id"]

        async def followed(phone: str = phone, survivor: str = survivor) -> bool:
            return rows(
                cluster.workorder_database,
                "SELECT coalesce(c.merged_into, p.customer_id) FROM directory_phones p"
                " LEFT JOIN directory_customers c USING (customer_id) WHERE p.phone = %s",
                "+86" + phone,
            ) == [(survivor,)]

        await eventually(followed, "workorder's directory followed the merge")
        rebooked = await cluster.book_online(phone, "沪D00001", slot=races + n)
        assert rebooked["customer_id"] == survivor
