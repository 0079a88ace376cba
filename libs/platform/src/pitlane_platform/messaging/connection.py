"""Connecting to NATS the way every Pitlane process does: reconnect forever, never give up silently, and
never buffer publishes while disconnected.

nats-py keeps publishes made during a reconnect in a buffer (2 MiB by default) and refuses one that does
not fit while keeping a later, smaller one: the later message reaches the server first. With no buffer a
publish made while disconnected fails at once, and the caller (the relay) retries it in order.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client

from pitlane_platform.security.nats_access import NatsClientAccess

log = logging.getLogger(__name__)


# While the first connection is still being made, one warning per this many seconds of failed attempts.
_UNREACHABLE_WARNING_EVERY_S = 5.0


async def connect_nats(
    url: str, *, name: str, access: NatsClientAccess | None = None, first_connect_timeout_s: float = 60.0
) -> Client:
    """Connect, retrying until the server answers (it may start after us) or `first_connect_timeout_s` has
    passed (TimeoutError naming the URL), then keep reconnecting for good. `access`: the CA to verify the
    server against, the client certificate, the user (settings.nats_access()).

    nats-py retries the first connection itself, for ever with `max_reconnect_attempts=-1`, telling only the
    error callback: the callback warns while no connection has been made, and the timeout bounds the wait.
    """
    loop = asyncio.get_running_loop()
    connected = False
    next_warning = loop.time()

    async def disconnected() -> None:
        if connected:  # nats-py also calls it after each failed first attempt
            log.warning("disconnected from NATS", extra={"client": name})

    async def reconnected() -> None:
        log.info("reconnected to NATS", extra={"client": name})

    async def error(exc: Exception) -> None:
        nonlocal next_warning
        if connected or loop.time() < next_warning:
            log.debug("NATS client error: %s", exc, extra={"client": name})
            return
        next_warning = loop.time() + _UNREACHABLE_WARNING_EVERY_S
        log.warning("NATS at %s not reachable yet (%s); retrying", url, exc, extra={"client": name})

    client = Client()
    try:
        await asyncio.wait_for(
            client.connect(
                url,
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,  # type: ignore[arg-type]  # seconds; nats-py annotates int, takes float
                pending_size=0,
                connect_timeout=2,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                **(access.connect_options() if access is not None else {}),
            ),
            first_connect_timeout_s,
        )
    except TimeoutError:
        await client.close()
        raise TimeoutError(f"NATS at {url} did not answer within {first_connect_timeout_s:g}s") from None
    connected = True
    return client
