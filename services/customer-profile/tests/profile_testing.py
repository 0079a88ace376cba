"""Helpers of the customer-profile tests. The service runs against real PostgreSQL and NATS: the app from `build()` (what `create_app()` does with the
environment), inside its runtime's lifespan, driven over ASGI; producers' events published to JetStream as
the producers publish them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
from fastapi import FastAPI

from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_events import Actor, DomainEvent, Envelope, encode
from pitlane_events.identifiers import vin_check_digit
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
        event: DomainEvent,
        *,
        aggregate_id: str,
        version: int = 1,
        branch_id: str = "b1",
        envelope: Envelope[Any] | None = None,
    ) -> Envelope[Any]:
        js = self.connection.jetstream()
        await declare_stream(js, service_stream(event.service()))
        envelope = envelope or Envelope.new(
            event,
            chain_id=CHAIN,
            branch_id=branch_id,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            actor=Actor.service(event.service()),
            occurred_at=event_time(event),
        )
        message = encode(envelope)
        await js.publish(message.subject, message.payload, headers=message.headers)
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
