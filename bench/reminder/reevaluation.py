"""Re-evaluating 1,000,000 vehicles' schedules after a rule change, beside a raw SQL baseline doing the same
work.

Both sides start from the same state in a fresh database each: N vehicles across 5 branches, each with its
last service (within the last 6 months), its mileage estimate kept on its row (5 to 124 km a day) and a
maintenance reminder laid out under the default rule, with its pending rungs. The chain then changes its
maintenance rule to 7,500 km (from 5,000): every reminder moves.

The service side is what the API does: `save_rule` and `Reminder.rule_changed` in one transaction, then a
`TimerRunner` fires the `reminder.reevaluate` timers, one chunk of vehicles per transaction
(`Schedule.evaluate_many`: lock the chunk, read the rules, policies, reminders and used rungs, work each
vehicle out with the domain's `maintenance_due` and `steps_to_schedule`, write the reminders, their rungs,
their day timers and a ReminderRescheduled each through the outbox), each chunk scheduling the next.

The baseline does the same chunks with plain psycopg and set-based SQL, the due dates computed by
PostgreSQL itself: lock the chunk, read the rules, one UPDATE computing every reminder's new due date,
mileage and reason (the projected date the odometer reaches the next service, or 6 months, whichever comes
first), withdraw the pending rungs, insert the new rungs with the ladder's catch-up rule, insert the day
timers, insert a prebuilt outbox row of the event's size per reminder, commit. It skips the timers that
chain the chunks (the service's bookkeeping), which flatters it.

Both must end with the same reminders (due date, mileage, reason, version), rungs and day timers: the run
fails if they differ.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from pitlane_platform.clock import FixedClock
from pitlane_platform.db import DriverPool, libpq_url
from pitlane_platform.migrations import upgrade
from pitlane_platform.scheduling.timers import TimerHandlers, TimerRunner
from pitlane_reminder.bootstrap import MIGRATIONS, ReminderSettings, build
from pitlane_reminder.service_layer.rules import MaintenanceSettings, RuleKind, save_rule
from pitlane_reminder.service_layer.service import REEVALUATE, REEVALUATE_CHUNK

# 09:00 in Shanghai, an hour before rungs go out: the catch-up rungs a re-evaluation lays out for today are
# due at 10:00, after the run (firing them is the other half of the bench).
NOW = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = NOW.astimezone(SHANGHAI).date()
SEND_INSTANT = max(NOW, datetime.combine(TODAY, time(10, 0), tzinfo=SHANGHAI))  # as Schedule._day_timer
NEW_KM_INTERVAL = 7_500
PAYLOAD = b"x" * 600  # about a ReminderRescheduled envelope's size

SETUP = (
    """
    INSERT INTO vehicles (vehicle_id, customer_id, last_branch_id, last_service_on, last_service_km, first_service_on,
                      last_visit_at, last_reading_at, last_reading_km, km_per_day, estimate_basis)
SELECT vehicle_id, 'c' || n, 'b' || (n %% 5 + 1), serviced_on, km, serviced_on, read_at, read_at, km,
       5 + n %% 120, 'a bench vehicle'
FROM generate_series(1, %(count)s) AS n,
     LATERAL (SELECT 'v' || lpad(n::text, 8, '0') AS vehicle_id, DATE '2026-05-31' - n %% 180 AS serviced_on,
                     20000 + (n * 37) %% 80000 AS km) AS fact,
     LATERAL (SELECT (serviced_on + time '16:00') AT TIME ZONE 'Asia/Shanghai' AS read_at) AS reading
    """,
    """
    INSERT INTO reminders (reminder_id, vehicle_id, customer_id, kind, subject, cycle, branch_id, due_on,
                       due_mileage_km, due_by, basis, ladder, status, version, created_at)
SELECT 'r-' || vehicle_id, vehicle_id, customer_id, 'maintenance', '', 'service:' || last_service_on,
       last_branch_id, (last_service_on + interval '6 months')::date, last_service_km + 5000, 'time',
       '6 months after the service', '-30,-7,0,7,30', 'scheduled', 1, %(now)s
FROM vehicles
    """,
    """
    INSERT INTO reminder_steps (reminder_id, cycle, offset_days, vehicle_id, due_on)
