"""One customer and one car across services (issue 10, ADR 11): customer-profile and workorder, each with its
own database, on one real NATS, their relays and consumers running — workorder resolves bookings to the
customers customer-profile knows, and customer-profile adopts the ones workorder met first.

Both services are built in-process (their apps over httpx's ASGI transport), so the test can reach into
their databases for the positive signals it waits on; the cluster as separate processes is test_api_workers'.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_customer_profile.bootstrap import build as build_profile
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import FixedClock
from pitlane_platform.db import libpq_url
from pitlane_workorder.bootstrap import WorkorderSettings
from pitlane_workorder.bootstrap import build as build_workorder

CHAIN = "chain-e2e"
BRANCH = "b1"
SECRET = "e2e-jwt-secret-" + "x" * 32
LINK_SECRET = "e2e-link-secret-" + "y" * 32
# Monday 16 November 2026, 08:00 in Shanghai: the day's slots are all ahead of the workorder clock.
MONDAY_8AM = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
SLOT_HOURS = range(9, 18)
BAYS = 4


@dataclass
class Cluster:
    profile: httpx.AsyncClient
    workorder: httpx.AsyncClient
    profile_settings: CustomerProfileSettings
    workorder_settings: WorkorderSettings
    profile_database: str
    workorder_database: str

    def headers(self, role: str = "advisor", *, sub: str = "amy") -> dict[str, str]:
        branches = ["*"] if role == "owner" else [BRANCH]
        token = mint_dev_token(self.profile_settings, role=role, branches=branches, sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, body: Any = None, *, role: str = "advisor"
    ) -> dict[str, Any]:
        response = await client.request(method, path, json=body, headers=self.headers(role))
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else {}

    async def register(self, phone: str, name: str = "王建国") -> str:
        body = {"full_name": name, "phone": phone, "source": "walk_in"}
        return str((await self.call(self.profile, "POST", "/v1/customers", body))["id"])

    async def register_racing(self, phone: str, name: str) -> str | None:
        """Register, or None when the phone is already a customer's: the booking's introduction was adopted
        first, which is the other way the race can end (still one customer)."""
        body = {"full_name": name, "phone": phone, "source": "walk_in"}
        response = await self.profile.post("/v1/customers", json=body, headers=self.headers())
        if response.status_code == 409:
            assert "already belongs to customer" in response.json()["detail"], response.text
            return None
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def book_online(self, phone: str, plate: str, slot: int, **extra: Any) -> dict[str, Any]:
        hour, day = SLOT_HOURS[slot % len(SLOT_HOURS)], 16 + slot // (len(SLOT_HOURS) * BAYS)
        body = {
            "slot_start": f"2026-11-{day:02d}T{hour:02d}:00:00+08:00",
            "customer_name": "李娜",
            "phone": phone,
            "plate": plate,
            "service_requested": "小保养",
            **extra,
        }
        response = await self.workorder.post(f"/v1/public/branches/{BRANCH}/appointments", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def serve(self, appointment_id: str, mileage_km: int, **arrival: Any) -> str:
        """Arrival, dispatch, progress, QC, settlement and completion of one visit; the work order's id."""
        base = f"/v1/branches/{BRANCH}"
        opened = await self.call(
            self.workorder,
            "POST",
            f"{base}/appointments/{appointment_id}/arrival",
            {"mileage_km": mileage_km, "complaint": "保养", **arrival},
        )
        order = f"{base}/work-orders/{opened['work_order_id']}"
        await self.call(self.workorder, "POST", f"{order}/technicians", {"technician_id": "tom"})
        await self.call(self.workorder, "POST", f"{order}/progress", {"text": "更换机油"}, role="technician")
        await self.call(self.workorder, "POST", f"{order}/quality-check", {"passed": True}, role="manager")
        line = {
            "item_code": "OIL",
            "name": "机油机滤",
            "category": "parts",
            "quantity": "1",
            "unit_price_fen": 38_000,
            "line_total_fen": 38_000,
        }
        settlement = {
            "line_items": [line],
            "payments": [{"method": "wechat_pay", "amount_fen": 38_000}],
            "total_fen": 38_000,
        }
        await self.call(self.workorder, "POST", f"{order}/settlement", settlement, role="finance")
        await self.call(self.workorder, "POST", f"{order}/completion", {})
        return str(opened["work_order_id"])

    async def lookup(self, **by: str) -> dict[str, Any] | None:
        response = await self.profile.get("/v1/lookup", params=by, headers=self.headers())
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())


def rows(database: str, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database)) as connection:
        return connection.execute(sql, parameters).fetchall()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(make_database: Callable[[], str], nats_url: str) -> AsyncIterator[Cluster]:
    common = {
        "nats_url": nats_url,
        "env": "test",
        "chain_id": CHAIN,
        "relay_poll_interval_s": 0.2,
        "jwt_secret": SECRET,
        "link_secret": LINK_SECRET,
    }
    profile_database, workorder_database = make_database(), make_database()
    profile_settings = CustomerProfileSettings(
        database_url=profile_database,
        pii_master_key="dGVzdC1waWktbWFzdGVyLWtleS0zMi1ieXRlcy4uLi4=",
        # One test user polls the lookup until the events arrive, far faster than a front desk does.
        lookup_rate_limit="100000/minute",
        **common,
    )  # type: ignore[arg-type]
    workorder_settings = WorkorderSettings(database_url=workorder_database, **common)  # type: ignore[arg-type]
    _, profile_app = build_profile(profile_settings)
    workorder = build_workorder(workorder_settings, clock=FixedClock(MONDAY_8AM))
    async with (
        profile_app.router.lifespan_context(profile_app),
        workorder.app.router.lifespan_context(workorder.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=profile_app), base_url="http://cp") as profile,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=workorder.app), base_url="http://wo") as wo,
    ):
        cluster = Cluster(
            profile, wo, profile_settings, workorder_settings, profile_database, workorder_database
        )
        branch = {
            "branch_id": BRANCH,
            "name": "徐汇店",
            "address": "上海市徐汇区",
            "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号工位"} for n in range(1, BAYS + 1)],
        }
        await cluster.call(wo, "POST", "/v1/branches", branch, role="manager")
        for staff_id, role in (("amy", "advisor"), ("tom", "technician")):
            staff = {"staff_id": staff_id, "display_name": staff_id, "role": role}
            await cluster.call(wo, "POST", f"/v1/branches/{BRANCH}/staff", staff, role="manager")
        yield cluster


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
