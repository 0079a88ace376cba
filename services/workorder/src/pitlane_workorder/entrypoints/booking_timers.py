"""The booking calendar's durable timers (ADR 25; pitlane_platform.scheduling, ADR 15): a hold's expiry (the
online form's, or a waitlist offer's: its place goes to the next in line) and an unconfirmed booking's
confirmation deadline. Each handler writes through the timer's own transaction, so its effects commit with
the timer's "fired" mark or not at all."""

from __future__ import annotations

from datetime import datetime

from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers
from pitlane_workorder.service_layer.confirmations import CONFIRMATION_DEADLINE
from pitlane_workorder.service_layer.handlers import Handlers
from pitlane_workorder.service_layer.unit_of_work import UnitOfWork
from pitlane_workorder.service_layer.waitlist import HOLD_EXPIRY, expire_hold


def register_booking_timers(timers: TimerHandlers, handlers: Handlers) -> None:
    @timers.on(HOLD_EXPIRY)
    async def hold_expired(ctx: TimerContext) -> None:
        await expire_hold(ctx.unit, ctx.timer.payload["branch_id"], ctx.timer.key, handlers.chain_id, ctx.now)

    @timers.on(CONFIRMATION_DEADLINE)
    async def confirmation_due(ctx: TimerContext) -> None:
        payload = ctx.timer.payload
        await handlers.release_unconfirmed(
            UnitOfWork(ctx.unit),
            payload["branch_id"],
            payload["appointment_id"],
            datetime.fromisoformat(payload["slot_start"]),
            ctx.now,
        )
