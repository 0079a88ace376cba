"""customer-profile and workorder, each on its own database, on one real NATS, built in-process with their
relays and consumers running (their apps over httpx's ASGI transport), so a test can reach into their
databases for the positive signals it waits on. The `cluster` fixture (conftest.py) starts them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

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


def cluster_settings(
    profile: dict[str, Any], workorder: dict[str, Any]
) -> tuple[CustomerProfileSettings, WorkorderSettings]:
    """Both services' settings for the e2e chain; `profile` and `workorder` hold each one's database and NATS
    connection settings."""
    common = {
        "env": "test",
        "chain_id": CHAIN,
        "relay_poll_interval_s": 0.2,
        "jwt_secret": SECRET,
        "link_secret": LINK_SECRET,
    }
    profile_settings = CustomerProfileSettings(
        pii_master_key="dGVzdC1waWktbWFzdGVyLWtleS0zMi1ieXRlcy4uLi4=",
        # One test user polls the lookup until the events arrive, far faster than a front desk does.
        lookup_rate_limit="100000/minute",
        **common,
        **profile,
    )  # type: ignore[arg-type]
    return profile_settings, WorkorderSettings(**common, **workorder)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_cluster(
    profile_settings: CustomerProfileSettings, workorder_settings: WorkorderSettings
) -> AsyncIterator[Cluster]:
    """Both services built as their bootstraps build them, inside their lifespans, with the branch open."""
    _, profile_app = build_profile(profile_settings)
    workorder = build_workorder(workorder_settings, clock=FixedClock(MONDAY_8AM))
    async with (
        profile_app.router.lifespan_context(profile_app),
        workorder.app.router.lifespan_context(workorder.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=profile_app), base_url="http://cp") as profile,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=workorder.app), base_url="http://wo") as wo,
    ):
        cluster = Cluster(
            profile,
            wo,
            profile_settings,
            workorder_settings,
            profile_settings.database_url,
            workorder_settings.database_url,
        )
        await cluster.open_branch()
        yield cluster


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

    async def open_branch(self) -> None:
        """The branch the tests book at, with BAYS bays, an advisor (amy) and a technician (tom)."""
        branch = {
            "branch_id": BRANCH,
            "name": "徐汇店",
            "address": "上海市徐汇区",
            "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号工位"} for n in range(1, BAYS + 1)],
        }
        await self.call(self.workorder, "POST", "/v1/branches", branch, role="manager")
        for staff_id, role in (("amy", "advisor"), ("tom", "technician")):
            staff = {"staff_id": staff_id, "display_name": staff_id, "role": role}
            await self.call(self.workorder, "POST", f"/v1/branches/{BRANCH}/staff", staff, role="manager")

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
        booked = dict(response.json())
        # The public answer names no customer (ADR 13); the test reads whom it resolved to from workorder.
        [(booked["customer_id"],)] = rows(
            self.workorder_database,
            "SELECT customer_id FROM appointments WHERE appointment_id = %s",
            booked["appointment_id"],
        )
        return booked

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
