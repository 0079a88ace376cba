"""Marks appointments as no-shows once their grace period has run out, on the injected clock.

Every instance of the service may run it: two sweepers reaching the same appointment collide on its event
stream, and the loser's 409 is simply skipped, as is an arrival that won the race.
"""

from __future__ import annotations

import asyncio
import logging

from pitlane_events import Actor
from pitlane_platform.errors import ConflictError
from pitlane_workorder.service_layer.handlers import Handlers

log = logging.getLogger(__name__)

SWEEPER = Actor(kind="system", id="workorder.no-show-sweeper")


async def sweep_no_shows(handlers: Handlers) -> int:
    """Mark every missed appointment; returns how many this sweep marked."""
    marked = 0
    for branch_id, appointment_id in await handlers.missed_appointments():
        try:
            await handlers.mark_no_show(branch_id, appointment_id, SWEEPER)
        except ConflictError:
            continue
        marked += 1
    return marked


async def run_no_show_sweeper(handlers: Handlers, stop: asyncio.Event, interval_s: float) -> None:
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        try:
            if marked := await sweep_no_shows(handlers):
                log.info("marked %d appointment(s) as no-show", marked)
        except Exception:
            log.exception("no-show sweep failed; retrying at the next interval")
