"""What analytics learns from every stream, one consumer per producer:

- `analytics.workorder`: work orders (opened, completed, voided), appointments (booked, rescheduled,
  cancelled, no-show, arrived), add-ons (proposed, approved, declined).
- `analytics.notification`: NPS surveys sent and answered, campaigns launched and sent, and their audiences
  as the control-group draw split them (treated or held out).
- `analytics.reminder`: reminders due (each one a reminder sent).
- `analytics.customer-profile`: customers merged and erased.

Every consumer runs on the driver; each event's facts commit with its inbox row, and the producer's
watermark (the newest event time read from it: an answer's `data_as_of`) moves with them, once per
transaction (`Consumer.after_applying`).

The writers take many events of a type at once (`Consumer.on_many`): the consumers' effects commute, so a
rebuild applies a batch type by type, and leaves the headline's projections to one pass over the replayed
facts at its end (`derived_later`; bootstrap's `derive_read_models`). No read model here is gated on
aggregate versions (`advance_read_model`): each fact row is written column by column and ends the same in
any order of arrival (service_layer/projection.py), and a version gate would
drop the history of an event type subscribed to later instead of applying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_analytics.adapters.facts import advance_watermark
from pitlane_analytics.service_layer.projection import FOLLOWERS, WRITERS, Events, Follower, Writer
from pitlane_events import Envelope
from pitlane_platform.clock import Clock
from pitlane_platform.db import Unit
from pitlane_platform.messaging.consumer import BatchHandler, Consumer
from pitlane_platform.settings import ServiceSettings

SERVICE = "analytics"
SOURCES = ("workorder", "notification", "reminder", "customer-profile")
CHAIN_TIMEZONE = ZoneInfo(ServiceSettings.model_fields["chain_timezone"].default)


def build_consumers(timezone: ZoneInfo = CHAIN_TIMEZONE) -> list[Consumer]:
    """`timezone`: the chain's, whose local months the headline's projections are kept in."""
    return [_consumer(source, timezone) for source in SOURCES]


def _consumer(source: str, timezone: ZoneInfo) -> Consumer:
    consumer = Consumer(service=SERVICE, purpose=source, source_service=source, on_driver=True)
    for model, writer in WRITERS.items():
        if model.service() == source:
            consumer.on_many(model)(_handler(writer, FOLLOWERS.get(model), timezone))

    @consumer.after_applying
    async def watermark(unit: Unit, applied: Sequence[Envelope[Any]]) -> None:
        await advance_watermark(unit, source, max(envelope.occurred_at for envelope in applied))

    return consumer


def _handler(writer: Writer, follower: Follower | None, timezone: ZoneInfo) -> BatchHandler:
    async def handle(unit: Unit, events: Events, clock: Clock, *, derived_later: bool) -> None:
        await writer(unit, events)
        if follower is not None and not derived_later:
            await follower(unit, events, timezone)

    return handle
