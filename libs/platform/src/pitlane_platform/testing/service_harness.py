"""Driving one service in-process against real PostgreSQL and NATS on a fixed clock, as its tests do: the API
over ASGI with development tokens, other services' events published on their streams as their relays would,
and waits on positive signals (a consumer's ack floor, the outbox drained, the timers caught up with the
clock). A service's test harness subclasses it with the helpers of its own domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

import httpx
import nats

from pitlane_events import Actor, DomainEvent, Envelope, decode
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import FixedClock
from pitlane_platform.db import fetch_on_driver
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.testing.jetstream import publish_envelopes, stream_messages, wait_until

CHAIN_WIDE_ROLES = ("owner", "analyst")
S = TypeVar("S", bound=ServiceSettings)


@dataclass
class ServiceHarness(Generic[S]):
    settings: S
    runtime: ServiceRuntime
    client: httpx.AsyncClient
    clock: FixedClock
    # The branch a token of a branch role covers unless a test says otherwise.
    home_branch: str = "b1"
    _versions: dict[str, int] = field(default_factory=dict)

    # ---- the API ----------------------------------------------------------------------------------------

    def auth(
        self, role: str = "owner", *, sub: str = "olivia", branches: Sequence[str] | None = None
    ) -> dict[str, str]:
        if branches is None:
            branches = ("*",) if role in CHAIN_WIDE_ROLES else (self.home_branch,)
        token = mint_dev_token(self.settings, role=role, branches=list(branches), sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, *, role: str = "owner", sub: str = "olivia", **kw: Any) -> httpx.Response:
        headers = self.auth(role, sub=sub, branches=kw.pop("branches", None))
        return await self.client.get(path, headers=headers, **kw)

    async def post(
        self, path: str, json: Any = None, *, role: str = "owner", sub: str = "olivia", **kw: Any
    ) -> httpx.Response:
        headers = self.auth(role, sub=sub, branches=kw.pop("branches", None))
        return await self.client.post(path, json=json, headers=headers, **kw)

    async def put(
        self, path: str, json: Any = None, *, role: str = "owner", sub: str = "olivia", **kw: Any
    ) -> httpx.Response:
        headers = self.auth(role, sub=sub, branches=kw.pop("branches", None))
        return await self.client.put(path, json=json, headers=headers, **kw)

    # ---- other services' events --------------------------------------------------------------------------

    def envelope(
        self, source: str, event: DomainEvent, aggregate_id: str, *, branch_id: str | None = None
    ) -> Envelope[Any]:
        """The event as `source`'s relay publishes it: the aggregate's next version, now on the clock."""
        version = self._versions.get(aggregate_id, 0) + 1
        self._versions[aggregate_id] = version
        return Envelope.new(
            event,
            chain_id=self.settings.chain_id,
            branch_id=branch_id,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            actor=Actor.service(source),
            occurred_at=self.clock.now(),
        )

    async def publish(self, *envelopes: Envelope[Any], msg_id: str | None = None) -> int:
        """Publish envelopes on their producers' streams; the stream sequence of the last."""
        return await publish_envelopes(self.settings.nats_url, envelopes, msg_id=msg_id)

    async def consumed(self, source: str, sequence: int) -> None:
        """Wait until every consumer of this service reading `source`'s stream acked it up to `sequence`."""
        stream = stream_name(source)
        durables = [c.subscription_durable for c in self.runtime.consumers if c.source_service == source]
        connection = await nats.connect(self.settings.nats_url)
        try:
            js = connection.jetstream()

            async def acked() -> bool:
                for durable in durables:
                    try:
                        info = await js.consumer_info(stream, durable)
                    except nats.js.errors.NotFoundError:
                        return False
                    if info.ack_floor.stream_seq < sequence or info.num_ack_pending:
                        return False
                return True

            acked.__name__ = f"{source}'s stream consumed through {sequence}"
            await wait_until(acked)
        finally:
            await connection.close()

    async def emit_and_wait(
        self, source: str, event: DomainEvent, aggregate_id: str, *, branch_id: str | None = None
    ) -> Envelope[Any]:
        envelope = self.envelope(source, event, aggregate_id, branch_id=branch_id)
        await self.consumed(source, await self.publish(envelope))
        return envelope

    # ---- what the service did ------------------------------------------------------------------------------

    async def rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        async with self.runtime.driver.transaction() as unit:
            return await fetch_on_driver(unit, "test", sql, parameters, as_dicts=True)

    async def published(self, event_type: str) -> list[Envelope[Any]]:
        """This service's events of a type on its stream, once its outbox is drained."""

        async def drained() -> bool:
            rows = await self.rows("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
            return rows[0]["n"] == 0

        await wait_until(drained)
        connection = await nats.connect(self.settings.nats_url)
        try:
            try:
                messages = await stream_messages(
                    connection.jetstream(), stream_name(self.settings.service_name)
                )
            except nats.js.errors.NotFoundError:
                return []
        finally:
            await connection.close()
        envelopes = [decode(message.data) for message in messages]
        return [envelope for envelope in envelopes if envelope.event_type == event_type]

    def advance(self, **by: float) -> None:
        self.clock.advance(timedelta(**by))

    async def timers_caught_up(self) -> None:
        """Every timer due by the clock's "now" has fired: a runner looked at this time and found none left."""
        runner = self.runtime.timer_runner
        assert runner is not None, "this service runs no timers"
        now = self.clock.now()

        async def caught_up() -> bool:
            return runner.status.checked_until is not None and runner.status.checked_until >= now

        caught_up.__name__ = f"timers caught up with {now.isoformat()}"
        await wait_until(caught_up)
