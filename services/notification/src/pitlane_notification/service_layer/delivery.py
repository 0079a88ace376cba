"""From "send this customer that" to a provider's receipt: the message pipeline.

`queue` decides what can be decided when the trigger arrives — whether the customer may be contacted for
this purpose (erased, opted out, over the contact-frequency limit), on which channel, and when (quiet hours
at the branch) — writes the message to the log and schedules its delivery on the platform's durable
timers, all in the trigger's transaction. Messages due to one customer on one channel at the same instant
share a batch: the first of their timers to fire delivers every one of them queued by then, as one.
Reminders wait a minute (`reminder_gather`): what reminder sends one vehicle at once arrives as several
events, and goes out as one message.

`deliver` runs when a message's timer fires, in the timer's transaction: it decides again what may have
changed (consent withdrawn overnight, an address removed, a WeChat allowance spent), hands the batch to the
channel's provider, and records the outcome: sent (NotificationSent), retried on a back-off while the
provider is unavailable, failed with the reason (NotificationFailed), or moved to the next channel (a
refused WeChat send, a number at its daily cap) — once per channel, by the message's dedupe key.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_events import Actor
from pitlane_events.notification import NotificationFailed, NotificationSent
from pitlane_events.types import Channel, Purpose
from pitlane_notification.adapters import message_log, queries
from pitlane_notification.adapters.channels.base import (
    ChannelProvider,
    FailureKind,
    OutboundMessage,
    ProviderError,
)
from pitlane_notification.adapters.templating import TemplateRenderError
from pitlane_notification.domain.courtesy import FALLBACK_ORDER, FrequencyLimit, QuietHours, send_time
from pitlane_notification.service_layer import surveys_log
from pitlane_notification.service_layer.requests import LIMITED_TRIGGERS, MessageRequest, Trigger, is_staff
from pitlane_notification.service_layer.templates import (
    Content,
    UnknownTemplate,
    render_content,
    template_for,
)
from pitlane_platform.clock import Clock
from pitlane_platform.db import Unit, execute_on_driver
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, schedule

log = logging.getLogger(__name__)

DELIVER = "notification.deliver"
SERVICE = "notification"
ACTOR = Actor.service(SERVICE)


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 5
    backoff: tuple[timedelta, ...] = (
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(minutes=30),
    )
    frequency: FrequencyLimit = field(default_factory=FrequencyLimit)
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    sms_daily_cap: int = 10
    # Reminders due at one moment wait this long for the rest of their moment's reminders to arrive.
    reminder_gather: timedelta = timedelta(minutes=1)

    def retry_delay(self, attempts: int) -> timedelta:
        return self.backoff[min(attempts - 1, len(self.backoff) - 1)]


@dataclass(frozen=True)
class Queued:
    message_id: str
    channel: Channel
    due_at: datetime
    refusal: str | None  # set: the message is logged as suppressed, for this reason


@dataclass
class Delivery:
    """The pipeline, with what it needs: the providers of each channel, the chain's clock and time zone."""

    providers: Mapping[Channel, ChannelProvider]
    clock: Clock
    chain_id: str
    chain_timezone: ZoneInfo
    # The channels messages may go out on, in the order they are tried and fallen back along.
    channel_order: tuple[Channel, ...] = FALLBACK_ORDER
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    # ---- queue --------------------------------------------------------------------------------------------

    async def queue(self, unit: Unit, request: MessageRequest) -> Queued | None:
        """Write the message and schedule its delivery; returns it, or None when the cause was seen
        before. A message that may not be sent at all is logged as suppressed, with the reason, and
        NotificationFailed says why."""
        contact = await queries.contact(unit, request.customer_id)
        recipient = contact["customer_id"] if contact else request.customer_id
        order = request.channels or self.channel_order
        locale = (contact or {}).get("locale") or "zh-CN"
        refusal: str | None = None
        channel = order[0]
        if contact is not None and contact["erased_at"] is not None:
            refusal = "customer_erased"
        elif contact is not None:
            chosen, refusal = await self._first_viable(unit, contact, order, request.purpose)
            channel = chosen or channel
        if refusal is None and request.trigger in LIMITED_TRIGGERS:
            now = self.clock.now()
            # One check at a time per customer: two campaigns launched at once both see the other's message.
            await execute_on_driver(
                unit,
                "contact limit lock",
                "SELECT pg_advisory_xact_lock(hashtext('contact-limit:' || %(c)s))",
                {"c": recipient},
            )
            previous = await message_log.limited_contacts_since(
                unit, recipient, [t.value for t in LIMITED_TRIGGERS], now - self.policy.frequency.window
            )
            if not self.policy.frequency.allows(previous, now):
                refusal = "frequency_limit"
        # Never in the past: a trigger handled late (a backlog, a replay) is sent now, and now may be night.
        due = await self._send_time(unit, max(request.due_at, self.clock.now()), channel, request.branch_id)
        content: Content | None = None
        if refusal is None:
            try:
                content = await self._render(unit, request, channel, locale, contact)
            except (UnknownTemplate, TemplateRenderError) as error:
                refusal = f"template: {error}"
        message_id = str(uuid.uuid4())
        batch_key = f"{recipient}:{channel.value}:{due.isoformat()}"
        inserted = await message_log.insert(
            unit,
            {
                "message_id": message_id,
                "dedupe_key": f"{request.cause}:{request.trigger.value}:{recipient}:{channel.value}",
                "batch_key": batch_key if refusal is None else None,
                "customer_id": recipient,
                "branch_id": request.branch_id,
                "channel": channel.value,
                "purpose": request.purpose.value,
                "trigger": request.trigger.value,
                "locale": locale,
                "subject": content.subject if content else None,
                "body": content.body if content else None,
                "provider_template": content.provider_template if content else None,
                "parameters": content.parameters if content else {},
                "link": request.context.get("link"),
                # What a fallback to another channel needs to queue the message again.
                "context": {
                    **request.context,
                    "channels": [c.value for c in order],
                    "cause": request.cause,
                    **({"template": request.template} if request.template else {}),
                },
                "status": "queued" if refusal is None else "suppressed",
                "status_reason": refusal,
                "due_at": due,
                "work_order_id": request.related.work_order_id,
                "appointment_id": request.related.appointment_id,
                "reminder_id": request.related.reminder_id,
                "campaign_id": request.related.campaign_id,
                "survey_id": request.related.survey_id,
                "correlation_id": request.correlation_id,
                "created_at": self.clock.now(),
            },
        )
        if not inserted:
            return None
        if refusal is not None:
            await self._publish_failed(
                unit, [_as_row(message_id, recipient, channel, request)], refusal, False
            )
            return Queued(message_id, channel, due, refusal)
        # A timer per message, not per batch: a message that joins its batch after the batch went out (in a
        # later transaction) still has a timer of its own to go out on. The first timer of a batch to fire
        # sends every message of the batch queued by then; the others find nothing left.
        await schedule(unit, DELIVER, message_id, due, {"batch_key": batch_key})
        return Queued(message_id, channel, due, None)

    async def _first_viable(
        self,
        unit: Unit,
        contact: Mapping[str, Any],
        order: Sequence[Channel],
        purpose: Purpose,
    ) -> tuple[Channel | None, str | None]:
        """The first channel in `order` the customer can be reached on for `purpose`, or the reason none
        can: the first refusal met, which is what the record says."""
        first_refusal: str | None = None
        for channel in order:
            refusal = await self.refusal(unit, contact, channel, purpose)
            if refusal is None:
                return channel, None
            first_refusal = first_refusal or refusal
        return None, first_refusal

    async def refusal(
        self, unit: Unit, contact: Mapping[str, Any], channel: Channel, purpose: Purpose
    ) -> str | None:
        """Why the customer may not get a message of `purpose` on `channel` now, or None."""
        if channel not in self.providers:
            return f"channel_not_configured: {channel.value}"
        if not _address(contact, channel):
            return f"no_address: {channel.value}"
        decision = await queries.consent(unit, contact["customer_id"], channel.value, purpose.value)
        if purpose is Purpose.MARKETING and (decision is None or not decision[0]):
            return "no_consent" if decision is None else f"consent_withdrawn: {decision[1]}"
        if purpose is Purpose.SERVICE and decision is not None and not decision[0]:
            return f"consent_withdrawn: {decision[1]}"
        return None

    async def _send_time(
        self, unit: Unit, due: datetime, channel: Channel, branch_id: str | None
    ) -> datetime:
        quiet, zone = await self._courtesy(unit, branch_id)
        return send_time(due, channel, quiet, zone)

    async def _courtesy(self, unit: Unit, branch_id: str | None) -> tuple[QuietHours, ZoneInfo]:
        if branch_id is None:
            return self.policy.quiet_hours, self.chain_timezone
        row = await queries.branch(unit, branch_id)
        zone = ZoneInfo(row["timezone"]) if row and row["timezone"] else self.chain_timezone
        if row and row["starts"] is not None:
            return QuietHours(start=row["starts"], end=row["ends"]), zone
        return self.policy.quiet_hours, zone

    async def _render(
        self,
        unit: Unit,
        request: MessageRequest,
        channel: Channel,
        locale: str,
        contact: Mapping[str, Any] | None,
    ) -> Content:
        variables = {
            "customer_name": (contact or {}).get("full_name") or "",
            **await self._branch_variables(unit, request.branch_id),
            **request.context,
        }
        text = await template_for(unit, request.template or request.trigger.value, channel, locale)
        return render_content(text, variables, channel=channel, purpose=request.purpose)

    async def _branch_variables(self, unit: Unit, branch_id: str | None) -> dict[str, str]:
        if branch_id is None:
            return {"branch_name": ""}
        row = await queries.branch(unit, branch_id)
        return {"branch_name": (row or {}).get("name") or ""}

    # ---- deliver ------------------------------------------------------------------------------------------

    def register(self, timers: TimerHandlers) -> None:
        timers.on(DELIVER)(self.deliver)

    async def deliver(self, ctx: TimerContext) -> None:
        batch_key = ctx.timer.payload["batch_key"]
        unit = ctx.unit
        rows = await message_log.queued_batch(unit, batch_key)
        if not rows:
            return  # sent by an earlier timer of the batch, or suppressed since
        channel = Channel(rows[0]["channel"])
        contact = await queries.contact(unit, rows[0]["customer_id"])
        if contact is None:
            await self._failed_attempt(
                unit, rows, batch_key, "no_contact: the customer is not known yet", ctx.now
            )
            return
        if contact["erased_at"] is not None:
            await message_log.mark_suppressed(
                unit, [row["message_id"] for row in rows], reason="customer_erased"
            )
            return
        sendable = []
        for row in rows:
            refusal = await self.refusal(unit, contact, channel, Purpose(row["purpose"]))
            if refusal is None and channel is Channel.WECHAT and row["provider_template"]:
                if not await message_log.wechat_allowance(
                    unit, contact["customer_id"], row["provider_template"]
                ):
                    refusal = "wechat_allowance_spent"
            if refusal is None:
                sendable.append(row)
            else:
                await self._fall_back(unit, row, contact, refusal, ctx.now)
        if not sendable:
            return
        if await self._held_by_quiet_hours(unit, sendable, channel, ctx.now):
            return
        address = _address(contact, channel)
        assert address is not None
        if channel is Channel.SMS and await self._at_daily_cap(
            unit, address, ctx.now, sendable[0]["branch_id"]
        ):
            for row in sendable:
                await self._fall_back(unit, row, contact, "daily_cap", ctx.now)
            return
        outbound = await self._compose(unit, sendable, channel, address)
        try:
            receipt = await self.providers[channel].send(outbound)
        except ProviderError as error:
            await self._provider_refused(unit, sendable, contact, batch_key, error, ctx.now)
            return
        ids = [row["message_id"] for row in sendable]
        await message_log.mark_sent(
            unit,
            ids,
            address=address,
            provider=receipt.provider,
            provider_message_id=receipt.provider_message_id,
            at=ctx.now,
        )
        if channel is Channel.WECHAT:
            for row in sendable:
                if row["provider_template"]:
                    await message_log.spend_wechat_allowance(
                        unit, contact["customer_id"], row["provider_template"]
                    )
        for row in sendable:
            await self._publish_sent(unit, row, ctx.now)
            await surveys_log.message_sent(
                unit, row, channel=channel, at=ctx.now, context=self._context(row, ctx.now)
            )

    async def _compose(
        self, unit: Unit, rows: Sequence[Mapping[str, Any]], channel: Channel, address: str
    ) -> OutboundMessage:
        first = rows[0]
        if len(rows) == 1:
            subject, body = first["subject"], first["body"]
            template, parameters = first["provider_template"], dict(first["parameters"])
        else:
            text = await template_for(unit, Trigger.DIGEST.value, channel, first["locale"])
            content = render_content(
                text,
                {"count": len(rows), "parts": [row["body"] for row in rows]},
                channel=channel,
                purpose=Purpose.SERVICE,
            )
            subject, body, template, parameters = (
                content.subject,
                content.body,
                content.provider_template,
                content.parameters,
            )
        return OutboundMessage(
            message_id=first["message_id"],
            channel=channel.value,
            address=_provider_address(channel, address),
            body=body or "",
            subject=subject,
            provider_template=template,
            parameters=parameters,
            link=first["link"] if len(rows) == 1 else None,
            locale=first["locale"],
        )

    async def _provider_refused(
        self,
        unit: Unit,
        rows: Sequence[Mapping[str, Any]],
        contact: Mapping[str, Any],
        batch_key: str,
        error: ProviderError,
        now: datetime,
    ) -> None:
        channel = Channel(rows[0]["channel"])
        log.warning(
            "provider did not take a message",
            extra={
                "channel": channel.value,
                "kind": error.kind.value,
                "reason": error.reason,
                "batch": len(rows),
            },
        )
        if error.kind is FailureKind.UNAVAILABLE:
            await self._failed_attempt(unit, rows, batch_key, f"provider_unavailable: {error.reason}", now)
            return
        if error.kind is FailureKind.SUBSCRIPTION_REFUSED:
            for row in rows:
                if row["provider_template"]:
                    await message_log.revoke_wechat_allowance(
                        unit, contact["customer_id"], row["provider_template"]
                    )
                await self._fall_back(
                    unit, row, contact, f"wechat_refused: {error.reason}", now, attempted=True
                )
            return
        if error.kind is FailureKind.DAILY_CAP:
            for row in rows:
                await self._fall_back(unit, row, contact, f"daily_cap: {error.reason}", now, attempted=True)
            return
        ids = [row["message_id"] for row in rows]
        reason = f"provider_rejected: {error.reason}"
        await message_log.mark_failed(unit, ids, reason=reason, at=now, attempted=True)
        await self._publish_failed(unit, rows, reason, False)
        for row in rows:
            await surveys_log.message_failed(unit, row, reason=reason)

    async def _failed_attempt(
        self, unit: Unit, rows: Sequence[Mapping[str, Any]], batch_key: str, reason: str, now: datetime
    ) -> None:
        """Retry on the back-off (a new timer of the batch per attempt), or give up with the reason."""
        ids = [row["message_id"] for row in rows]
        attempts = await message_log.record_failed_attempt(unit, ids, reason=reason)
        if attempts < self.policy.max_attempts:
            retry_at = now + self.policy.retry_delay(attempts)
            # Keyed by the batch's first message: a batch key can come back (a late joiner of a batch that
            # went out), and a key that fired once never fires again.
            await schedule(
                unit, DELIVER, f"{rows[0]['message_id']}#{attempts}", retry_at, {"batch_key": batch_key}
            )
            return
        final = f"{reason} (after {attempts} attempts)"
        await message_log.mark_failed(unit, ids, reason=final, at=now, attempted=False)
        await self._publish_failed(unit, rows, final, False)
        for row in rows:
            await surveys_log.message_failed(unit, row, reason=final)

    async def _fall_back(
        self,
        unit: Unit,
        row: Mapping[str, Any],
        contact: Mapping[str, Any],
        reason: str,
        now: datetime,
        *,
        attempted: bool = False,
    ) -> None:
        """This channel cannot take the message: the next viable channel in its order gets it (once, by
        its dedupe key), or it fails with the reason."""
        channel = Channel(row["channel"])
        order = [
            Channel(value) for value in row["context"].get("channels", [c.value for c in self.channel_order])
        ]
        later = order[order.index(channel) + 1 :] if channel in order else []
        if reason.startswith("daily_cap") and not later:
            # The provider's cap resets at midnight: the message goes tomorrow morning instead.
            await self._defer_to_tomorrow(unit, row, now)
            return
        next_channel, _ = await self._first_viable(unit, contact, later, Purpose(row["purpose"]))
        will_retry = next_channel is not None
        await message_log.mark_failed(unit, [row["message_id"]], reason=reason, at=now, attempted=attempted)
        await self._publish_failed(unit, [row], reason, will_retry)
        if next_channel is None:
            await surveys_log.message_failed(unit, row, reason=reason)
            return
        related = surveys_log.related_of(row)
        await self.queue(
            unit,
            MessageRequest(
                trigger=Trigger(row["trigger"]),
                purpose=Purpose(row["purpose"]),
                customer_id=row["customer_id"],
                cause=row["context"].get("cause", row["message_id"]),
                due_at=now,
                branch_id=row["branch_id"],
                context={
                    k: v for k, v in row["context"].items() if k not in ("channels", "cause", "template")
                },
                related=related,
                channels=tuple(later[later.index(next_channel) :]),
                template=row["context"].get("template"),
                correlation_id=row.get("correlation_id"),
            ),
        )

    async def _defer_to_tomorrow(self, unit: Unit, row: Mapping[str, Any], now: datetime) -> None:
        quiet, zone = await self._courtesy(unit, row["branch_id"])
        local = now.astimezone(zone)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=zone)
        due = tomorrow.astimezone(now.tzinfo)
        batch_key = f"{row['customer_id']}:{row['channel']}:{due.isoformat()}"
        await message_log.move_to_batch(unit, [row["message_id"]], batch_key=batch_key, due_at=due)
        await schedule(
            unit, DELIVER, f"{row['message_id']}#{due.date().isoformat()}", due, {"batch_key": batch_key}
        )

    async def _held_by_quiet_hours(
        self, unit: Unit, rows: Sequence[Mapping[str, Any]], channel: Channel, now: datetime
    ) -> bool:
        """A timer that fires late (after an outage) or a retry may fall in the night: the batch waits for
        the end of the quiet hours, whatever time it was queued for."""
        quiet, zone = await self._courtesy(unit, rows[0]["branch_id"])
        release = send_time(now, channel, quiet, zone)
        if release == now:
            return False
        batch_key = f"{rows[0]['customer_id']}:{channel.value}:{release.isoformat()}"
        await message_log.move_to_batch(
            unit, [row["message_id"] for row in rows], batch_key=batch_key, due_at=release
        )
        for row in rows:
            await schedule(
                unit, DELIVER, f"{row['message_id']}#{release.isoformat()}", release, {"batch_key": batch_key}
            )
        return True

    async def _at_daily_cap(self, unit: Unit, address: str, now: datetime, branch_id: str | None) -> bool:
        _, zone = await self._courtesy(unit, branch_id)
        midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
        sent = await message_log.sent_to_address_since(unit, Channel.SMS.value, address, midnight)
        return sent >= self.policy.sms_daily_cap

    # ---- events -------------------------------------------------------------------------------------------

    def _context(self, row: Mapping[str, Any], now: datetime) -> CommandContext:
        return CommandContext(
            actor=ACTOR,
            chain_id=self.chain_id,
            occurred_at=now,
            branch_id=row.get("branch_id"),
            correlation_id=row.get("correlation_id"),
        )

    async def _publish_sent(self, unit: Unit, row: Mapping[str, Any], now: datetime) -> None:
        if is_staff(row["customer_id"]):
            return  # the events tell about customers; a staff alert is in the log alone
        event = NotificationSent(
            notification_id=row["message_id"],
            channel=Channel(row["channel"]),
            template=row["context"].get("template") or row["trigger"],
            purpose=Purpose(row["purpose"]),
            recipient_customer_id=row["customer_id"],
            work_order_id=row["work_order_id"],
            appointment_id=row["appointment_id"],
            reminder_id=row["reminder_id"],
            campaign_id=row["campaign_id"],
        )
        envelope = self._context(row, now).envelope(
            event, aggregate_id=row["message_id"], aggregate_version=1
        )
        await outbox.enqueue(unit, [envelope])

    async def _publish_failed(
        self, unit: Unit, rows: Sequence[Mapping[str, Any]], reason: str, will_retry: bool
    ) -> None:
        now = self.clock.now()
        envelopes = [
            self._context(row, now).envelope(
                NotificationFailed(
                    notification_id=row["message_id"],
                    channel=Channel(row["channel"]),
                    template=(row.get("context") or {}).get("template") or row["trigger"],
                    purpose=Purpose(row["purpose"]),
                    recipient_customer_id=row["customer_id"],
                    reason=reason[:2000],
                    will_retry=will_retry,
                ),
                aggregate_id=row["message_id"],
                aggregate_version=1,
            )
            for row in rows
            if not is_staff(row["customer_id"])
        ]
        await outbox.enqueue(unit, envelopes)


def _as_row(message_id: str, customer_id: str, channel: Channel, request: MessageRequest) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "customer_id": customer_id,
        "channel": channel.value,
        "purpose": request.purpose.value,
        "trigger": request.trigger.value,
        "branch_id": request.branch_id,
        "context": {"template": request.template} if request.template else {},
        "correlation_id": request.correlation_id,
    }


def _address(contact: Mapping[str, Any], channel: Channel) -> str | None:
    column = {Channel.SMS: "phone", Channel.WECHAT: "wechat_open_id", Channel.EMAIL: "email"}.get(channel)
    return contact.get(column) if column else None


def _provider_address(channel: Channel, address: str) -> str:
    """SMS providers take a mainland number as its 11 digits; we keep E.164."""
    if channel is Channel.SMS and address.startswith("+86"):
        return address[3:]
    return address
