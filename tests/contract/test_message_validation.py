"""The check the end-to-end run applies to every message it publishes (pitlane_platform.testing.event_schemas):
a message conforms when its payload conforms to the committed schemas and its subject and headers say what
its envelope says; a stream is checked message by message, against a real nats-server."""

from __future__ import annotations

import json
from copy import deepcopy

import nats
import pytest
from goldens import GOLDENS, Golden

from pitlane_events import decode_json, encode
from pitlane_events.codec import EVENT_TYPE_HEADER, MSG_ID_HEADER, SCHEMA_VERSION_HEADER
from pitlane_events.envelope import stream_name, subject_for
from pitlane_platform.messaging.streams import declare_stream, service_stream
from pitlane_platform.testing.event_schemas import assert_stream_messages_conform, message_violations

CURRENT = [golden for golden in GOLDENS if golden.is_current]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def as_published(golden: Golden) -> tuple[str, bytes, dict[str, str]]:
    """The golden envelope as its producer's relay puts it on the wire: subject, JSON payload, headers."""
    body = golden.body
    headers = {
        MSG_ID_HEADER: body["event_id"],
        EVENT_TYPE_HEADER: body["event_type"],
        SCHEMA_VERSION_HEADER: str(body["schema_version"]),
        "traceparent": TRACEPARENT,
    }
    subject = subject_for(body["event_type"], body["schema_version"], body["branch_id"])
    return subject, json.dumps(body, ensure_ascii=False).encode(), headers


@pytest.mark.parametrize("golden", CURRENT, ids=lambda golden: golden.relative_path)
def test_each_golden_message_as_published_conforms(golden: Golden) -> None:
    assert message_violations(*as_published(golden)) == []


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda golden: golden.relative_path)
def test_each_event_as_todays_producers_encode_it_conforms(golden: Golden) -> None:
    """Read (and upcast) as a consumer reads it, then encoded as an outbox encodes it: what a producer of the
    newest version writes conforms too."""
    message = encode(decode_json(golden.body), trace_headers={"traceparent": TRACEPARENT})

    assert message_violations(message.subject, message.payload, message.headers) == []


def test_a_message_whose_subject_or_headers_disagree_with_its_envelope_is_named() -> None:
    golden = next(golden for golden in CURRENT if golden.event_type == "workorder.WorkOrderCompleted")
    subject, payload, headers = as_published(golden)

    assert message_violations("workorder.other-branch.WorkOrderCompleted.v1", payload, headers) == [
        f"subject 'workorder.other-branch.WorkOrderCompleted.v1', but the envelope belongs on {subject!r}"
    ]
    assert message_violations(subject, payload, {**headers, SCHEMA_VERSION_HEADER: "2"}) == [
        f"header {SCHEMA_VERSION_HEADER} is '2', the envelope says '1'"
    ]
    without_id = {key: value for key, value in headers.items() if key != MSG_ID_HEADER}
    assert any(
        "'Nats-Msg-Id' is a required property" in p for p in message_violations(subject, payload, without_id)
    )
    assert message_violations(subject, b"{not json", headers)[0].startswith("payload is not JSON")


async def test_every_message_of_the_streams_is_checked_and_a_broken_one_is_named(nats_url: str) -> None:
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        services = sorted({golden.event_type.split(".")[0] for golden in CURRENT})
        for service in services:
            await declare_stream(js, service_stream(service))
        for golden in CURRENT:
            subject, payload, headers = as_published(golden)
            await js.publish(subject, payload, headers=headers)
        streams = [stream_name(service) for service in services]

        assert await assert_stream_messages_conform(js, streams) == len(CURRENT)

        broken = deepcopy(next(golden for golden in CURRENT if golden.event_type == "workorder.BranchOpened"))
        broken.body["data"]["opening_hours"][0]["opens_at"] = "8:30"
        broken.body["event_id"] = "01978a3c-1c00-7000-8000-0000000000ff"
        subject, payload, headers = as_published(broken)
        sequence = (await js.publish(subject, payload, headers=headers)).seq

        with pytest.raises(AssertionError) as failure:
            await assert_stream_messages_conform(js, streams)
    finally:
        await connection.close()

    report = str(failure.value)
    assert report.startswith(f"1 of {len(CURRENT) + 1} messages do not conform:\n")
    assert (
        f"WORKORDER #{sequence} {subject}: workorder/BranchOpened.v1.json at $.data.opening_hours[0].opens_at"
        in report
    )
