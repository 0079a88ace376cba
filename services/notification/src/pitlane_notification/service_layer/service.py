"""The notification service's use cases in one place: the pipeline, surveys, campaigns, links, and what
customers and providers tell us (unsubscribes, "TD" replies, delivery receipts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from pitlane_events import Envelope
from pitlane_events.notification import NotificationDelivered, UnsubscribeSource
from pitlane_events.types import Channel, Purpose
from pitlane_events.workorder import WaitlistSlotOffered
from pitlane_notification.adapters import message_log, queries
from pitlane_notification.adapters.channels.base import DeliveryReport, InboundReply
from pitlane_notification.domain.sms import is_opt_out_reply
from pitlane_notification.service_layer import consent
from pitlane_notification.service_layer.campaigns import Campaigns
from pitlane_notification.service_layer.customer_links import LinkMaker
from pitlane_notification.service_layer.delivery import ACTOR, Delivery
from pitlane_notification.service_layer.requests import MessageRequest, Related, Trigger
from pitlane_notification.service_layer.surveys import SEND, Surveys
from pitlane_notification.service_layer.surveys_log import REMIND
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit, fetch_on_driver
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import (
    NewTimer,
    TimerContext,
    TimerHandlers,
    cancel,
    cancel_prefixed,
    schedule_many,
)

APPOINTMENT_REMINDER = "notification.appointment-reminder"
# A booking's reminders: how long before the slot, the suffix of the timer's key (after the appointment and
# its slot) and the message's trigger. Each carries the link to the appointment's page (confirm or move it).
APPOINTMENT_REMINDERS = {
    "": (timedelta(days=1), Trigger.APPOINTMENT_REMINDER),
    ":2h": (timedelta(hours=2), Trigger.APPOINTMENT_SOON),
}


@dataclass
class Notification:
    driver: DriverPool
    clock: Clock
    delivery: Delivery
    surveys: Surveys
    campaigns: Campaigns
    links: LinkMaker
    sms_sign_name: str

    @property
    def chain_id(self) -> str:
        return self.delivery.chain_id

    def timer_handlers(self) -> TimerHandlers:
        timers = TimerHandlers()
        self.delivery.register(timers)
        self.surveys.register(timers)
        timers.on(APPOINTMENT_REMINDER)(self.remind_appointment)
        return timers

    # ---- appointments -------------------------------------------------------------------------------------

    async def appointment_variables(self, unit: Unit, appointment_id: str) -> dict[str, Any]:
        appointment = await queries.appointment(unit, appointment_id)
        if appointment is None:
            raise LookupError(f"appointment {appointment_id} not known yet")
        zone = await self._branch_zone(unit, appointment["branch_id"])
        return {
            "plate": appointment["plate"] or "",
            "slot_start": appointment["slot_start"].astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "service_requested": appointment["service_requested"],
            "link": self.links.appointment_page(
                appointment_id, appointment["branch_id"], appointment["slot_start"]
            ),
        }

    async def _branch_zone(self, unit: Unit, branch_id: str) -> ZoneInfo:
        branch = await queries.branch(unit, branch_id)
        return ZoneInfo((branch or {}).get("timezone") or str(self.delivery.chain_timezone))

    async def schedule_appointment_reminders(
        self, unit: Unit, appointment_id: str, slot_start: datetime, now: datetime, correlation_id: UUID
    ) -> None:
        """The day-before and two-hours-before reminders of the slot, those still ahead (a booking made
        less than a day before gets the second only). One timer per slot and reminder: a reschedule
        withdraws the old slot's (fired or not) and the new slot gets its own."""
        await cancel_prefixed(unit, APPOINTMENT_REMINDER, f"{appointment_id}:", now=now)
        key = f"{appointment_id}:{slot_start.isoformat()}"
        await schedule_many(
            unit,
            APPOINTMENT_REMINDER,
            [
                NewTimer(
                    key + suffix, slot_start - lead, {"appointment_id": appointment_id, "reminder": suffix}
                )
                for suffix, (lead, _) in APPOINTMENT_REMINDERS.items()
                if slot_start - lead > now
            ],
            correlation_id=correlation_id,  # the appointment's visit
        )

    async def remind_appointment(self, ctx: TimerContext) -> None:
        appointment_id = ctx.timer.payload["appointment_id"]
        suffix = ctx.timer.payload.get("reminder", "")  # timers set before the second reminder have none
        appointment = await queries.appointment(ctx.unit, appointment_id)
        if appointment is None or appointment["status"] != "booked":
            return
        _, trigger = APPOINTMENT_REMINDERS[suffix]
        await self.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=trigger,
                purpose=Purpose.SERVICE,
                customer_id=appointment["customer_id"],
                cause=f"appointment-reminder:{appointment_id}:{appointment['slot_start'].isoformat()}{suffix}",
                due_at=ctx.now,
                branch_id=appointment["branch_id"],
                context=await self.appointment_variables(ctx.unit, appointment_id),
                related=Related(appointment_id=appointment_id),
                correlation_id=ctx.timer.correlation_id,
            ),
        )

    async def offer_waitlist_place(
        self, unit: Unit, branch_id: str, offer: WaitlistSlotOffered, cause: Envelope[WaitlistSlotOffered]
    ) -> None:
        """A place freed for a waitlisted customer: the offer's link, and until when the place is held."""
        zone = await self._branch_zone(unit, branch_id)
        await self.delivery.queue(
            unit,
            MessageRequest(
                trigger=Trigger.WAITLIST_OFFER,
                purpose=Purpose.SERVICE,
                customer_id=offer.customer_id,
                cause=str(cause.event_id),
                due_at=self.clock.now(),
                branch_id=branch_id,
                context={
                    "slot_start": offer.slot.start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                    "service_requested": offer.service_requested,
                    "until": offer.offer_expires_at.astimezone(zone).strftime("%H:%M"),
                    "link": self.links.waitlist_offer(offer.waitlist_entry_id, branch_id, offer.slot.start),
                },
                correlation_id=cause.correlation_id,
            ),
        )

    # ---- what customers and providers tell us ------------------------------------------------------------

    async def surveys_cancelled_for(self, unit: Unit, customer_id: str, now: datetime) -> None:
        """An erased customer is asked nothing more: their pending survey timers go."""
        rows = await fetch_on_driver(
            unit,
            "customer surveys",
            "SELECT survey_id FROM surveys WHERE customer_id = %(c)s",
            {"c": customer_id},
        )
        for (survey_id,) in rows:
            await cancel(unit, SEND, survey_id, now=now)
            await cancel(unit, REMIND, survey_id, now=now)

    async def unsubscribe(self, unit: Unit, customer_id: str, source: UnsubscribeSource) -> int:
        return await consent.unsubscribe(
            unit, customer_id, source=source, chain_id=self.chain_id, now=self.clock.now()
        )

    async def inbound_replies(self, unit: Unit, replies: list[InboundReply]) -> int:
        """A "T"/"TD" reply to our SMS unsubscribes whoever has that number; other replies are ignored
        (an advisor's conversation is not ours to automate). Returns the customers unsubscribed."""
        unsubscribed = 0
        for reply in replies:
            if not is_opt_out_reply(reply.text):
                continue
            for customer_id in await queries.customer_by_phone(unit, f"+86{reply.phone}"):
                await self.unsubscribe(unit, customer_id, UnsubscribeSource.SMS_REPLY)
                unsubscribed += 1
        return unsubscribed

    async def delivery_reports(self, unit: Unit, reports: list[DeliveryReport]) -> int:
        """Apply providers' receipts: delivered, or failed with the provider's code. A receipt for a
        message we do not know, or pushed again, changes nothing."""
        applied = 0
        now = self.clock.now()
        for report in reports:
            rows = await message_log.record_delivery(
                unit,
                report.provider,
                report.provider_message_id,
                delivered=report.delivered,
                error_code=report.error_code,
                at=now,
            )
            for row in rows:
                applied += 1
                if row["status"] == "delivered":
                    await self._delivered(unit, row, now)
        return applied

    async def _delivered(self, unit: Unit, row: dict[str, Any], now: datetime) -> None:
        if row["survey_id"] is not None and row["trigger"] == Trigger.NPS_SURVEY.value:
            await fetch_on_driver(
                unit,
                "survey delivered",
                "UPDATE surveys SET delivered_at = coalesce(delivered_at, %(at)s) WHERE survey_id = %(s)s RETURNING 1",
                {"at": now, "s": row["survey_id"]},
            )
        context = CommandContext(
            actor=ACTOR, chain_id=self.chain_id, occurred_at=now, correlation_id=row["correlation_id"]
        )
        event = NotificationDelivered(
            notification_id=row["message_id"],
            channel=Channel(row["channel"]),
            recipient_customer_id=row["customer_id"],
            survey_id=row["survey_id"],
            campaign_id=row["campaign_id"],
        )
        # The message's second event: NotificationSent was its first.
        await outbox.enqueue(
            unit, [context.envelope(event, aggregate_id=row["message_id"], aggregate_version=2)]
        )
