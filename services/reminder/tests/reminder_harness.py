"""Drives the reminder service in-process against real PostgreSQL and NATS, on a fixed clock: other services'
events published on their streams as their relays would, the API over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pitlane_events import Envelope
from pitlane_events.customer_profile import MileageSource, VehicleMileageRecorded, VehicleRegistered
from pitlane_platform.clock import FixedClock
from pitlane_platform.testing.service_harness import ServiceHarness
from pitlane_platform.testing.shop import work_order_completed, work_order_opened
from pitlane_reminder.bootstrap import ReminderService, ReminderSettings, build

BRANCH = "b1"
SHANGHAI = timedelta(hours=8)
# Friday 2 January 2026, 09:00 in Shanghai.
START = datetime(2026, 1, 2, 1, 0, tzinfo=UTC)


def shanghai(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A wall-clock time in Shanghai (UTC+8), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - SHANGHAI


@dataclass
class Harness(ServiceHarness[ReminderSettings]):
    service: ReminderService = field(kw_only=True)

    async def vehicle(
        self, vehicle_id: str, customer_id: str, *, plate: str = "沪A12345", **details: Any
    ) -> None:
        registered = VehicleRegistered(
            vehicle_id=vehicle_id,
            owner_customer_id=customer_id,
            plate=plate,
            brand="丰田",
            model="卡罗拉",
            **details,
        )
        await self.emit_and_wait("customer-profile", registered, vehicle_id)

    async def reading(self, vehicle_id: str, km: int, at: datetime, *, correction: str | None = None) -> None:
        recorded = VehicleMileageRecorded(
            vehicle_id=vehicle_id,
            mileage_km=km,
            source=MileageSource.STAFF,
            recorded_at=at,
            correction=correction,
        )
        await self.emit_and_wait("customer-profile", recorded, vehicle_id)

    def visit_events(
        self, work_order_id: str, vehicle_id: str, customer_id: str, *, km: int, completed_at: datetime
    ) -> list[Envelope[Any]]:
        opened = work_order_opened(work_order_id, customer_id, vehicle_id, km=km)
        completed = work_order_completed(
            work_order_id,
            customer_id,
            vehicle_id,
            branch_id=BRANCH,
            completed_at=completed_at,
            km=km,
            total_fen=48_000,
            technician_ids=("tom",),
        )
        return [
            self.envelope("workorder", opened, work_order_id, branch_id=BRANCH),
            self.envelope("workorder", completed, work_order_id, branch_id=BRANCH),
        ]

    async def visit(
        self, work_order_id: str, vehicle_id: str, customer_id: str, *, km: int, completed_at: datetime
    ) -> None:
        envelopes = self.visit_events(
            work_order_id, vehicle_id, customer_id, km=km, completed_at=completed_at
        )
        await self.consumed("workorder", await self.publish(*envelopes))

    async def reminders(self, vehicle_id: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT * FROM reminders WHERE vehicle_id = %(v)s ORDER BY kind, subject", v=vehicle_id
        )

    async def maintenance(self, vehicle_id: str) -> dict[str, Any]:
        [reminder] = [r for r in await self.reminders(vehicle_id) if r["kind"] == "maintenance"]
        return reminder

    async def due(self, reminder_id: str | None = None) -> list[Envelope[Any]]:
        sent = await self.published("reminder.ReminderDue")
        return [e for e in sent if reminder_id is None or e.data.reminder_id == reminder_id]

    async def at(self, moment: datetime) -> None:
        """Move the clock to `moment` and wait until every timer due by then has fired."""
        self.clock.set(moment)
        await self.timers_caught_up()


def settings_for(database_url: str, nats_url: str, **changes: Any) -> ReminderSettings:
    return ReminderSettings(
        database_url=database_url,
        nats_url=nats_url,
        env="test",
        jwt_secret="reminder-test-jwt-secret-of-32-bytes-or-more",
        link_secret="reminder-test-link-secret-of-32-bytes-or-more",
        public_base_url="https://shop.example.cn/",
        relay_poll_interval_s=0.2,
        timer_poll_interval_s=0.05,
        **changes,
    )


@asynccontextmanager
async def running(
    database_url: str, nats_url: str, *, clock: FixedClock | None = None, **changes: Any
) -> AsyncIterator[Harness]:
    settings = settings_for(database_url, nats_url, **changes)
    clock = clock or FixedClock(START)
    service = build(settings, clock=clock)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.app), base_url="http://reminder"
        ) as client,
    ):
        yield Harness(settings=settings, runtime=service.runtime, client=client, clock=clock, service=service)
