"""Drives the notification service in-process against real PostgreSQL and NATS, on a fixed clock: other
services' events are published on their streams as their relays would, the API is called over ASGI, and
providers are the recording one or the stand-in over real HTTP."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from pitlane_events import DomainEvent, Envelope
from pitlane_events.customer_profile import (
    ConsentChanged,
    ConsentSource,
    ContactKind,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerRegistered,
    CustomerSource,
)
from pitlane_events.types import Bay, Channel, Purpose
from pitlane_events.workorder import BranchOpened, ProgressRecorded, WorkOrderOpened
from pitlane_notification.adapters.channels.base import ChannelProvider
from pitlane_notification.bootstrap import NotificationService, NotificationSettings, build
from pitlane_platform.clock import FixedClock
from pitlane_platform.db import libpq_url
from pitlane_platform.testing.service_harness import ServiceHarness
from pitlane_platform.testing.shop import work_order_completed, work_order_opened

sys.path.insert(0, str(Path(__file__).parent))
from platform_flow import wait_until

# Tuesday 1 December 2026, 09:00 in Shanghai: inside every branch's waking hours.
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
BRANCH = "b1"
SHANGHAI_OFFSET = timedelta(hours=8)


def shanghai(day: int, hour: int, minute: int = 0, *, month: int = 12) -> datetime:
    """A wall-clock time in Shanghai (UTC+8, no daylight saving), as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - SHANGHAI_OFFSET


def settings_for(database_url: str, nats_url: str, **changes: Any) -> NotificationSettings:
    return NotificationSettings(
        database_url=database_url,
        nats_url=nats_url,
        env="test",
        jwt_secret="notification-test-jwt-secret-of-32-bytes-or-more",
        link_secret="notification-test-link-secret-of-32-bytes-or-more",
        public_base_url="https://shop.example.cn/",
        relay_poll_interval_s=0.2,
        timer_poll_interval_s=0.05,
        **changes,
    )


@dataclass
class Harness(ServiceHarness[NotificationSettings]):
    service: NotificationService = field(kw_only=True)

    # ---- a shop's world -----------------------------------------------------------------------------------

    async def open_branch(self, branch_id: str = BRANCH, name: str = "浦东张江店") -> None:
        event = BranchOpened(
            branch_id=branch_id,
            branch_name=name,
            address="上海市浦东新区张江路1号",
            timezone="Asia/Shanghai",
            opening_hours=(),
            bays=(Bay(bay_id="bay-1", name="1号工位"),),
        )
        await self.emit_and_wait("workorder", event, f"branch-{branch_id}", branch_id=branch_id)

    async def customer(
        self,
        customer_id: str,
        *,
        phone: str | None = "+8613812345678",
        wechat: str | None = None,
        email: str | None = None,
        marketing: Sequence[Channel] = (),
        name: str = "张伟",
    ) -> None:
        """Registered in customer-profile with the given contacts and marketing consent."""
        events: list[DomainEvent] = [
            CustomerRegistered(
                customer_id=customer_id,
                full_name=name,
                phone=phone or "+8613900000000",
                source=CustomerSource.WALK_IN,
            )
        ]
        if phone is None:
            events.append(
                CustomerContactRemoved(
                    customer_id=customer_id, kind=ContactKind.PHONE, value="+8613900000000"
                )
            )
        for kind, value in ((ContactKind.WECHAT, wechat), (ContactKind.EMAIL, email)):
            if value is not None:
                events.append(
                    CustomerContactAdded(customer_id=customer_id, kind=kind, value=value, is_primary=True)
                )
        for channel in marketing:
            events.append(
                ConsentChanged(
                    customer_id=customer_id,
                    channel=channel,
                    purpose=Purpose.MARKETING,
                    granted=True,
                    source=ConsentSource.REGISTRATION_FORM,
                )
            )
        envelopes = [self.envelope("customer-profile", event, customer_id) for event in events]
        await self.consumed("customer-profile", await self.publish(*envelopes))

    def opened(self, work_order_id: str, customer_id: str) -> WorkOrderOpened:
        """A work order checked in for the customer's car (沪A12345) by amy."""
        return work_order_opened(work_order_id, customer_id, f"v-{customer_id}")

    async def progress(self, work_order_id: str, customer_id: str, *texts: str) -> None:
        """A work order opened for the customer, and progress posted on it now (one event per text)."""
        posted = [
            ProgressRecorded(work_order_id=work_order_id, recorded_by="tom", text=text) for text in texts
        ]
        envelopes = [
            self.envelope("workorder", event, work_order_id, branch_id=BRANCH)
            for event in (self.opened(work_order_id, customer_id), *posted)
        ]
        await self.consumed("workorder", await self.publish(*envelopes))

    async def visit(
        self,
        work_order_id: str,
        customer_id: str,
        *,
        completed_at: datetime | None = None,
        total_fen: int = 68000,
        publish: bool = True,
    ) -> list[Envelope[Any]]:
        """A work order opened and completed at the branch (the completion `completed_at`, default now)."""
        at = completed_at or self.clock.now()
        opened = self.opened(work_order_id, customer_id)
        completed = work_order_completed(
            work_order_id,
            customer_id,
            f"v-{customer_id}",
            branch_id=BRANCH,
            completed_at=at,
            total_fen=total_fen,
        )
        envelopes = [
            self.envelope("workorder", opened, work_order_id, branch_id=BRANCH),
            self.envelope("workorder", completed, work_order_id, branch_id=BRANCH),
        ]
        if publish:
            await self.consumed("workorder", await self.publish(*envelopes))
        return envelopes

    # ---- what the service did -----------------------------------------------------------------------------

    async def messages(self, **where: Any) -> list[dict[str, Any]]:
        clauses = " AND ".join(f"{column} = %({column})s" for column in where) or "true"
        return await self.rows(
            f"SELECT * FROM messages WHERE {clauses} ORDER BY created_at, message_id", **where
        )

    async def recorded(self) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM recorded_messages ORDER BY recorded_at, message_id")

    async def until_message(self, **where: Any) -> dict[str, Any]:
        """The first message matching `where`, once there is one."""
        found: list[dict[str, Any]] = []

        async def exists() -> bool:
            found[:] = await self.messages(**where)
            return bool(found)

        exists.__name__ = f"a message with {where}"
        await wait_until(exists)
        return found[0]


@asynccontextmanager
async def running(
    database_url: str,
    nats_url: str,
    *,
    clock: FixedClock | None = None,
    providers: Mapping[Channel, ChannelProvider] | None = None,
    **changes: Any,
) -> AsyncIterator[Harness]:
    settings = settings_for(database_url, nats_url, **changes)
    clock = clock or FixedClock(START)
    service = build(settings, clock=clock, providers=providers)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.app), base_url="http://notification"
        ) as client,
    ):
        yield Harness(settings=settings, runtime=service.runtime, client=client, clock=clock, service=service)


async def lock_waiters(connection: psycopg.AsyncConnection[Any]) -> int:
    cursor = await connection.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


@asynccontextmanager
async def table_locked(database_url: str, table: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Writers of `table` wait until the block ends: requests started inside it meet at the database."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as holder:
        await holder.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        async with await psycopg.AsyncConnection.connect(
            libpq_url(database_url), autocommit=True
        ) as observer:
            yield observer
        await holder.commit()


async def both_waiting(observer: psycopg.AsyncConnection[Any], count: int) -> None:
    async def waiting() -> bool:
        return await lock_waiters(observer) >= count

    await wait_until(waiting)
