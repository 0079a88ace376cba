"""Rebuilding read models from the streams (messaging/rebuild.py) against real PostgreSQL and NATS, with the
service running live: a small service "probe" whose consumer keeps two read models of the mileage readings
customer-profile publishes — a row per reading (a second application of one would break its primary key)
and per vehicle its newest mileage (gated on the aggregate version) and how many readings were applied to it
(exactly once means: as many as it has).

The rebuilt tables equal the live ones; readings published during the rebuild end up in the swapped-in
tables exactly once; readers polling throughout never fail nor see an empty or inconsistent table; a crash
leaves the live tables as they were and the next rebuild succeeds; an event the live consumer holds back is
left to its hold and applied, after the dead letter's replay, into the swapped-in tables."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
import pytest
from nats.aio.client import Client
from sqlalchemy import Column, Index, Integer, Table, Text
from sqlalchemy.dialects.postgresql import UUID

from pitlane_events import Actor, Envelope, encode
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_events.customer_profile import MileageSource, VehicleMileageRecorded
from pitlane_platform.db import (
    DriverTransaction,
    Unit,
    create_engine,
    execute_on_driver,
    fetch_on_driver,
    libpq_url,
)
from pitlane_platform.messaging import deadletter
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_platform.messaging.rebuild import (
    BACKUP_SCHEMA,
    REBUILD_SCHEMA_PREFIX,
    Derivation,
    ReadModels,
    RebuildFailed,
    RebuildReport,
    rebuild_read_models,
)
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.schema import service_metadata
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.testing.jetstream import wait_until

SERVICE = "probe"
PRODUCER = "customer-profile"
STREAM = stream_name(PRODUCER)

metadata = service_metadata()
readings = Table(
    "probe_readings",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("vehicle_id", Text, nullable=False),
    Column("mileage_km", Integer, nullable=False),
    Index("ix_probe_readings_vehicle", "vehicle_id"),
)
vehicles = Table(
    "probe_vehicles",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("mileage_km", Integer, nullable=False),
    Column("readings", Integer, nullable=False),
)


class Faults:
    refused_km: ClassVar[set[int]] = set()  # readings the handler refuses, live and in rebuilds
    crash_after: int | None = None  # handler calls until the database "goes away" once
    batch_sizes: ClassVar[list[int]] = []  # the events each call of the commuting handler got
    finished: ClassVar[list[list[int]]] = []  # per transaction of the commuting consumer: the km it applied

    @classmethod
    def reset(cls) -> None:
        cls.refused_km = set()
        cls.crash_after = None
        cls.batch_sizes = []
        cls.finished = []


def probe_consumer() -> Consumer:
    """The probe's one consumer, of the mileage readings, retrying quickly."""
    return Consumer(
        service=SERVICE,
        purpose="mileage",
        source_service=PRODUCER,
        on_driver=True,
        max_deliver=2,
        backoff_s=(0.1, 0.1),
    )


