"""Claiming and firing 100,000 due reminders, beside a raw SQL baseline doing the same work.

Both sides start from the same state in a fresh database each: N vehicles, each with a maintenance reminder
whose rung is due now and its vehicle's day timer (the state `Schedule` leaves behind). The service side
runs reminder's own timer handlers (`Schedule.fire_day`: lock the vehicle, take its due rungs, check
suppression, mark the rung sent, move the reminder's version on, queue a ReminderDue through the outbox) on
a `TimerRunner` with C workers. The baseline does the same statements by hand with plain psycopg on C
connections: claim a due timer (`FOR UPDATE SKIP LOCKED`), lock the vehicle, read the rungs and the rule,
the consent and frequency checks, mark the rung, bump the version, insert a prebuilt outbox row of the
event's size, mark the timer fired, commit.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from pitlane_platform.clock import FixedClock
from pitlane_platform.db import DriverPool, libpq_url
from pitlane_platform.migrations import upgrade
from pitlane_platform.scheduling.timers import TimerRunner
from pitlane_reminder.bootstrap import MIGRATIONS, ReminderSettings, build

FIRE_RATIO_MIN = 0.5  # issue 14: at least half the baseline's rate
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, when rungs go out
PAYLOAD = "x" * 700  # about a ReminderDue envelope's size

SETUP = """
WITH made AS (
    INSERT INTO vehicles (vehicle_id, customer_id, last_branch_id)
    SELECT 'v' || n, 'c' || n, 'b1' FROM generate_series(1, %(count)s) AS n
    RETURNING vehicle_id, customer_id
), reminded AS (
    INSERT INTO reminders (reminder_id, vehicle_id, customer_id, kind, subject, cycle, branch_id, due_on, due_by,
                           basis, ladder, status, version, created_at)
    SELECT 'r-' || vehicle_id, vehicle_id, customer_id, 'maintenance', '', 'service:2025-12-01', 'b1',
           DATE '2026-06-01', 'time', '6 months after the service on 2025-12-01', '0', 'scheduled', 1, now()
    FROM made RETURNING reminder_id, vehicle_id
), stepped AS (
    INSERT INTO reminder_steps (reminder_id, cycle, offset_days, vehicle_id, due_on)
    SELECT reminder_id, 'service:2025-12-01', 0, vehicle_id, DATE '2026-06-01' FROM reminded
    RETURNING vehicle_id
)
INSERT INTO timers (kind, key, due_at, payload)
SELECT 'reminder.day', vehicle_id || ':2026-06-01', %(now)s,
       jsonb_build_object('vehicle_id', vehicle_id, 'day', '2026-06-01')
FROM stepped
"""


@dataclass(frozen=True)
class Fired:
    count: int
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.elapsed_s


def prepare(url: str, count: int) -> None:
    upgrade(url, MIGRATIONS)
    with psycopg.connect(libpq_url(url)) as connection:
        connection.execute(SETUP, {"count": count, "now": NOW})


async def fire_with_the_service(url: str, nats_url: str, workers: int) -> Fired:
    settings = ReminderSettings(database_url=url, nats_url=nats_url)  # the development defaults: a bench
    clock = FixedClock(NOW)
    service = build(settings, clock=clock)
    driver = DriverPool(url, max_size=workers + 2)
    await driver.open()
    runner = TimerRunner(
        service.service.timer_handlers(),
        driver=driver,
        clock=clock,
        database_url=url,
        service="reminder",
        concurrency=workers,
    )
    started = time.perf_counter()
    try:
        await asyncio.gather(*(runner.fire_due() for _ in range(workers)))
        elapsed = time.perf_counter() - started
    finally:
        await driver.close()
    return Fired(runner.status.fired, elapsed)


async def fire_by_hand(url: str, workers: int) -> Fired:
    """The same statements per timer, in one transaction each, without the platform or the service."""
    fired = 0

    async def worker() -> None:
        nonlocal fired
        async with await psycopg.AsyncConnection.connect(libpq_url(url)) as connection:
            while True:
                async with connection.transaction():
                    cursor = await connection.execute(
                        """
                        SELECT id, payload FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL
                          AND failed_at IS NULL AND due_at <= %(now)s AND kind = ANY(%(kinds)s)
                        ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                        """,
                        {"now": NOW, "kinds": ["reminder.day"]},
                    )
                    row = await cursor.fetchone()
                    if row is None:
                        return
                    timer_id, payload = row
                    vehicle_id = payload["vehicle_id"]
                    await connection.execute(
                        "SELECT * FROM vehicles WHERE vehicle_id = %s FOR UPDATE", (vehicle_id,)
                    )
                    cursor = await connection.execute(
                        """
                        SELECT s.reminder_id, s.cycle, s.offset_days, r.customer_id FROM reminder_steps s
                        JOIN reminders r ON r.reminder_id = s.reminder_id AND r.cycle = s.cycle
                        WHERE s.vehicle_id = %s AND s.due_on <= %s AND s.sent_at IS NULL AND s.skipped_at IS NULL
                          AND r.status = 'scheduled' FOR UPDATE OF s
                        """,
                        (vehicle_id, payload["day"]),
                    )
                    steps = await cursor.fetchall()
                    await connection.execute(
                        "SELECT count(*) FROM consents WHERE customer_id = %s AND purpose = 'service' AND NOT granted",
                        (steps[0][3],),
                    )
                    await connection.execute(
                        "SELECT max(s.sent_at) FROM reminder_steps s JOIN reminders r USING (reminder_id) WHERE r.customer_id = %s",
                        (steps[0][3],),
                    )
                    await connection.execute(
                        "SELECT kind, settings FROM rules WHERE branch_id = ANY(%s)", (["", "b1"],)
                    )
                    for reminder_id, cycle, offset, _ in steps:
                        await connection.execute(
                            "UPDATE reminder_steps SET sent_at = %s WHERE reminder_id = %s AND cycle = %s AND offset_days = %s",
                            (NOW, reminder_id, cycle, offset),
                        )
                        cursor = await connection.execute(
                            "UPDATE reminders SET version = version + 1 WHERE reminder_id = %s RETURNING version",
                            (reminder_id,),
                        )
                        await cursor.fetchone()
                        await connection.execute(
                            """
                            INSERT INTO outbox (event_id, aggregate_id, subject, headers, payload)
                            VALUES (%s, %s, 'reminder.b1.ReminderDue.v1', %s::jsonb, %s)
                            """,
                            (uuid.uuid4(), reminder_id, json.dumps({"Nats-Msg-Id": "x"}), PAYLOAD.encode()),
                        )
                    await connection.execute(
                        "UPDATE timers SET fired_at = %s, attempts = attempts + 1 WHERE id = %s",
                        (NOW, timer_id),
                    )
                fired += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return Fired(fired, time.perf_counter() - started)
