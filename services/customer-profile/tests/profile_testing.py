"""Helpers of the customer-profile tests. The service runs against real PostgreSQL and NATS: the app from `build()` (what `create_app()` does with the
environment), inside its runtime's lifespan, driven over ASGI; producers' events published to JetStream as
the producers publish them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import nats
import psycopg
from fastapi import FastAPI
from nats.js.errors import NotFoundError as JsNotFoundError
from sqlalchemy import select, text

from pitlane_customer_profile.adapters.event_store import ProfileEventStore
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.tables import (
    customer_phones,
    customers,
    declined_add_ons,
    reminders,
    vehicles,
    visits,
)
from pitlane_customer_profile.bootstrap import CustomerProfileSettings, build
from pitlane_customer_profile.domain.customer import Customer
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWork
from pitlane_events import Actor, DomainEvent, Envelope, encode
from pitlane_events.customer_profile import VehicleMileageRecorded
from pitlane_events.identifiers import vin_check_digit
from pitlane_events.types import (
    AddOnDecision,
    AddOnSummary,
    LineCategory,
    LineItem,
    Payment,
    PaymentMethod,
)
from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    AddOnDeclined,
    DecidedBy,
    DecisionMethod,
    WorkOrderCompleted,
    WorkOrderOpened,
)
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.db import libpq_url
from pitlane_platform.messaging.streams import (
    DEAD_LETTER_STREAM,
    REPLAY_STREAM,
    declare_stream,
    service_stream,
    stream_name,
)
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.schema import events

CHAIN = "chain-test"
SCANNED_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


@dataclass
class Service:
    settings: CustomerProfileSettings
    runtime: ServiceRuntime
    app: FastAPI
    client: httpx.AsyncClient

    def headers(
        self, role: str = "advisor", *, sub: str = "amy", branches: tuple[str, ...] = ("b1",)
    ) -> dict[str, str]:
        token = mint_dev_token(
            self.settings, role=role, branches=list(branches), sub=sub, ttl=timedelta(hours=1)
        )
        return {"Authorization": f"Bearer {token}"}

    def owner_headers(self) -> dict[str, str]:
        return self.headers("owner", sub="olivia", branches=("*",))

    async def post(self, path: str, body: Any, role: str = "advisor", **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.headers(role, **kw))

    async def patch(self, path: str, body: Any, role: str = "advisor") -> httpx.Response:
        return await self.client.patch(path, json=body, headers=self.headers(role))

    async def get(
        self, path: str, role: str = "advisor", *, sub: str = "amy", **params: Any
    ) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers(role, sub=sub))


@asynccontextmanager
async def serving(settings: CustomerProfileSettings, **overrides: Any) -> AsyncIterator[Service]:
    """The service as `create_app()` builds it, running inside its lifespan, driven over ASGI; `overrides`
    change settings (limits a test can reach quickly)."""
    settings = settings.model_copy(update=overrides)
    runtime, app = build(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cp") as client,
    ):
        yield Service(settings, runtime, app, client)


class Producer:
    """Publishes events exactly as another service's relay does: the encoded envelope on its stream."""

    def __init__(self, connection: nats.NATS) -> None:
        self.connection = connection

    async def publish(
        self,
        event: DomainEvent | None = None,
        *,
        aggregate_id: str = "",
        version: int = 1,
        branch_id: str = "b1",
        envelope: Envelope[Any] | None = None,
        message_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope[Any]:
        """Publish `event` in a new envelope (occurred at `occurred_at`, by default its completion or now), or
        `envelope` again; `message_id` overrides the Nats-Msg-Id, as a relay republishing after the stream's
        duplicate window does in effect."""
        if envelope is None:
            assert event is not None
            envelope = Envelope.new(
                event,
                chain_id=CHAIN,
                branch_id=branch_id,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                actor=Actor.service(event.service()),
                occurred_at=occurred_at or event_time(event),
            )
        js = self.connection.jetstream()
        await declare_stream(js, service_stream(envelope.event_type.split(".")[0]))
        message = encode(envelope)
        headers = {**message.headers, **({"Nats-Msg-Id": message_id} if message_id else {})}
        await js.publish(message.subject, message.payload, headers=headers)
        return envelope


def event_time(event: DomainEvent) -> datetime:
    return getattr(event, "completed_at", None) or datetime.now(UTC)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def make_vin(serial: int) -> str:
    """A valid VIN (right check digit) for each serial number."""
    body = f"LSVAU2180N{serial:07d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def make_phone(serial: int) -> str:
    return f"+86139{serial:08d}"


def opening(
    customer_id: str, vehicle_id: str, *, work_order_id: str = "wo-1", mileage_km: int = 12_000
) -> WorkOrderOpened:
    """A walk-in's WorkOrderOpened for the car 沪A12345 (an oil change, advisor amy)."""
    return WorkOrderOpened(
        work_order_id=work_order_id,
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        plate="沪A12345",
        mileage_km=mileage_km,
        complaint="保养",
        advisor_id="amy",
        process=BUILT_IN_PROCESS,
    )


def customer_declined(item: str, price_fen: int, *, decided_at: datetime) -> AddOnDeclined:
    """Add-on ao-1 of wo-1, declined by the customer through the signed link, "下次再换"."""
    return AddOnDeclined(
        work_order_id="wo-1",
        add_on_id="ao-1",
        item=item,
        category=LineCategory.PARTS,
        price_fen=price_fen,
        estimate_revision_seen=2,
        decided_by=DecidedBy.CUSTOMER,
        method=DecisionMethod.SIGNED_LINK,
        decided_at=decided_at,
        reason="下次再换",
    )


def completion(
    *,
    work_order_id: str,
    customer_id: str,
    vehicle_id: str,
    plate: str,
    mileage_km: int,
    completed_at: datetime,
    total_fen: int = 38_800,
    declined: tuple[tuple[str, str, int], ...] = (),
    branch_id: str = "b1",
) -> WorkOrderCompleted:
    """A realistic WorkOrderCompleted: one oil-change line of `total_fen`, paid in full, `declined` add-ons
    as (add_on_id, item, price_fen)."""
    line = LineItem(
        item_code="SVC-OIL",
        name="更换机油机滤",
        category=LineCategory.PACKAGE,
        quantity=Decimal(1),
        unit_price_fen=total_fen,
        line_total_fen=total_fen,
    )
    return WorkOrderCompleted(
        work_order_id=work_order_id,
        customer_id=customer_id,
        line_items=(line,),
        subtotal_fen=total_fen,
        discount_fen=0,
        total_fen=total_fen,
        paid_fen=total_fen,
        payments=(Payment(method=PaymentMethod.WECHAT_PAY, amount_fen=total_fen, paid_at=completed_at),),
        vehicle_id=vehicle_id,
        plate=plate,
        mileage_km=mileage_km,
        branch_id=branch_id,
        advisor_id="amy",
        technician_ids=("tom",),
        add_ons=tuple(
            AddOnSummary(
                add_on_id=add_on_id,
                item=item,
                category=LineCategory.PARTS,
                price_fen=price,
                decision=AddOnDecision.DECLINED,
            )
            for add_on_id, item, price in declined
        ),
        opened_at=completed_at - timedelta(hours=2),
        completed_at=completed_at,
    )


def wang(**extra: object) -> dict:
    return {
        "full_name": "王建国",
        "phone": "138 1234 5678",
        "other_phones": ["+86 139 0000 1111"],
        "wechat_id": "wx_wangjg",
        "gender": "male",
        "birthday": "1982-04-17",
        "source": "walk_in",
        "membership_tier": "gold",
        "tags": ["价格敏感"],
        "preferred_services": ["小保养"],
        "notes": "只在周末来店",
        "consents": [{"channel": "sms", "purpose": "service", "granted": True}],
        **extra,
    }


async def register_customer(service: Service, **extra: object) -> str:
    response = await service.post("/v1/customers", wang(**extra))
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def register_vehicle(
    service: Service, owner: str, plate: str, vin: str | None = None, **extra: object
) -> str:
    body = {
        "owner_customer_id": owner,
        "plate": plate,
        "brand": "大众",
        "model": "帕萨特",
        "vin": vin,
        **extra,
    }
    response = await service.post("/v1/vehicles", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def stored_events(
    service: Service, stream_id: str, event_type: type[DomainEvent]
) -> list[dict[str, Any]]:
    """The stream's stored envelopes of `event_type`, in order."""
    async with service.runtime.sessions() as session:
        rows = await session.execute(
            select(events.c.envelope)
            .where(events.c.stream_id == stream_id, events.c.event_type == event_type.event_type)
            .order_by(events.c.version)
        )
        return list(rows.scalars())


async def mileage_events(service: Service, vehicle_id: str) -> list[dict[str, Any]]:
    """The vehicle's stored VehicleMileageRecorded envelopes, in order."""
    return await stored_events(service, vehicle_id, VehicleMileageRecorded)


async def figures(service: Service, customer_id: str) -> tuple[int, int]:
    async with service.runtime.sessions() as session:
        row = (
            await session.execute(
                select(customers.c.visit_count, customers.c.total_spend_fen).where(
                    customers.c.customer_id == customer_id
                )
            )
        ).one()
    return row.visit_count, row.total_spend_fen


async def handled(service: Service, *envelopes: Envelope[Any]) -> None:
    """Wait until the service's consumers applied these events: their inbox rows commit with their effect,
    so this is the positive signal after which an absence may be asserted."""
    wanted = {str(envelope.event_id) for envelope in envelopes}

    async def all_in_inbox() -> bool:
        async with service.runtime.sessions() as session:
            found = (
                await session.execute(
                    text("SELECT event_id::text FROM inbox WHERE event_id::text = ANY(:ids)"),
                    {"ids": list(wanted)},
                )
            ).scalars()
            return set(found) == wanted

    await eventually(all_in_inbox)


async def outbox_published(service: Service) -> None:
    """Wait until the relay published every event the service queued: from then on, what the stream lacks
    was never sent."""

    async def published() -> bool:
        async with service.runtime.sessions() as session:
            return await session.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0

    await eventually(published)


@asynccontextmanager
async def holding(database: Service | str, statement: str, **params: Any) -> AsyncIterator[None]:
    """Hold the lock `statement` takes (`LOCK TABLE events IN EXCLUSIVE MODE`, `SELECT … FOR UPDATE`) in a
    transaction of the test's own on the service's database (or the one at that URL) until the block ends.
    Commands started inside run up to the lock and wait there (`waiting_on_locks`), so a race is decided by
    the lock manager, not by the scheduler's luck."""
    url = database if isinstance(database, str) else database.settings.database_url
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as connection:
        async with connection.transaction():
            await connection.execute(statement, params)  # type: ignore[arg-type]
            yield


async def lock_waiters(service: Service) -> int:
    """How many sessions of the service's database are blocked on a lock right now."""
    async with service.runtime.sessions() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return waiting or 0


async def waiting_on_locks(service: Service, count: int) -> None:
    """Wait until `count` sessions of the service's database are blocked on a lock."""

    async def blocked() -> bool:
        return await lock_waiters(service) >= count

    await eventually(blocked)


async def upload(service: Service, content: bytes, *, dry_run: bool, filename: str = "customers.csv") -> dict:
    """POST the file to /v1/imports as an owner; the report (the import must answer 200)."""
    response = await service.client.post(
        "/v1/imports",
        params={"dry_run": str(dry_run).lower()},
        files={"file": (filename, content)},
        headers=service.owner_headers(),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def inconsistencies(service: Service) -> list[str]:
    """What breaks the invariants that span commands, over the whole database (empty when all hold):
    - a customer merged away points at a live customer whose stream (or that of one it absorbed) records
      the merge: never both of a pair, never a chain, never a half-merged customer;
    - the phones table holds exactly the phones of the live customers' streams, each once, and each live
      customer's row says what its stream says;
    - no vehicle, visit, declined add-on or reminder stays with a merged customer; a vehicle's owner is live
      (or none, after an erasure);
    - a live or erased customer's figures are the sum of their visits that were not voided."""
    store = ProfileEventStore(PiiVault(service.settings.master_key()))
    problems: list[str] = []
    async with service.runtime.sessions() as session:
        rows = {row.customer_id: row for row in (await session.execute(select(customers))).all()}
        live = {cid for cid, row in rows.items() if row.merged_into is None and row.erased_at is None}
        merged = {cid for cid, row in rows.items() if row.merged_into is not None}
        uow = UnitOfWork(session, store)
        streams: dict[str, Customer] = {}
        for cid in sorted(set(rows) - {c for c, row in rows.items() if row.erased_at is not None}):
            streams[cid] = await uow.customer(cid)
        phone_rows = {
            (row.phone, row.customer_id, row.is_primary)
            for row in (await session.execute(select(customer_phones))).all()
        }
        owners = (await session.execute(select(vehicles.c.vehicle_id, vehicles.c.owner_customer_id))).all()
        held = [
            (table.name, row[0], row[1])
            for table, key in (
                (visits, visits.c.work_order_id),
                (declined_add_ons, declined_add_ons.c.add_on_id),
            )
            for row in (await session.execute(select(key, table.c.customer_id))).all()
        ] + [
            ("reminders", row[0], row[1])
            for row in (await session.execute(select(reminders.c.reminder_id, reminders.c.customer_id))).all()
        ]
        counted = {
            row.customer_id: (row.n, row.spend)
            for row in (
                await session.execute(
                    text(
                        "SELECT customer_id, count(*) AS n, sum(total_fen) AS spend FROM visits "
                        "WHERE NOT voided GROUP BY customer_id"
                    )
                )
            ).all()
        }

    def absorbed_by(survivor: str) -> set[str]:
        found: set[str] = set()
        todo = [survivor]
        while todo:
            for absorbed in streams[todo.pop()].merged_customer_ids:
                if absorbed not in found and absorbed in streams:
                    found.add(absorbed)
                    todo.append(absorbed)
        return found

    def last_survivor(cid: str) -> str | None:
        seen = set()
        while rows[cid].merged_into is not None:
            if cid in seen or rows[cid].merged_into not in rows:
                return None  # a cycle, or a merge into no one
            seen.add(cid)
            cid = rows[cid].merged_into
        return cid

    for cid in sorted(merged):
        target = last_survivor(cid)
        if target is None:
            problems.append(f"customer {cid} is merged in a cycle or into no one")
        elif rows[cid].erased_at is not None and rows[target].erased_at is not None:
            continue  # erased with the customer it was merged into
        elif target not in live:
            problems.append(f"customer {cid} is merged into {target}, which is not a live customer")
        elif cid not in absorbed_by(target):
            problems.append(f"customer {cid} is merged into {target}, whose stream records no such merge")
    expected_phones = {
        (phone, cid, phone == streams[cid].phone)
        for cid in live
        for phone in (streams[cid].phone, *streams[cid].other_phones)
    }
    for phone, cid, primary in sorted(phone_rows ^ expected_phones):
        where = "table only" if (phone, cid, primary) in phone_rows else "stream only"
        problems.append(f"phone {phone} of {cid} (primary: {primary}) is in the {where}")
    for cid in sorted(live):
        row, stream = rows[cid], streams[cid]
        if (row.full_name, row.primary_phone, row.version) != (
            stream.full_name,
            stream.phone,
            stream.version,
        ):
            problems.append(f"customer {cid}'s row differs from its stream")
    for vehicle_id, owner in owners:
        if owner is not None and owner not in live:
            problems.append(f"vehicle {vehicle_id} belongs to {owner}, which is not a live customer")
    for table, key, cid in held:
        if cid in merged:
            problems.append(f"{table} {key} stayed with merged customer {cid}")
    for cid in sorted(set(rows) - merged):
        figures_ = (rows[cid].visit_count, rows[cid].total_spend_fen)
        if figures_ != counted.get(cid, (0, 0)):
            problems.append(
                f"customer {cid} counts {figures_}, its visits add up to {counted.get(cid, (0, 0))}"
            )
    return problems


async def stream_texts(producer: Producer, *, whole: bool = False) -> list[str]:
    """The payload of every message of customer-profile's stream, as text; `whole`: of the dead letters and
    replays too, each with its headers. Deleted messages are skipped."""
    js = producer.connection.jetstream()
    texts = []
    names = [stream_name("customer-profile"), *((DEAD_LETTER_STREAM, REPLAY_STREAM) if whole else ())]
    for name in names:
        try:
            info = await js.stream_info(name)
        except JsNotFoundError:
            continue  # never created: nothing was dead-lettered or replayed
        for sequence in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                message = await js.get_msg(name, sequence)
            except JsNotFoundError:
                continue  # deleted
            payload = (message.data or b"").decode(errors="replace")
            texts.append(f"{message.headers or {}} {payload}" if whole else payload)
    return texts


@dataclass(frozen=True)
class Answer:
    method: str
    route: str
    params: dict[str, str]
    status: int
    body: str


async def walk_get_routes(
    service: Service,
    headers: dict[str, str],
    path_values: dict[str, str],
    query_values: dict[str, list[str]],
) -> list[Answer]:
    """Every GET operation of the app's OpenAPI document, as `headers` (a role's token): once with its path
    parameters only, then once per value of each query parameter that `query_values` names. A path
    parameter without a value fails, so a new route cannot slip past a walk."""
    answers = []
    for route, operations in service.app.openapi()["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        parameters = operation.get("parameters", [])
        path = route
        for parameter in parameters:
            if parameter["in"] == "path":
                assert parameter["name"] in path_values, f"no value for {parameter['name']} of GET {route}"
                path = path.replace("{" + parameter["name"] + "}", path_values[parameter["name"]])
        tries: list[dict[str, str]] = [{}] + [
            {parameter["name"]: value}
            for parameter in parameters
            if parameter["in"] == "query"
            for value in query_values.get(parameter["name"], [])
        ]
        for params in tries:
            response = await service.client.get(path, params=params, headers=headers)
            body = response.text
            answers.append(Answer("GET", route, params, response.status_code, body))
    return answers


def needles(*secrets: str) -> set[str]:
    """Each secret as it can be written down in a body, a column or a message: as is, JSON-escaped (`\\u738b`),
    and a mainland mobile in each of its forms (+8613812345678, 8613812345678, 13812345678)."""
    found: set[str] = set()
    for secret in secrets:
        forms = {secret}
        if secret.startswith("+86"):
            forms |= {secret[1:], secret[3:]}
        for form in forms:
            found |= {form, json.dumps(form)[1:-1]}
    return found


async def database_texts_with(service: Service, secrets: set[str]) -> dict[str, set[str]]:
    """Which secrets each text, varchar, JSON, array or bytea column of the service's database holds, by
    `table.column`; every table of its schema, found through information_schema."""
    found: dict[str, set[str]] = {}
    async with service.runtime.engine.connect() as connection:
        columns = (
            await connection.execute(
                text(
                    "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
                    "AND c.data_type = ANY(:types)"
                ),
                {"types": list(SCANNED_TYPES)},
            )
        ).all()
        assert {table for table, _, _ in columns} >= {"customers", "events", "outbox", "inbox", "visits"}
        for table, column, data_type in columns:
            holds = (
                f"position(convert_to(n, 'UTF8') IN t.\"{column}\") > 0"
                if data_type == "bytea"
                else f'strpos(CAST(t."{column}" AS text), n) > 0'
            )
            hits = (
                await connection.execute(
                    text(
                        f'SELECT DISTINCT n FROM "{table}" t, unnest(CAST(:secrets AS text[])) n WHERE {holds}'
                    ),
                    {"secrets": sorted(secrets)},
                )
            ).scalars()
            if held := set(hits):
                found[f"{table}.{column}"] = held
    return found