def mileage_consumer() -> Consumer:
    consumer = probe_consumer()

    @consumer.on(VehicleMileageRecorded)
    async def apply(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        if Faults.crash_after is not None:
            Faults.crash_after -= 1
            if Faults.crash_after < 0:
                Faults.crash_after = None
                raise psycopg.OperationalError("the connection to the server was lost")
        if event.mileage_km in Faults.refused_km:
            raise ValueError("this reading is refused")
        await execute_on_driver(
            ctx.unit,
            "reading",
            "INSERT INTO probe_readings (event_id, vehicle_id, mileage_km) VALUES (%(e)s, %(v)s, %(km)s)",
            {"e": ctx.envelope.event_id, "v": event.vehicle_id, "km": event.mileage_km},
        )
        newest = await advance_read_model(
            ctx.unit, "probe_vehicles", event.vehicle_id, ctx.envelope.aggregate_version
        )
        await execute_on_driver(
            ctx.unit,
            "vehicle",
            "INSERT INTO probe_vehicles AS v (vehicle_id, mileage_km, readings) VALUES (%(v)s, %(km)s, 1) "
            "ON CONFLICT (vehicle_id) DO UPDATE SET readings = v.readings + 1, "
            "mileage_km = CASE WHEN %(newest)s THEN excluded.mileage_km ELSE v.mileage_km END",
            {"v": event.vehicle_id, "km": event.mileage_km, "newest": newest},
        )

    return consumer


def commuting_mileage_consumer() -> Consumer:
    """The same read models kept by a consumer whose effects commute (`on_many`): each reading a row, each
    vehicle its highest mileage and its count of readings. A rebuild hands it whole batches."""
    consumer = probe_consumer()

    @consumer.on_many(VehicleMileageRecorded)
    async def apply(unit: Unit, events: Any, clock: Any, *, derived_later: bool) -> None:
        Faults.batch_sizes.append(len(events))
        if any(event.mileage_km in Faults.refused_km for _, event in events):
            raise ValueError("a reading of this batch is refused")
        for envelope, event in events:
            await execute_on_driver(
                unit,
                "reading",
                "INSERT INTO probe_readings (event_id, vehicle_id, mileage_km) VALUES (%(e)s, %(v)s, %(km)s)",
                {"e": envelope.event_id, "v": event.vehicle_id, "km": event.mileage_km},
            )
            await execute_on_driver(
                unit,
                "vehicle",
                "INSERT INTO probe_vehicles AS v (vehicle_id, mileage_km, readings) VALUES (%(v)s, %(km)s, 1) "
                "ON CONFLICT (vehicle_id) DO UPDATE SET readings = v.readings + 1, "
                "mileage_km = greatest(v.mileage_km, excluded.mileage_km)",
                {"v": event.vehicle_id, "km": event.mileage_km},
            )

    @consumer.after_applying
    async def finish(unit: Unit, applied: Any) -> None:
        Faults.finished.append([envelope.data.mileage_km for envelope in applied])

    return consumer


@contextlib.asynccontextmanager
async def live_service(
    database_url: str, nats_url: str, consumer: Consumer | None = None
) -> AsyncIterator[ServiceRuntime]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()
    settings = ServiceSettings(service_name=SERVICE, database_url=database_url, nats_url=nats_url)
    runtime = ServiceRuntime(
        settings, consumers=[consumer or mileage_consumer()], read_models=[readings, vehicles]
    )
    Faults.reset()
    try:
        async with runtime.lifespan():
            yield runtime
    finally:
        Faults.reset()


class Producer:
    """customer-profile's relay, as far as the probe sees it: readings of vehicles, each vehicle's in
    version order."""

    def __init__(self, nats: Client) -> None:
        self.js = nats.jetstream()
        self.versions: dict[str, int] = {}
        self.published: list[Envelope[Any]] = []
        self.last_sequence = 0

    async def reading(self, vehicle_id: str, km: int, *, copy: bool = False) -> Envelope[Any]:
        """Publish a reading; `copy`: the last one of the vehicle again, under another message id."""
        if copy:
            envelope = next(e for e in reversed(self.published) if e.aggregate_id == vehicle_id)
            await self._publish(envelope, msg_id=f"{envelope.event_id}:copy")
            return envelope
        version = self.versions.get(vehicle_id, 0) + 1
        self.versions[vehicle_id] = version
        envelope = Envelope.new(
            VehicleMileageRecorded(
                vehicle_id=vehicle_id,
                mileage_km=km,
                source=MileageSource.CHECK_IN,
                recorded_at=datetime.now(UTC),
            ),
            chain_id="test-chain",
            branch_id="b1",
            aggregate_id=vehicle_id,
            aggregate_version=version,
            actor=Actor.service(PRODUCER),
            occurred_at=datetime.now(UTC),
        )
        await self._publish(envelope, msg_id=str(envelope.event_id))
        self.published.append(envelope)
        return envelope

    async def history(self, vehicles: int, readings: int, *, prefix: str = "v") -> None:
        for number in range(readings):
            for vehicle in range(vehicles):
                await self.reading(f"{prefix}{vehicle}", 1000 * (number + 1) + vehicle)

    async def _publish(self, envelope: Envelope[Any], *, msg_id: str) -> None:
        message = encode(envelope)
        ack = await self.js.publish(
            message.subject, message.payload, headers={**message.headers, MSG_ID_HEADER: msg_id}
        )
        self.last_sequence = ack.seq


@pytest.fixture
async def nats(nats_url: str) -> AsyncIterator[Client]:
    client = await connect_nats(nats_url, name="rebuild-test")
    yield client
    await client.close()


async def consumed(runtime: ServiceRuntime, nats: Client, producer: Producer) -> None:
    """The live consumer has acked everything published so far."""
    durable = runtime.consumers[0].subscription_durable
    js = nats.jetstream()

    async def acked() -> bool:
        info = await js.consumer_info(STREAM, durable)
        return info.ack_floor.stream_seq >= producer.last_sequence and not info.num_ack_pending

    await wait_until(acked)


async def rebuild(runtime: ServiceRuntime, nats: Client, **options: Any) -> RebuildReport:
    return await rebuild_read_models(
        ReadModels(runtime.service, runtime.consumers, runtime.read_models),
        database_url=runtime.settings.database_url,
        js=nats.jetstream(),
        clock=runtime.clock,
        **options,
    )


async def query(database_url: str, sql: Any, **parameters: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as connection:
        # Without parameters, several statements may go in one string (the simple query protocol).
        cursor = await connection.execute(sql, parameters or None)
        return await cursor.fetchall() if cursor.description is not None else []


async def read_models(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The live read models and their bookkeeping, as the service's connections see them."""
    return {
        "vehicles": await query(
            database_url, "SELECT vehicle_id, mileage_km, readings FROM probe_vehicles ORDER BY 1"
        ),
        "readings": await query(
            database_url, "SELECT event_id, vehicle_id, mileage_km FROM probe_readings ORDER BY 1"
        ),
        "inbox": await query(database_url, "SELECT consumer, event_id, event_type FROM inbox ORDER BY 1, 2"),
        "versions": await query(
            database_url, "SELECT read_model, aggregate_id, version FROM read_model_versions ORDER BY 1, 2"
        ),
    }


async def rebuild_schemas(database_url: str) -> list[str]:
    rows = await query(
        database_url,
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %(prefix)s)",
        prefix=REBUILD_SCHEMA_PREFIX,
    )
    return [name for (name,) in rows]


async def one_aggregate_dead_lettered(database_url: str) -> None:
    async def dead_lettered() -> bool:
        rows = await query(database_url, "SELECT dead_lettered_at IS NOT NULL FROM consumer_holds")
        return rows == [(True,)]

    await wait_until(dead_lettered)


async def fix_and_replay_the_dead_letter(runtime: ServiceRuntime, nats: Client) -> None:
    """The handler fixed, the dead letter's replay applies the held events; until the hold is released."""
    Faults.reset()
    assert len(await deadletter.replay(nats.jetstream(), consumer=runtime.consumers[0].durable)) == 1

    async def released() -> bool:
        return not await query(runtime.settings.database_url, "SELECT 1 FROM consumer_holds")

    await wait_until(released)


def expected_vehicles(producer: Producer) -> list[tuple[str, int, int]]:
    """Per vehicle: the newest reading's mileage and how many readings it has."""
    newest: dict[str, tuple[int, int]] = {}
    for envelope in producer.published:
        count = newest.get(envelope.aggregate_id, (0, 0))[1]
        newest[envelope.aggregate_id] = (envelope.data.mileage_km, count + 1)
    return sorted((vehicle, km, count) for vehicle, (km, count) in newest.items())


async def test_the_rebuilt_read_models_equal_the_live_ones_and_the_service_goes_on_with_them(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=30, readings=6)
        for vehicle in ("v3", "v7", "v11"):
            await producer.reading(vehicle, 0, copy=True)  # a relay's republished copies
        await consumed(runtime, nats, producer)
        live = await read_models(database_url)
        assert live["vehicles"] == expected_vehicles(producer)

        report = await rebuild(runtime, nats, batch_size=40)

        assert await read_models(database_url) == live
        [replay] = report.replays
        assert (replay.consumer, replay.stream) == ("probe.mileage", STREAM)
        assert (replay.read, replay.applied, replay.duplicates, replay.held_back) == (183, 180, 3, 0)
        assert set(report.tables) == {"probe_readings", "probe_vehicles", "inbox", "read_model_versions"}
        assert await rebuild_schemas(database_url) == []
        # The replaced tables wait in the backup schema, as they were.
        assert await query(
            database_url, f"SELECT count(*), sum(readings) FROM {BACKUP_SCHEMA}.probe_vehicles"
        ) == [(30, 180)]
        # The ephemeral consumer the replay read through is gone; the live durable is untouched.
        names = [info.name for info in await nats.jetstream().consumers_info(STREAM)]
        assert names == [runtime.consumers[0].subscription_durable]

        # The live consumer writes the swapped-in tables now, each new event once.
        await producer.reading("v3", 99_000)
        await producer.reading("new-vehicle", 5)
        await consumed(runtime, nats, producer)
        assert (await read_models(database_url))["vehicles"] == expected_vehicles(producer)


async def test_events_published_during_the_rebuild_land_once_and_readers_never_fail_or_see_an_empty_table(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=100, readings=10)
        await consumed(runtime, nats, producer)
        rebuilding = asyncio.Event()
        stop = asyncio.Event()
        polls: dict[str, int] = {"counts": 0, "snapshots": 0}
        published_during_rebuild = 0

        async def read_throughout() -> None:
            """One statement at a time, and snapshots over both tables, read in either order and held a
            moment (the readings counted in one equal the applications counted in the other): readers the
            swap must wait for, or give way to when it holds one table they ask for."""
            orders = [("probe_readings", "probe_vehicles"), ("probe_vehicles", "probe_readings")]
            counts = {
                "probe_readings": "SELECT count(*) FROM probe_readings",
                "probe_vehicles": "SELECT sum(readings) FROM probe_vehicles",
            }
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=True
            ) as connection:
                while not stop.is_set():
                    [(count,)] = await (await connection.execute(counts["probe_readings"])).fetchall()
                    assert count >= 1000
                    polls["counts"] += 1
                    first, second = orders[polls["snapshots"] % 2]
                    async with connection.transaction():
                        await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        [(one,)] = await (await connection.execute(counts[first])).fetchall()
                        await asyncio.sleep(0.01)
                        [(other,)] = await (await connection.execute(counts[second])).fetchall()
                    assert one == other
                    polls["snapshots"] += 1

        async def publish_throughout() -> None:
            nonlocal published_during_rebuild
            randomly = random.Random(15)
            while not stop.is_set():
                vehicle = f"v{randomly.randrange(120)}"  # some new vehicles too
                await producer.reading(vehicle, randomly.randrange(1, 900_000))
                if rebuilding.is_set():
                    published_during_rebuild += 1
                await asyncio.sleep(0.003)

        reader = asyncio.create_task(read_throughout())
        publisher = asyncio.create_task(publish_throughout())
        await asyncio.sleep(0.2)
        rebuilding.set()
        report = await rebuild(runtime, nats, batch_size=25)
        rebuilding.clear()
        await asyncio.sleep(0.3)  # and a while after the swap
        stop.set()
        await asyncio.gather(reader, publisher)
        await consumed(runtime, nats, producer)

        assert published_during_rebuild > 20
        total = len(producer.published)
        assert report.replays[0].applied > 1000  # it read what arrived while it ran, too
        models = await read_models(database_url)
        assert models["vehicles"] == expected_vehicles(producer)  # each reading applied exactly once
        assert len(models["readings"]) == total
        assert len(models["inbox"]) == total
        assert polls["counts"] > 20 and polls["snapshots"] > 20


async def test_a_crash_mid_rebuild_leaves_the_live_tables_as_they_were_and_the_next_rebuild_succeeds(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=20, readings=10)
        await consumed(runtime, nats, producer)
        live = await read_models(database_url)

        Faults.crash_after = 120  # the database goes away after 120 of the 200 events
        with pytest.raises(psycopg.OperationalError):
            await rebuild(runtime, nats, batch_size=30)

        assert await read_models(database_url) == live
        assert await rebuild_schemas(database_url) == []
        # A process killed mid-rebuild leaves its schema behind: the next rebuild drops it first.
        leftover = f"{REBUILD_SCHEMA_PREFIX}19991231235959"
        await query(
            database_url,
            f"CREATE SCHEMA {leftover}; CREATE TABLE {leftover}.probe_vehicles (vehicle_id text)",
        )

        report = await rebuild(runtime, nats, batch_size=30)

        assert report.replays[0].applied == 200
        assert await read_models(database_url) == live
        assert await rebuild_schemas(database_url) == []


async def options_of_tables(unit: Unit) -> dict[str, Any]:
    """The storage options of the probe's tables where the unit's unqualified names resolve."""
    rows = await fetch_on_driver(
        unit,
        "options",
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('probe_readings', 'probe_vehicles') "
        "AND relnamespace = current_schema()::regnamespace",
        {},
    )
    return dict(rows)


async def test_the_derivations_run_at_once_over_the_replayed_tables_and_one_failing_stops_the_rebuild(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=6, readings=5)
        await consumed(runtime, nats, producer)
        live = await read_models(database_url)
        started = {"first": asyncio.Event(), "second": asyncio.Event()}
        seen: dict[str, tuple[int, int]] = {}

        def derivation(name: str, other: str) -> Derivation:
            async def derive(unit: Unit) -> None:
                replayed = await execute_on_driver(
                    unit, "replayed", "SELECT count(*), pg_backend_pid() FROM probe_readings", {}
                )
                assert replayed is not None
                seen[name] = (replayed[0], replayed[1])
                # No autovacuum on the fresh tables before the swap (it would keep the swap's locks waiting).
                assert await options_of_tables(unit) == {
                    table: ["autovacuum_enabled=false"] for table in ("probe_readings", "probe_vehicles")
                }
                started[name].set()
                # Run one after the other, each would wait here for the other in vain.
                await asyncio.wait_for(started[other].wait(), timeout=30)

            return derive

        report = await rebuild_read_models(
            ReadModels(
                runtime.service,
                runtime.consumers,
                runtime.read_models,
                (derivation("first", "second"), derivation("second", "first")),
            ),
            database_url=runtime.settings.database_url,
            js=nats.jetstream(),
            clock=runtime.clock,
        )

        assert report.replays[0].applied == 30
        assert [count for count, _ in seen.values()] == [30, 30]
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as connection:
            # Swapped in with the settings they are defined with.
            assert await options_of_tables(DriverTransaction(connection)) == {
                "probe_readings": None,
                "probe_vehicles": None,
            }
        assert seen["first"][1] != seen["second"][1]  # on connections of their own
        assert await read_models(database_url) == live

        async def refuse(unit: Unit) -> None:
            raise ValueError("this derivation fails")

        with pytest.raises(ValueError, match="this derivation fails"):
            await rebuild_read_models(
                ReadModels(runtime.service, runtime.consumers, runtime.read_models, (refuse,)),
                database_url=runtime.settings.database_url,
                js=nats.jetstream(),
                clock=runtime.clock,
            )
        assert await read_models(database_url) == live
        assert await rebuild_schemas(database_url) == []


async def test_a_handler_failing_on_what_the_live_consumer_applied_or_a_database_not_migrated_stops_the_rebuild(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=5, readings=4)
        await consumed(runtime, nats, producer)
        live = await read_models(database_url)

        Faults.refused_km = {2003}  # v3's second reading, applied live before the handler changed
        with pytest.raises(RebuildFailed, match="which its live consumer applied"):
            await rebuild(runtime, nats)
        Faults.reset()
        await query(database_url, "ALTER TABLE probe_vehicles ADD COLUMN colour text")
        with pytest.raises(RebuildFailed, match="migrate the database"):
            await rebuild(runtime, nats)

        await query(database_url, "ALTER TABLE probe_vehicles DROP COLUMN colour")
        assert await read_models(database_url) == live
        assert await rebuild_schemas(database_url) == []


async def test_an_aggregate_the_live_consumer_holds_back_is_left_to_its_hold_and_applied_after_the_replay(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=10, readings=3)
        Faults.refused_km = {777}
        await producer.reading("v4", 777)  # dead-lettered live after two attempts
        await producer.reading("v4", 8000)  # held back behind it
        await producer.reading("v5", 9000)
        await consumed(runtime, nats, producer)

        await one_aggregate_dead_lettered(database_url)
        live = await read_models(database_url)
        assert ("v4", 3004, 3) in live["vehicles"]

        report = await rebuild(runtime, nats)

        assert report.replays[0].held_back == 2
        assert await read_models(database_url) == live
        # After the fix, the dead letter's replay applies v4's held events into the swapped-in tables, once.
        await fix_and_replay_the_dead_letter(runtime, nats)
        assert (await read_models(database_url))["vehicles"] == expected_vehicles(producer)


async def test_a_batch_a_commuting_handler_refuses_is_applied_again_one_by_one_and_only_the_refused_aggregate_held(
    database_url: str, nats_url: str, nats: Client
) -> None:
    async with live_service(database_url, nats_url, commuting_mileage_consumer()) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=10, readings=3)
        Faults.refused_km = {777}
        await producer.reading("v4", 777)  # dead-lettered live after two attempts
        await producer.reading("v4", 8000)  # held back behind it
        await producer.history(vehicles=10, readings=2, prefix="w")
        await consumed(runtime, nats, producer)

        await one_aggregate_dead_lettered(database_url)
        live = await read_models(database_url)
        # Once per live transaction, over the events it applied: every reading but v4's last two, once.
        applied_live = sorted(km for finished in Faults.finished for km in finished)
        assert applied_live == sorted(
            e.data.mileage_km for e in producer.published if e.data.mileage_km not in (777, 8000)
        )
        Faults.batch_sizes, Faults.finished = [], []

        report = await rebuild(runtime, nats, batch_size=16)

        # 52 events in batches of 16. The second ends with the refused reading and v4's next: refused whole, it
        # is applied again one event at a time until the refused one (the 15th) fails, then the 14 before it
        # as a batch again; v4's two are left to the live hold.
        assert Faults.batch_sizes[:18] == [16, 16, *[1] * 15, 14]
        # Once per rebuild transaction, over the events its handlers applied: 16, then the 14 before the refused.
        assert [len(finished) for finished in Faults.finished][:2] == [16, 14]
        assert sorted(km for finished in Faults.finished for km in finished) == applied_live
        [replay] = report.replays
        assert (replay.read, replay.applied, replay.held_back) == (52, 50, 2)
        assert await read_models(database_url) == live

        await fix_and_replay_the_dead_letter(runtime, nats)
        assert (await read_models(database_url))["vehicles"] == expected_vehicles(producer)


async def test_the_swapped_in_tables_keep_the_live_tables_grants(
    database_url: str, nats_url: str, nats: Client
) -> None:
    reader = f"probe_reader_{uuid.uuid4().hex[:8]}"
    async with live_service(database_url, nats_url) as runtime:
        producer = Producer(nats)
        await producer.history(vehicles=2, readings=2)
        await consumed(runtime, nats, producer)
        await query(database_url, f"CREATE ROLE {reader}; GRANT SELECT ON probe_vehicles TO {reader}")
        try:
            await rebuild(runtime, nats)
            assert await query(
                database_url,
                "SELECT has_table_privilege(%(role)s, 'probe_vehicles', 'SELECT'), "
                "has_table_privilege(%(role)s, 'probe_readings', 'SELECT')",
                role=reader,
            ) == [(True, False)]
        finally:
            await query(database_url, f"DROP OWNED BY {reader}; DROP ROLE {reader}")
