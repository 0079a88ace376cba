"""Helpers of the customer-profile tests. The service runs against real PostgreSQL and NATS: the app from `build()` (what `create_app()` does with the
environment), inside its runtime's lifespan, driven over ASGI; producers' events published to JetStream as
the producers publish them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import nats
from fastapi import FastAPI
from sqlalchemy import select

from pitlane_customer_profile.adapters.tables import customers
from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_events import Actor, DomainEvent, Envelope, encode
from pitlane_events.identifiers import vin_check_digit
from pitlane_events.types import AddOnDecision, AddOnSummary, LineCategory, LineItem, Payment, PaymentMethod
from pitlane_events.workorder import WorkOrderCompleted
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.messaging.streams import declare_stream, service_stream
from pitlane_platform.runtime import ServiceRuntime

CHAIN = "chain-test"


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
    ) -> Envelope[Any]:
        """Publish `event` in a new envelope, or `envelope` again; `message_id` overrides the Nats-Msg-Id, as
        a relay republishing after the stream's duplicate window does in effect."""
        if envelope is None:
            assert event is not None
            envelope = Envelope.new(
                event,
                chain_id=CHAIN,
                branch_id=branch_id,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                actor=Actor.service(event.service()),
                occurred_at=event_time(event),
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
