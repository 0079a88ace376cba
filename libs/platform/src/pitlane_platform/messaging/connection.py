"""Connecting to NATS the way every Pitlane process does: reconnect forever, never give up silently, and
never buffer publishes while disconnected.

nats-py keeps publishes made during a reconnect in a buffer (2 MiB by default) and refuses one that does
not fit while keeping a later, smaller one: the later message reaches the server first. With no buffer a
publish made while disconnected fails at once, and the caller (the relay) retries it in order.
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client

from pitlane_platform.security.nats_access import NatsClientAccess

log = logging.getLogger(__name__)


async def connect_nats(
    url: str, *, name: str, access: NatsClientAccess | None = None, first_connect_timeout_s: float = 60.0
) -> Client:
    """Connect, retrying until the server answers (it may start after us), then keep reconnecting. `access`:
    the CA to verify the server against, the client certificate, the user (settings.nats_access())."""

    async def disconnected() -> None:
        log.warning("disconnected from NATS", extra={"client": name})

    async def reconnected() -> None:
        log.info("reconnected to NATS", extra={"client": name})

    async def error(exc: Exception) -> None:
        log.debug("NATS client error: %s", exc, extra={"client": name})

    loop = asyncio.get_running_loop()
    deadline = loop.time() + first_connect_timeout_s
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                pending_size=0,
                connect_timeout=2,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                **(access.connect_options() if access is not None else {}),
            )
        except Exception as exc:
            if loop.time() >= deadline:
                raise
            log.warning("NATS at %s not reachable yet (%s); retrying", url, exc)
            await asyncio.sleep(0.5)