SELECT reminder_id, cycle, o, vehicle_id, due_on + o
FROM reminders, unnest(ARRAY[-30, -7, 0, 7, 30]) AS o
WHERE due_on + o > DATE '2026-06-01'
    """,
    """
    ANALYZE
    """,
)

# The baseline's chunk, statement by statement.
LOCK_CHUNK = """
SELECT vehicle_id FROM vehicles WHERE vehicle_id > %(after)s ORDER BY vehicle_id LIMIT %(n)s FOR UPDATE
"""
RULES = "SELECT kind, branch_id, settings FROM rules WHERE branch_id = ANY(%(branches)s)"
MOVE_REMINDERS = """
WITH facts AS (
    SELECT v.vehicle_id, v.last_service_on,
           (v.last_service_on + make_interval(months => %(months)s))::date AS time_due,
           CASE WHEN v.last_service_km IS NOT NULL AND (v.odometer_replaced_at IS NULL
                     OR (v.odometer_replaced_at AT TIME ZONE 'Asia/Shanghai')::date <= v.last_service_on)
                THEN v.last_service_km + %(km)s END AS due_km,
           v.last_reading_at, v.last_reading_km, v.km_per_day
    FROM vehicles v WHERE v.vehicle_id = ANY(%(ids)b)
), reaching AS (
    SELECT f.*, CASE
        WHEN f.due_km IS NULL OR f.last_reading_at IS NULL THEN NULL
        WHEN f.last_reading_km >= f.due_km THEN (f.last_reading_at AT TIME ZONE 'Asia/Shanghai')::date
        WHEN f.km_per_day > 0 THEN ((f.last_reading_at + make_interval(
                 secs => (f.due_km - f.last_reading_km) / f.km_per_day * 86400)) AT TIME ZONE 'Asia/Shanghai')::date
        END AS reached_on
    FROM facts f
), due AS (
    SELECT vehicle_id, due_km, last_service_on,
           CASE WHEN reached_on < time_due THEN reached_on ELSE time_due END AS due_on,
           CASE WHEN reached_on < time_due THEN 'mileage' ELSE 'time' END AS due_by,
           CASE WHEN reached_on < time_due
                THEN format('%%s km after the service on %%s, reached about %%s', %(km)s, last_service_on, reached_on)
                ELSE format('%%s months after the service on %%s', %(months)s, last_service_on) END AS basis
    FROM reaching
)
UPDATE reminders r SET due_on = d.due_on, due_mileage_km = d.due_km, due_by = d.due_by, basis = d.basis,
    cycle = 'service:' || d.last_service_on, version = r.version + 1
FROM due d
WHERE r.vehicle_id = ANY(%(ids)b) AND r.vehicle_id = d.vehicle_id AND r.kind = 'maintenance' AND r.subject = ''
  AND r.status = 'scheduled'
  AND (r.due_on, r.due_mileage_km, r.due_by) IS DISTINCT FROM (d.due_on, d.due_km, d.due_by)
RETURNING r.reminder_id
"""
WITHDRAW_RUNGS = """
DELETE FROM reminder_steps WHERE reminder_id = ANY(%(ids)b) AND sent_at IS NULL AND skipped_at IS NULL
"""
# The ladder's rungs not used yet: of those whose day has come only the latest, sent today; the later ones
# on their own days (domain/ladder.py's steps_to_schedule).
LAY_RUNGS = """
WITH rungs AS (
    SELECT r.reminder_id, r.cycle, r.vehicle_id, o.offset_days, r.due_on + o.offset_days AS day
    FROM reminders r, unnest(string_to_array(r.ladder, ',')::int[]) AS o(offset_days)
    WHERE r.reminder_id = ANY(%(ids)b) AND NOT EXISTS (
        SELECT 1 FROM reminder_steps u WHERE u.reminder_id = r.reminder_id AND u.cycle = r.cycle
          AND u.offset_days = o.offset_days AND (u.sent_at IS NOT NULL OR u.skipped_at IS NOT NULL))
), come AS (
    SELECT DISTINCT ON (reminder_id) reminder_id, cycle, vehicle_id, offset_days, %(today)s::date AS day
    FROM rungs WHERE day <= %(today)s ORDER BY reminder_id, offset_days DESC
), laid AS (
    INSERT INTO reminder_steps (reminder_id, cycle, offset_days, vehicle_id, due_on)
    SELECT reminder_id, cycle, offset_days, vehicle_id, day FROM come
    UNION ALL SELECT reminder_id, cycle, offset_days, vehicle_id, day FROM rungs WHERE day > %(today)s
    ON CONFLICT DO NOTHING
    RETURNING vehicle_id, due_on
)
INSERT INTO timers (kind, key, due_at, payload)
SELECT DISTINCT 'reminder.day',
       CASE WHEN due_on > %(today)s THEN vehicle_id || ':' || due_on
            ELSE vehicle_id || ':' || due_on || ':' || %(send_iso)s END,
       CASE WHEN due_on > %(today)s THEN (due_on + time '10:00') AT TIME ZONE 'Asia/Shanghai' ELSE %(send)s END,
       jsonb_build_object('vehicle_id', vehicle_id, 'day', due_on)
