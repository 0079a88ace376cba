"""Drives the workorder app over HTTP in-process, against real PostgreSQL and NATS, on a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import psycopg
from sqlalchemy import func, select

from pitlane_events import Actor, DomainEvent, Envelope, decode
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import FixedClock
from pitlane_platform.db import libpq_url
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.schema import events, outbox
from pitlane_platform.testing.jetstream import publish_envelopes as publish_to_streams
from pitlane_workorder.bootstrap import Workorder, WorkorderSettings, build
from pitlane_workorder.entrypoints.consumers import build_consumers
from platform_flow import stream_messages, wait_until

BRANCH = "b1"
# Monday 16 November 2026, 08:00 in Shanghai: before opening, so the day's slots are all ahead.
MONDAY_8AM = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)


def local(hour: int, minute: int = 0, *, day: int = 16) -> str:
    """A slot start on the branch's local clock (Asia/Shanghai), as an API client sends it."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"


@dataclass
class Harness:
    settings: WorkorderSettings
    service: Workorder
    client: httpx.AsyncClient
    clock: FixedClock

    def auth(
        self, role: str = "advisor", *, sub: str = "amy", branches: tuple[str, ...] = (BRANCH,)
    ) -> dict[str, str]:
        token = mint_dev_token(self.settings, role=role, branches=branches, sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, path: str, json: Any = None, *, role: str = "advisor", sub: str = "amy", **kw: Any
    ) -> httpx.Response:
        headers = {**self.auth(role, sub=sub), **kw.pop("headers", {})}
        return await self.client.post(path, json=json, headers=headers, **kw)

    async def get(self, path: str, *, role: str = "advisor", **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(role), **kw)

    async def counts(self) -> tuple[int, int]:
        """(stored events, outbox rows): what a refused command must leave unchanged."""
        async with self.service.runtime.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(events))
            queued = await session.scalar(select(func.count()).select_from(outbox))
        return int(stored or 0), int(queued or 0)

    async def published(self, *, at_least: int) -> list[Envelope[Any]]:
        """Every event on the WORKORDER stream, once the relay has published every event stored so far —
        the outbox holds no unpublished row — and they are at least `at_least`. A count alone is met too
        early when it is one short: the last event, the one under test, would still be on its way."""
        connection = await nats.connect(self.settings.nats_url)
        try:
            js = connection.jetstream()

            async def enough() -> bool:
                async with self.service.runtime.driver.transaction() as unit:
                    cursor = await unit.connection.execute(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                    )
                    unpublished = await cursor.fetchone()
                if unpublished != (0,):
                    return False
                try:
                    return (await js.stream_info("WORKORDER")).state.messages >= at_least
                except nats.js.errors.NotFoundError:
                    return False

            await wait_until(enough)
            return [decode(message.data) for message in await stream_messages(js, "WORKORDER")]
        finally:
            await connection.close()

    async def open_branch(self, *, bays: int = 3, **grid: Any) -> None:
        """Branch b1 (open 09:00 to 18:00 every day, hour-long slots, unless `grid` says otherwise) and its
        staff: amy the advisor, tom and lee the technicians."""
        response = await self.post(
            "/v1/branches",
            {
                "branch_id": BRANCH,
                "name": "浦东张江店",
                "address": "上海市浦东新区张江路1号",
                "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号工位"} for n in range(1, bays + 1)],
                **grid,
            },
            role="manager",
            sub="max",
        )
        assert response.status_code == 201, response.text
        for staff_id, name, role in [
            ("amy", "王芳", "advisor"),
            ("tom", "李师傅", "technician"),
            ("lee", "张师傅", "technician"),
        ]:
            added = await self.post(
                f"/v1/branches/{BRANCH}/staff",
                {"staff_id": staff_id, "display_name": name, "role": role},
                role="manager",
                sub="max",
            )
            assert added.status_code == 201, added.text

    async def book(
        self,
        hour: int = 10,
        *,
        phone: str = "13812345678",
        plate: str = "沪A12345",
        online: bool = False,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "slot_start": local(hour, day=extra.pop("day", 16)),
            "customer_name": "陈先生",
            "phone": phone,
            "plate": plate,
            "service_requested": "小保养",
            **extra,
        }
        if online:
            return await self.client.post(f"/v1/public/branches/{BRANCH}/appointments", json=body)
        return await self.post(f"/v1/branches/{BRANCH}/appointments", body)

    async def attribution(self, kind: str, source_id: str) -> str:
        """The signed token a campaign's or reminder's booking link carries, as a manager mints it."""
        response = await self.post(
            "/v1/attribution-tokens", {"kind": kind, "source_id": source_id}, role="manager", sub="max"
        )
        assert response.status_code == 201, response.text
        return str(response.json()["attribution"])

    async def upload(self, data: bytes, media_type: str = "image/jpeg", *, role: str = "technician") -> str:
        response = await self.post(
            f"/v1/branches/{BRANCH}/media",
            files={"file": ("photo.jpg", data, media_type)},
            role=role,
            sub="tom",
        )
        assert response.status_code == 201, response.text
        return str(response.json()["content_hash"])

    async def walk_in(self) -> str:
        response = await self.post(
            f"/v1/branches/{BRANCH}/work-orders",
            {
                "customer_id": "c-9",
                "vehicle_id": "v-9",
                "plate": "沪B 54321",
                "mileage_km": 88_000,
                "complaint": "空调不制冷",
                "customer_name": "刘女士",
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["work_order_id"])

    @asynccontextmanager
    async def instance(self, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        """A client of another instance of the service on the same database and NATS (its own app, pools,
        relay and consumers, as another process would have), with `settings` changed."""
        async with self.replica(**settings) as other:
            yield other.client

    @asynccontextmanager
    async def replica(self, **settings: Any) -> AsyncIterator[Harness]:
        """Another instance of the service (as `instance`), as a harness of its own on the same clock."""
        changed = self.settings.model_copy(update=settings)
        service = build(changed, clock=self.clock)
        async with (
            service.app.router.lifespan_context(service.app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service.app), base_url="http://workorder"
            ) as client,
        ):
            yield Harness(changed, service, client, self.clock)

    async def timers_caught_up(self) -> None:
        """Every timer due by the clock's "now" has fired: this instance's runner looked for due timers at
        that time or later and found none left."""
        runner = self.service.runtime.timer_runner
        assert runner is not None
        now = self.clock.now()

        async def caught_up() -> bool:
            return runner.status.checked_until is not None and runner.status.checked_until >= now

        await wait_until(caught_up)

    def order_path(self, work_order_id: str, command: str = "") -> str:
        return f"/v1/branches/{BRANCH}/work-orders/{work_order_id}" + (f"/{command}" if command else "")

    async def command(self, work_order_id: str, command: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.post(self.order_path(work_order_id, command), json, **kw)


def advance(harness: Harness, **by: float) -> None:
    harness.clock.advance(timedelta(**by))


# customer-profile's events, as its relay publishes them, and workorder's directory consumer of them -------------

PROFILE_STREAM = stream_name("customer-profile")


def from_profile(harness: Harness, event: DomainEvent, aggregate_id: str, version: int) -> Envelope[Any]:
    return Envelope.new(
        event,
        chain_id=harness.settings.chain_id,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        actor=Actor.service("customer-profile"),
        occurred_at=harness.clock.now(),
    )


async def publish_envelopes(harness: Harness, *envelopes: Envelope[Any], msg_id: str | None = None) -> int:
    """Publish the envelopes on customer-profile's stream; the stream sequence of the last (see
    pitlane_platform.testing.jetstream.publish_envelopes for `msg_id`)."""
    return await publish_to_streams(harness.settings.nats_url, envelopes, msg_id=msg_id)


async def publish_from_profile(harness: Harness, *events: tuple[Any, str, int]) -> int:
    """customer-profile's events as its relay publishes them: (event, aggregate id, version); the stream
    sequence of the last."""
    return await publish_envelopes(
        harness,
        *(from_profile(harness, event, aggregate_id, version) for event, aggregate_id, version in events),
    )


async def directory_consumed_through(harness: Harness, sequence: int) -> None:
    """Wait until workorder's customer-directory consumer has acked every message of customer-profile's
    stream up to `sequence`: each was handled (or skipped) and its transaction committed."""
    [consumer] = build_consumers(harness.service.runtime)
    connection = await nats.connect(harness.settings.nats_url)
    try:
        js = connection.jetstream()

        async def acked() -> bool:
            try:
                info = await js.consumer_info(PROFILE_STREAM, consumer.subscription_durable)
            except nats.js.errors.NotFoundError:
                return False
            return info.ack_floor.stream_seq >= sequence and not info.num_ack_pending

        await wait_until(acked)
    finally:
        await connection.close()


async def directory_has(harness: Harness, sql: str, *parameters: Any) -> bool:
    return bool(await rows(harness, sql, *parameters))


async def rows(harness: Harness, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    async with harness.service.runtime.driver.transaction() as unit:
        cursor = await unit.connection.execute(sql, parameters)
        return list(await cursor.fetchall())


# Real races: requests of their own connections, held at one step until every one has reached it -----------


async def lock_waiters(connection: psycopg.AsyncConnection[Any]) -> int:
    """How many backends of this database wait for a lock."""
    cursor = await connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


class HeldTable:
    """An EXCLUSIVE lock on a table, held by a connection of the test's own (reads pass, writes wait)."""

    def __init__(self, observer: psycopg.AsyncConnection[Any]) -> None:
        self.observer = observer

    async def reached(self, tasks: Sequence[asyncio.Future[Any]]) -> None:
        """Wait until every task has answered or waits for a lock — this one, or one another request holds
        (a guard at work)."""

        async def reached_the_lock() -> bool:
            done = sum(task.done() for task in tasks)
            return done == len(tasks) or done + await lock_waiters(self.observer) >= len(tasks)

        await wait_until(reached_the_lock)


@asynccontextmanager
async def writes_held(harness: Harness, table: str) -> AsyncIterator[HeldTable]:
    url = libpq_url(harness.settings.database_url)
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as observer,
        await psycopg.AsyncConnection.connect(url) as holder,
        holder.transaction(),
    ):
        await holder.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
        yield HeldTable(observer)


async def contend(harness: Harness, table: str, *requests: Awaitable[httpx.Response]) -> list[httpx.Response]:
    """Run the requests concurrently, each in a transaction of its own on its own connection, so that they
    really race: writes to `table` are held until every request has answered or waits for a lock, so none
    has committed when each has read what it decides on; then they go on."""
    async with writes_held(harness, table) as held:
        tasks = [asyncio.ensure_future(request) for request in requests]
        await held.reached(tasks)
    return list(await asyncio.gather(*tasks))


async def stored(harness: Harness, event_type: str, stream_id: str | None = None) -> list[dict[str, Any]]:
    """The stored envelopes (JSON) of `workorder.<event_type>`, of one stream if given, in append order."""
    found = await rows(
        harness,
        "SELECT envelope FROM events WHERE event_type = %s AND (%s::text IS NULL OR stream_id = %s)"
        " ORDER BY position",
        f"workorder.{event_type}",
        stream_id,
        stream_id,
    )
    return [envelope for (envelope,) in found]
