"""Crashes in the middle of 500 completions (issue 17): a consuming service, then nats-server, SIGKILLed while
walk-ins are served through the gateway, and restarted while they go on. Once every outbox is published and
every durable consumer has acknowledged everything (`settled`), every projection holds each of the 500
visits exactly once: customer-profile's 360° records, analytics' facts, one survey per completion, one
maintenance reminder per car, and the streams hold each event once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from whole_cluster import Branch, WholeCluster, call, eventually, local_today

from pitlane_events import stream_name
from pitlane_platform.messaging.health import consumer_health

pytestmark = pytest.mark.slow

VISITS = 500
CONCURRENCY = 16
KILL_AFTER = 150  # completions answered before the crash
RESTART_AFTER = 300  # … and before the restart: the backlog of 150 waits for the restarted process
PRICE_FEN = 38_000


class Shop(Branch):
    """A branch serving first-time customers' walk-ins: phones and plates numbered from its own prefixes."""

    def __init__(self, branch_id: str, phone_prefix: str, plate_letter: str) -> None:
        super().__init__(branch_id)
        self.phone_prefix = phone_prefix
        self.plate_letter = plate_letter

    async def serve_walk_in(self, client: httpx.AsyncClient, number: int) -> str:
        """A first-time customer's car, from check-in to hand-over; the work order's id."""
        walk_in = {
            "customer_name": "张伟",
            "phone": f"{self.phone_prefix}{number:07d}",
            "plate": f"沪{self.plate_letter}{number:05d}",
            "brand": "大众",
            "model": "朗逸",
            "mileage_km": 20_000 + number,
            "complaint": "保养",
        }
        opened = await call(client, "POST", self.work_orders, self.advisor, expect=201, json=walk_in)
        await self.oil_change(client, opened["work_order_id"], PRICE_FEN)
        return str(opened["work_order_id"])


async def serve_while(
    client: httpx.AsyncClient,
    branch: Shop,
    crash: Callable[[], Awaitable[None]],
    recover: Callable[[], Awaitable[None]],
) -> list[str]:
    """VISITS walk-ins, CONCURRENCY at a time; `crash` once KILL_AFTER are completed, `recover` once
    RESTART_AFTER are. The work orders' ids."""
    gate = asyncio.Semaphore(CONCURRENCY)
    completed: list[str] = []
    crashed, recovered = asyncio.Event(), asyncio.Event()

    async def visit(number: int) -> None:
        async with gate:
            completed.append(await branch.serve_walk_in(client, number))
        if len(completed) == KILL_AFTER:
            crashed.set()
        if len(completed) == RESTART_AFTER:
            recovered.set()

    async def faults() -> None:
        await crashed.wait()
        await crash()
        await recovered.wait()
        await recover()

    await asyncio.gather(faults(), *(visit(number) for number in range(VISITS)))
    return completed


