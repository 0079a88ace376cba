"""Reading and writing envelopes: every failure names the event it is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pitlane_events import (
    Actor,
    DomainEvent,
    Envelope,
    MalformedEvent,
    UnknownEventType,
    codec,
    decode,
    decode_json,
    encode,
)
from pitlane_events.customer_profile import VehicleMileageRecorded
from pitlane_events.notification import NpsAnswered

ANSWER = NpsAnswered(
    survey_id="survey-1",
    work_order_id="wo-1",
    customer_id="customer-1",
    advisor_id="advisor-1",
    technician_ids=("technician-1",),
    branch_id="branch-1",
    score=9,
    comment="师傅很专业",
)


def published(data: DomainEvent = ANSWER, branch_id: str | None = "branch-1") -> Envelope[Any]:
    return Envelope.new(
        data,
        chain_id="chain-1",
        branch_id=branch_id,
        aggregate_id="survey-1",
        aggregate_version=2,
        actor=Actor(kind="customer", id="customer-1"),
        occurred_at=datetime(2025, 6, 18, 17, 45, tzinfo=UTC),
    )


def body(**changes: Any) -> dict[str, Any]:
    return {**json.loads(published().model_dump_json()), **changes}


def test_encode_then_decode_gives_the_same_envelope() -> None:
    envelope = published()

    message = encode(envelope, trace_headers={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})

    assert message.subject == "notification.branch-1.NpsAnswered.v1"
    assert message.headers["Nats-Msg-Id"] == str(envelope.event_id)
    assert message.headers["Pitlane-Event-Type"] == "notification.NpsAnswered"
    assert "traceparent" in message.headers
    assert decode(message.payload) == envelope


def test_chain_wide_events_use_the_chain_token_in_their_subject() -> None:
    reading = VehicleMileageRecorded(
        vehicle_id="vehicle-1",
        mileage_km=52480,
        source="check_in",
        recorded_at=datetime(2025, 6, 18, tzinfo=UTC),
    )

    assert published(reading, branch_id=None).subject == "customer-profile.chain.VehicleMileageRecorded.v1"


def test_an_envelope_typed_with_the_base_class_still_writes_every_field() -> None:
    # What a generic outbox relay holds: the declared type is the base class, the value a concrete event.
    envelope = Envelope[DomainEvent](**dict(published()))

    assert json.loads(encode(envelope).payload)["data"]["score"] == 9


def test_an_unknown_event_type_is_named() -> None:
    with pytest.raises(UnknownEventType, match=r"notification\.NpsDeleted"):
        decode_json(body(event_type="notification.NpsDeleted"))


def test_a_version_newer_than_the_code_is_unknown() -> None:
    with pytest.raises(UnknownEventType, match=r"notification.NpsAnswered' v9"):
        decode_json(body(schema_version=9))


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1, 2]"], ids=["text", "bytes", "array"])
def test_a_payload_that_is_not_a_json_object_is_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedEvent, match="malformed event"):
        decode(payload)


def test_a_missing_field_is_malformed_and_names_the_event_and_field() -> None:
    data = body()["data"]
    del data["score"]

    with pytest.raises(MalformedEvent, match=r"notification\.NpsAnswered: data\.score: Field required"):
        decode_json(body(data=data))


def test_a_wrong_type_is_malformed_and_names_the_event() -> None:
    with pytest.raises(MalformedEvent, match=r"notification\.NpsAnswered: data\.score"):
        decode_json(body(data={**body()["data"], "score": "nine"}))


def test_an_out_of_range_value_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match=r"notification\.NpsAnswered: data\.score"):
        decode_json(body(data={**body()["data"], "score": 11}))


def test_a_broken_envelope_is_malformed_and_names_the_event() -> None:
    with pytest.raises(MalformedEvent, match=r"notification\.NpsAnswered: occurred_at"):
        decode_json(body(occurred_at="yesterday"))


def test_missing_type_or_version_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="event_type"):
        decode_json({"data": {}})


def test_unknown_fields_are_ignored_in_data_and_envelope() -> None:
    data = {**body()["data"], "mood": "happy"}

    envelope = decode_json(body(data=data, shard=3))

    assert envelope.data == ANSWER


def test_an_envelope_must_name_its_datas_type() -> None:
    with pytest.raises(ValueError, match=r"data is notification\.NpsAnswered v1"):
        Envelope[NpsAnswered].model_validate(body(event_type="notification.NpsSurveySent"))


@pytest.mark.parametrize("branch_id", ["branch.1", "branch 1", "*", ">", ""])
def test_a_branch_id_must_be_one_subject_token(branch_id: str) -> None:
    with pytest.raises(ValueError, match="branch_id"):
        Envelope[NpsAnswered].model_validate(body(branch_id=branch_id))


def test_with_its_headers_a_current_event_is_parsed_once_by_its_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envelope = published()
    message = encode(envelope)

    class NoJson:
        @staticmethod
        def loads(_: bytes) -> Any:
            raise AssertionError("parsed by json.loads: the headers were not used")

    monkeypatch.setattr(codec, "json", NoJson)

    assert decode(message.payload, headers=message.headers) == envelope


@pytest.mark.parametrize(
    "headers",
    [
        {"Pitlane-Event-Type": "notification.NpsSurveySent", "Pitlane-Schema-Version": "1"},
        {"Pitlane-Event-Type": "notification.NpsAnswered", "Pitlane-Schema-Version": "7"},
        {"Pitlane-Event-Type": "testing.NoSuchEvent", "Pitlane-Schema-Version": "1"},
        {"Pitlane-Event-Type": "notification.NpsAnswered"},
        {},
    ],
)
def test_headers_that_say_otherwise_than_the_payload_change_nothing(headers: dict[str, str]) -> None:
    envelope = published()

    assert decode(encode(envelope).payload, headers=headers) == envelope


def test_a_malformed_payload_is_named_the_same_with_its_headers() -> None:
    message = encode(published())
    broken = json.dumps(body(data={**body()["data"], "score": 11})).encode()

    with pytest.raises(MalformedEvent) as without_headers:
        decode(broken)
    with pytest.raises(MalformedEvent) as with_headers:
        decode(broken, headers=message.headers)

    assert str(with_headers.value) == str(without_headers.value)
    assert "notification.NpsAnswered" in str(with_headers.value)
