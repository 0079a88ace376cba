"""Drives the analytics service in-process against real PostgreSQL and NATS on a fixed clock: the other
services' events published on their streams as their relays would (in any order across aggregates, and
again under other message ids, as a relay republishing after the dedupe window would), the API over ASGI."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats

from pitlane_analytics.bootstrap import AnalyticsService, AnalyticsSettings, build
from pitlane_events import DomainEvent, Envelope, encode
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.clock import FixedClock
from pitlane_platform.testing.service_harness import ServiceHarness


def shanghai(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A wall-clock time in Shanghai (UTC+8, no daylight saving), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


START = shanghai(2025, 1, 1)


@dataclass
class Harness(ServiceHarness[AnalyticsSettings]):
    service: AnalyticsService = field(kw_only=True)

    def event_at(
        self, moment: datetime, event: DomainEvent, aggregate_id: str, *, branch_id: str | None = None
    ) -> Envelope[Any]:
        """The event as its producer's relay publishes it, having occurred at `moment`."""
        self.clock.set(moment)
        return self.envelope(event.service(), event, aggregate_id, branch_id=branch_id)

    async def deliver(
        self, envelopes: Sequence[Envelope[Any]], *, copies: int = 1, shuffle: random.Random | None = None
    ) -> None:
        """Publish `envelopes` (each `copies` times, the copies under other message ids so JetStream keeps
        them) and wait until every consumer has acked them. With `shuffle`, aggregates interleave at random
        and each copy lands anywhere after its original; one aggregate's events keep their order."""
        queue = _interleaved(envelopes, shuffle) if shuffle else list(envelopes)
        sends: list[tuple[Envelope[Any], str]] = [(envelope, str(envelope.event_id)) for envelope in queue]
        for copy in range(1, copies):
            for envelope in queue:
                original = next(i for i, (sent, _) in enumerate(sends) if sent is envelope)
                position = shuffle.randint(original + 1, len(sends)) if shuffle else len(sends)
                sends.insert(position, (envelope, f"{envelope.event_id}:copy{copy}"))
        last: dict[str, int] = {}
        connection = await nats.connect(self.settings.nats_url)
        try:
            js = connection.jetstream()
            for envelope, msg_id in sends:
                message = encode(envelope)
                ack = await js.publish(
                    message.subject, message.payload, headers={**message.headers, MSG_ID_HEADER: msg_id}
                )
                last[envelope.event_type.split(".")[0]] = ack.seq
        finally:
            await connection.close()
        for source, sequence in last.items():
            await self.consumed(source, sequence)

    async def kpi(self, path: str, *, role: str = "owner", **params: Any) -> dict[str, Any]:
        response = await self.get(path, role=role, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _interleaved(envelopes: Sequence[Envelope[Any]], shuffle: random.Random) -> list[Envelope[Any]]:
    streams: dict[str, list[Envelope[Any]]] = {}
    for envelope in envelopes:
        streams.setdefault(envelope.aggregate_id, []).append(envelope)
    order: list[Envelope[Any]] = []
    while streams:
        aggregate = shuffle.choice(sorted(streams))
        order.append(streams[aggregate].pop(0))
        if not streams[aggregate]:
            del streams[aggregate]
    return order


def settings_for(database_url: str, nats_url: str, **changes: Any) -> AnalyticsSettings:
    return AnalyticsSettings(
        database_url=database_url,
        nats_url=nats_url,
        env="test",
        jwt_secret="analytics-test-jwt-secret-of-32-bytes-or-more",
        link_secret="analytics-test-link-secret-of-32-bytes-or-more",
        relay_poll_interval_s=0.2,
        **changes,
    )


@asynccontextmanager
async def running(database_url: str, nats_url: str, **changes: Any) -> AsyncIterator[Harness]:
    settings = settings_for(database_url, nats_url, **changes)
    clock = FixedClock(START)
    service = build(settings, clock=clock)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.app), base_url="http://analytics"
        ) as client,
    ):
        yield Harness(settings=settings, runtime=service.runtime, client=client, clock=clock, service=service)