async def assert_every_projection_holds_each_visit_once(
    whole: WholeCluster,
    client: httpx.AsyncClient,
    branch: Shop,
    work_orders: list[str],
    marks: dict[str, int],
) -> None:
    assert len(set(work_orders)) == VISITS
    await whole.settled()

    # The streams: each completion once, and each reaction to it once.
    async with whole.jetstream() as js:

        async def stored(service: str, event: str) -> int:
            subject = f"{service}.{branch.id}.{event}.v1"
            info = await js.stream_info(stream_name(service), subjects_filter=subject)
            return int((info.state.subjects or {}).get(subject, 0))

        assert await stored("workorder", "WorkOrderCompleted") == VISITS
        # Surveys go out a second after each completion, on notification's timers.
        await eventually(
            lambda: equals(stored("notification", "NpsSurveySent"), VISITS), "a survey per completion", 120
        )
        assert await stored("reminder", "ReminderScheduled") == VISITS
    await whole.settled()
    assert await whole.assert_published_since_conform(marks) > VISITS * 8

    # customer-profile: 500 customers, one visit each.
    found: list[dict[str, object]] = []
    for offset in range(0, VISITS, 100):
        page = await call(
            client,
            "GET",
            "/api/customer-profile/v1/customers",
            branch.advisor,
            params={"phone_prefix": branch.phone_prefix, "limit": 100, "offset": offset},
        )
        assert page["total"] == VISITS, page["total"]
        found += page["items"]
    assert len({item["customer_id"] for item in found}) == VISITS
    miscounted = [str(item["customer_id"]) for item in found if item["visit_count"] != 1]
    assert not miscounted, (
        f"{len(miscounted)} customers without exactly one visit in their figures; (customer, counted, visits "
        "stored): "
        + str(
            whole.rows(
                "customer-profile",
                "SELECT c.customer_id, c.visit_count, count(v.work_order_id) FROM customers c "
                "LEFT JOIN visits v USING (customer_id) WHERE c.customer_id = ANY(%s) GROUP BY 1, 2",
                miscounted,
            )
        )
    )

    # analytics: the day's facts count 500 visits by the technician, and their revenue.
    today = local_today()
    period = {"from": str(today), "to": str(today + timedelta(days=1)), "branch_id": branch.id}
    board = await call(client, "GET", "/api/analytics/v1/kpis/staff-leaderboard", branch.owner, params=period)
    [technician] = [row for row in board["staff"] if (row["role"], row["staff_id"]) == ("technician", "tom")]
    assert (technician["work_orders"], technician["revenue_fen"]) == (VISITS, VISITS * PRICE_FEN), technician

    # notification: one survey per completed work order, every one sent.
    surveys = await call(
        client,
        "GET",
        "/api/notification/v1/surveys",
        branch.manager,
        params={"branch_id": branch.id, "limit": 500},
    )
    assert sorted(survey["work_order_id"] for survey in surveys["surveys"]) == sorted(work_orders)
    assert {survey["status"] for survey in surveys["surveys"]} == {"sent"}

    # reminder: one maintenance reminder per car, in the cycle of its one service.
    [(reminders, cars)] = whole.rows(
        "reminder",
        "SELECT count(*), count(DISTINCT r.vehicle_id) FROM reminders r JOIN vehicles v USING (vehicle_id) "
        "WHERE r.kind = 'maintenance' AND v.plate LIKE %s",
        f"沪{branch.plate_letter}%",
    )
    assert (reminders, cars) == (VISITS, VISITS)


async def equals(count: Awaitable[int], expected: int) -> bool:
    found = await count
    assert found <= expected, f"{found} > {expected}: counted twice"
    return found == expected


async def crash_and_recover(
    whole: WholeCluster,
    branch: Shop,
    crash: Callable[[], Awaitable[None]],
    recover: Callable[[], Awaitable[None]],
) -> None:
    marks = await whole.stream_marks()
    async with whole.client() as client:
        await branch.open(client)
        work_orders = await serve_while(client, branch, crash, recover)
        await assert_every_projection_holds_each_visit_once(whole, client, branch, work_orders, marks)


async def test_a_consumer_killed_in_the_middle_of_500_completions_loses_and_repeats_nothing(
    whole: WholeCluster,
) -> None:
    killed = "customer-profile"

    async def restart_behind() -> None:
        async with whole.jetstream() as js:  # the crash mattered: what it consumes piled up meanwhile
            assert sum(consumer.pending for consumer in await consumer_health(js, killed, None)) > 0
        await asyncio.to_thread(whole.restart_service, killed)

    await crash_and_recover(
        whole,
        Shop("e2e-kill-consumer", "1470", "K"),
        crash=lambda: asyncio.to_thread(whole.kill_service, killed),
        recover=restart_behind,
    )


async def test_nats_server_killed_in_the_middle_of_500_completions_loses_and_repeats_nothing(
    whole: WholeCluster,
) -> None:
    async def restart_with_a_backlog() -> None:
        # The crash mattered: workorder went on committing what it could not publish meanwhile.
        [(unpublished,)] = whole.rows("workorder", "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished > 0
        await asyncio.to_thread(whole.restart_nats)

    await crash_and_recover(
        whole,
        Shop("e2e-kill-nats", "1471", "N"),
        crash=lambda: asyncio.to_thread(whole.kill_nats),
        recover=restart_with_a_backlog,
    )
