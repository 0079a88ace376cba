"""How every Pitlane process connects to NATS, against a real nats-server: it waits for a server that starts
after it, gives up after its first-connect timeout, logs its disconnects and reconnects, and refuses a publish
while disconnected instead of buffering it (a buffered publish could overtake one refused for size)."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from pitlane_platform.embedded import EmbeddedNats, free_port
from pitlane_platform.messaging.connection import connect_nats
from platform_flow import wait_until

LOGGER = "pitlane_platform.messaging.connection"


def connections_of(server: EmbeddedNats) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/connz", timeout=5) as answer:
        return list(json.load(answer)["connections"])


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


async def test_a_client_started_before_its_server_connects_once_the_server_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    connecting = asyncio.create_task(connect_nats(url, name="early-bird", first_connect_timeout_s=30))

    async def told_it_is_waiting() -> bool:
        return any(m.startswith(f"NATS at {url} not reachable yet (") for m in messages(caplog))

    await wait_until(told_it_is_waiting)
    assert not connecting.done()
    server = EmbeddedNats(tmp_path / "nats", port=port).start()
    try:
        client = await asyncio.wait_for(connecting, 30)
        logged_until_connected = messages(caplog)
        assert client.is_connected and client.connected_url is not None
        assert client.connected_url.port == port
        await client.close()
    finally:
        server.stop()
    # One warning while it waited (they are spaced out); none of a disconnect before it ever connected.
    [waiting] = logged_until_connected
    assert waiting.startswith(f"NATS at {url} not reachable yet (") and waiting.endswith("; retrying")


async def test_a_server_that_never_answers_fails_the_connect_after_the_first_connect_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    url = f"nats://127.0.0.1:{free_port()}"

    with pytest.raises(TimeoutError) as failed:
        await connect_nats(url, name="nobody-home", first_connect_timeout_s=1.0)

    assert str(failed.value) == f"NATS at {url} did not answer within 1s"
    # One warning while it waited (they are spaced out), naming the server and the cause.
    [waiting] = messages(caplog)
    assert waiting.startswith(f"NATS at {url} not reachable yet (") and waiting.endswith("; retrying")


async def test_a_restarted_server_is_reconnected_and_a_publish_while_away_fails_at_once(
    embedded_nats_factory: Callable[..., EmbeddedNats], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = embedded_nats_factory()
    client = await connect_nats(server.url, name="survivor")
    try:
        server.kill()

        async def noticed_the_outage() -> bool:
            return not client.is_connected

        await wait_until(noticed_the_outage)
        with pytest.raises(Exception) as refused:
            await client.publish("probe.away", b"not buffered")
        assert "buffer" in str(refused.value).lower() or "connection" in str(refused.value).lower()

        await asyncio.to_thread(server.restart)

        async def reconnected() -> bool:
            return client.is_connected and "reconnected to NATS" in messages(caplog)

        await wait_until(reconnected)
        clients = {vars(r).get("client") for r in caplog.records if r.name == LOGGER}
        assert "disconnected from NATS" in messages(caplog) and clients == {"survivor"}
        await client.publish("probe.back", b"sent")
        await client.flush()
        # The server knows the client by its name (ops read it in /connz).
        connz = await asyncio.to_thread(connections_of, server)
        assert [connection.get("name") for connection in connz] == ["survivor"]
    finally:
        await client.close()
