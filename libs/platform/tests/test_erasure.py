"""Scrubbing an erased customer's events from the streams (messaging/erasure.py) against a real nats-server:
every copy (the service's stream, the dead letters, the replays) is gone and overwritten in the server's
files, nothing else is touched, and a second scrub finds nothing more to do."""

from __future__ import annotations

from pathlib import Path

from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.deadletter import ORIGINAL_MSG_ID, dead_letter, list_dead_letters, replay
from pitlane_platform.messaging.erasure import event_subjects, scrub_event_copies
from pitlane_platform.messaging.streams import (
    DEAD_LETTER_STREAM,
    REPLAY_STREAM,
    declare_stream,
    platform_streams,
    service_stream,
    stream_name,
)
from platform_flow import PRODUCER, stream_messages, wait_until

STREAM = stream_name(PRODUCER)
REGISTERED = "customer-profile.b1.CustomerRegistered.v1"
MILEAGE = "customer-profile.b1.VehicleMileageRecorded.v1"
# More messages on the scrubbed subject than one fetch of the scrub takes (512): the last target needs more.
EVENTS = 700
TARGETS = {"event-3", "event-400", "event-699"}


def payload(event_id: str) -> bytes:
    # A target's payload holds a needle to look for in the server's files.
    return f"personal data of {event_id}".encode() if event_id in TARGETS else f"kept {event_id}".encode()


def needles_on_disk(store: Path) -> set[str]:
    found = set()
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found |= {event_id for event_id in TARGETS if f"personal data of {event_id}".encode() in data}
    return found


def ids(messages: list, header: str = "Nats-Msg-Id") -> list[str]:
    return [(message.headers or {}).get(header, "") for message in messages]


async def test_scrubbing_deletes_every_copy_of_the_events_and_only_those_and_overwrites_them(
    embedded_nats_factory,
):
    nats_server = embedded_nats_factory()
    nc = await connect_nats(nats_server.url, name="erasure")
    js = nc.jetstream()
    try:
        for spec in [service_stream(PRODUCER), *platform_streams()]:
            await declare_stream(js, spec)
        published = [f"event-{n}" for n in range(EVENTS)]
        for event_id in published:
            await js.publish(REGISTERED, payload(event_id), headers={"Nats-Msg-Id": event_id})
        # A target's id on a subject the scrub is not asked about: another event type, kept.
        await js.publish(MILEAGE, b"mileage", headers={"Nats-Msg-Id": "mileage-1"})
        # Copies a consumer gave up on (event-3, and event-5, which is kept), and one an operator replayed.
        for event_id in ("event-3", "event-5", "event-400"):
            sequence = published.index(event_id) + 1
            await dead_letter(
                js,
                subject=REGISTERED,
                headers={"Nats-Msg-Id": event_id},
                payload=payload(event_id),
                consumer="probe_consumer",
                error="gave up",
                attempts=5,
                source=f"{STREAM}:{sequence}",
            )
        [to_replay] = [letter for letter in await list_dead_letters(js) if letter.event_id == "event-400"]
        await replay(js, sequences={to_replay.sequence})
        store = nats_server.data_dir / "jetstream"

        async def every_copy_on_disk():
            return needles_on_disk(store) == TARGETS

        await wait_until(every_copy_on_disk)

        deleted = await scrub_event_copies(
            js,
            stream=STREAM,
            subjects=event_subjects(["customer-profile.CustomerRegistered"]),
            event_ids=TARGETS,
        )

        assert deleted == 3 + 1 + 1  # the stream's, the dead letter's, the replay's
        kept = [event_id for event_id in published if event_id not in TARGETS]
        assert ids(await stream_messages(js, STREAM)) == [*kept, "mileage-1"]
        assert ids(await stream_messages(js, DEAD_LETTER_STREAM), ORIGINAL_MSG_ID) == ["event-5"]
        assert (await js.stream_info(REPLAY_STREAM)).state.messages == 0
        # Securely deleted: the server overwrote the messages in its files, not only its index.
        assert needles_on_disk(store) == set()
        # The scrub's own consumers are gone again.
        for stream in (STREAM, DEAD_LETTER_STREAM, REPLAY_STREAM):
            assert await js.consumers_info(stream) == []

        # A retried scrub (its consumer's back-off after a failure) finds nothing more, and breaks nothing.
        again = await scrub_event_copies(
            js,
            stream=STREAM,
            subjects=event_subjects(["customer-profile.CustomerRegistered"]),
            event_ids=TARGETS,
        )
        assert again == 0
        assert len(await stream_messages(js, STREAM)) == len(kept) + 1
    finally:
        await nc.close()
