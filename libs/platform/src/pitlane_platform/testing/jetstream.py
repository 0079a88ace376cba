"""JetStream for tests: housekeeping callable from synchronous fixtures, publishing events as a producer's
relay would, reading a stream back, and waiting on a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import nats

from pitlane_events import Envelope, encode
from pitlane_events.codec import MSG_ID_HEADER

T = TypeVar("T")


def run_in_fresh_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion in a new event loop on a helper thread.

    Synchronous fixtures run while pytest-asyncio's session loop exists, sometimes while it runs;
    asyncio.run() on this thread would then refuse to start, or replace the thread's current loop.
    A thread of its own touches neither.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitlane-fixture") as helper:
        return helper.submit(asyncio.run, coroutine).result()


async def delete_all_streams(url: str) -> list[str]:
    """Delete every JetStream stream on the server, which includes every KV bucket (`KV_*`) and object store
    (`OBJ_*`), and with them their consumers. Returns the deleted names."""
    connection = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        manager = connection.jsm()
        deleted: list[str] = []
        # The listing is paged; deleting what one page shows and asking again reaches the end.
        while streams := await manager.streams_info():
            for stream in streams:
                name = stream.config.name
                assert name is not None
                await manager.delete_stream(name)
                deleted.append(name)
        return deleted
    finally:
        await connection.close()


async def nats_server_version(url: str) -> str:
    connection = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        return str(connection.connected_server_version)
    finally:
        await connection.close()


async def publish_envelopes(
    url: str, envelopes: Sequence[Envelope[Any]], *, msg_id: str | None = None
) -> int:
    """Publish envelopes on their producers' streams as their relays would; returns the stream sequence of
    the last. `msg_id` replaces the event id as the message id, so JetStream keeps a copy its dedupe would
    drop: what a relay republishing after the duplicate window leaves."""
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        sequence = 0
        for envelope in envelopes:
            message = encode(envelope)
            headers = {**message.headers, **({MSG_ID_HEADER: msg_id} if msg_id else {})}
            sequence = (await js.publish(message.subject, message.payload, headers=headers)).seq
        return sequence
    finally:
        await connection.close()


async def wait_until(predicate: Any, *, timeout: float = 30.0, interval: float = 0.1) -> None:  # noqa: ASYNC109
    """Poll an async predicate until true; fail with the predicate's name on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)


async def stream_messages(js: Any, stream: str) -> list[Any]:
    """Every message stored in a stream, in order (RawStreamMsg: seq, subject, headers, data)."""
    from nats.js.errors import NotFoundError

    info = await js.stream_info(stream)
    if not info.state.messages:
        return []  # an empty stream's first sequence is past its last (0 before anything was stored)
    messages = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            messages.append(await js.get_msg(stream, sequence))
        except NotFoundError:
            continue
    return messages
