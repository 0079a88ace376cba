"""The per-user limits on lookups and searches, and the alert a user going over one publishes (ADR 12).

Trying phone numbers or plates one after another is how customers' data is harvested through the front
desk's lookup; the limits stop it, the audit trail keeps each attempt, and the alert tells the owners.
"""

from __future__ import annotations

from uuid import uuid4

from pitlane_events import Actor
from pitlane_events.customer_profile import LookupLimitReached
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.security.limits import LimitReached, OnRefused, UserLimit

LOOKUP_PATH = "/v1/lookup"
SEARCH_PATH = "/v1/customers"


def publish_limit_reached(driver: DriverPool, *, chain_id: str, clock: Clock) -> OnRefused:
    """The hook that queues a LookupLimitReached alert on the outbox (published like every event)."""

    async def on_refused(reached: LimitReached) -> None:
        principal = reached.principal
        context = CommandContext(
            actor=Actor(kind="user", id=principal.user_id, role=principal.role),
            chain_id=chain_id,
            occurred_at=clock.now(),
        )
        alert = LookupLimitReached(
            user_id=principal.user_id,
            role=principal.role,
            method=reached.method,
            route=reached.route,
            limit=str(reached.limit),
            window_s=reached.window_s,
        )
        async with driver.transaction() as unit:
            await outbox.enqueue(
                unit, [context.envelope(alert, aggregate_id=str(uuid4()), aggregate_version=1)]
            )

    return on_refused


def user_limits(*, lookup_rate: str, search_rate: str, on_refused: OnRefused) -> list[UserLimit]:
    return [
        UserLimit("GET", LOOKUP_PATH, lookup_rate, on_refused),
        UserLimit("GET", SEARCH_PATH, search_rate, on_refused),
    ]