FROM laid
ON CONFLICT (kind, key) DO NOTHING
"""
QUEUE_EVENTS = """
INSERT INTO outbox (event_id, aggregate_id, subject, headers, payload)
SELECT gen_random_uuid(), id, 'reminder.b1.ReminderRescheduled.v1', %(headers)s::jsonb, %(payload)s
FROM unnest(%(ids)b::text[]) AS id
"""

# What both sides must end with.
OUTCOME = """
SELECT (SELECT md5(string_agg(concat_ws('|', vehicle_id, due_on, due_mileage_km, due_by, version), ','
                              ORDER BY vehicle_id)) FROM reminders),
       (SELECT md5(string_agg(concat_ws('|', reminder_id, cycle, offset_days, due_on), ','
                              ORDER BY reminder_id, offset_days)) FROM reminder_steps),
       (SELECT count(*) FROM timers WHERE kind = 'reminder.day'),
       (SELECT count(*) FROM outbox)
"""


@dataclass(frozen=True)
class Reevaluated:
    vehicles: int
    elapsed_s: float
    outcome: tuple[Any, ...]

    @property
    def per_second(self) -> float:
        return self.vehicles / self.elapsed_s


def prepare(url: str, count: int) -> None:
    upgrade(url, MIGRATIONS)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        for statement in SETUP:
            connection.execute(statement, {"count": count, "now": NOW})


def outcome_of(url: str) -> tuple[Any, ...]:
    with psycopg.connect(libpq_url(url)) as connection:
        row = connection.execute(OUTCOME).fetchone()
    assert row is not None
    return tuple(row)


async def reevaluate_with_the_service(url: str, nats_url: str, vehicles: int) -> Reevaluated:
    settings = ReminderSettings(database_url=url, nats_url=nats_url)  # the development defaults: a bench
    clock = FixedClock(NOW)
    reminder = build(settings, clock=clock).service
    driver = DriverPool(url, max_size=3)
    await driver.open()
    # Only the re-evaluation's timers: the catch-up rungs it lays out are due at once too, and firing them
    # is the other half of the bench.
    reevaluating = TimerHandlers()
    reevaluating.on(REEVALUATE)(reminder.timer_handlers().handler(REEVALUATE))
    runner = TimerRunner(reevaluating, driver=driver, clock=clock, database_url=url, service="reminder")
    try:
        started = perf_counter()
        async with driver.transaction() as unit:
            rule = MaintenanceSettings(km_interval=NEW_KM_INTERVAL)
            version = await save_rule(unit, RuleKind.MAINTENANCE, None, rule, at=NOW, by="bench")
            await reminder.rule_changed(unit, RuleKind.MAINTENANCE, None, version)
        await runner.fire_due()  # each chunk schedules the next, due at once: this returns after the last
        elapsed = perf_counter() - started
    finally:
        await driver.close()
    chunks = -(-vehicles // REEVALUATE_CHUNK) + (vehicles % REEVALUATE_CHUNK == 0)
    if runner.status.fired != chunks:
        raise RuntimeError(f"{runner.status.fired} {REEVALUATE} timers fired, not {chunks}")
    return Reevaluated(vehicles, elapsed, outcome_of(url))


async def reevaluate_by_hand(url: str, vehicles: int) -> Reevaluated:
    """The same chunks in plain psycopg and set-based SQL (see the module's docstring)."""
    parameters = {
        "km": NEW_KM_INTERVAL,
        "months": 6,
        "today": TODAY,
        "send": SEND_INSTANT,
        "send_iso": SEND_INSTANT.isoformat(),
    }
    headers = json.dumps({"Nats-Msg-Id": str(uuid.uuid4())})
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as connection:
        started = perf_counter()
        await connection.execute(
            """
            INSERT INTO rules (kind, branch_id, settings, version, updated_at, updated_by)
            VALUES ('maintenance', '', %(settings)s::jsonb, 1, %(now)s, 'bench')
            """,
            {"settings": json.dumps({"km_interval": NEW_KM_INTERVAL}), "now": NOW},
        )
        await connection.commit()
        after, done = "", 0
        while True:
            async with connection.transaction():
                cursor = await connection.execute(LOCK_CHUNK, {"after": after, "n": REEVALUATE_CHUNK})
                ids = [row[0] for row in await cursor.fetchall()]
                if not ids:
                    break
                await connection.execute(RULES, {"branches": ["", "b1", "b2", "b3", "b4", "b5"]})
                cursor = await connection.execute(MOVE_REMINDERS, {**parameters, "ids": ids})
                moved = [row[0] for row in await cursor.fetchall()]
                await connection.execute(WITHDRAW_RUNGS, {"ids": moved})
                await connection.execute(LAY_RUNGS, {**parameters, "ids": moved})
                await connection.execute(QUEUE_EVENTS, {"ids": moved, "headers": headers, "payload": PAYLOAD})
            after, done = ids[-1], done + len(ids)
        elapsed = perf_counter() - started
    if done != vehicles:
        raise RuntimeError(f"the baseline went through {done} vehicles, not {vehicles}")
    return Reevaluated(vehicles, elapsed, outcome_of(url))
