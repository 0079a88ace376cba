"""What a handler reads of its event, derived from the code (testing/consumer_reads.py): followed through
attribute chains, nested models and lists, functions, methods of the objects a handler closes over, batches
of (envelope, event) pairs and functions defined inside it; refused, naming the place, where it cannot be
followed. The events here are test-only, in their own registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from pitlane_events import DomainEvent, EventRegistry, event
from pitlane_platform.testing.consumer_reads import UnfollowableRead, fields_read

registry = EventRegistry()


class Part(BaseModel):
    code: str
    price_fen: int
    note: str | None = None


class Slot(BaseModel):
    start: datetime
    end: datetime


@event("testing.JobDone", 1, registry=registry)
class JobDone(DomainEvent):
    job_id: str
    customer_id: str
    slot: Slot
    parts: tuple[Part, ...]
    rating: int | None = None
    tags: tuple[str, ...] = ()


def store(*values: Any) -> None:
    """Where a handler's values go: taken whole."""


async def reads_chains_nested_models_and_lists(ctx: Any, event: JobDone) -> None:
    store(event.job_id, event.slot.start.isoformat())
    total = 0
    for part in event.parts:
        total += part.price_fen
    store(total, [part.code for part in event.parts if part.note is None])


def test_attribute_chains_nested_models_and_list_items_are_read_field_by_field() -> None:
    assert fields_read(reads_chains_nested_models_and_lists, JobDone) == (
        "job_id",
        "parts[*].code",
        "parts[*].note",
        "parts[*].price_fen",
        "slot.start",
    )


def describe(job: JobDone) -> str:
    return f"job for {job.customer_id}"


class Projection:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    async def write(self, unit: Any, events: list[tuple[Any, JobDone]]) -> None:
        for envelope, job in events:
            self.rows.append((envelope.event_id, job.rating))


def handler_of(projection: Projection, follower: Any = None) -> Any:
    async def handle(ctx: Any, event: JobDone) -> None:
        await projection.write(ctx.unit, [(ctx.envelope, event)])
        store(describe(event))

        def tags_of(job: JobDone) -> list[str]:
            return list(job.tags)

        store(tags_of(event))
        if follower is not None:
            await follower(event)

    return handle


def test_the_event_is_followed_into_functions_methods_batches_and_local_functions() -> None:
    """`projection` and `follower` are found in the handler's closure; a call on None is never made."""
    assert fields_read(handler_of(Projection()), JobDone) == ("customer_id", "rating", "tags")


async def dumps_a_nested_model(ctx: Any, event: JobDone) -> None:
    store(event.slot.model_dump(mode="json"), event.rating is None)


async def dumps_everything(ctx: Any, event: JobDone) -> None:
    store(event.model_dump())


def test_a_model_dumped_or_compared_is_read_whole() -> None:
    assert fields_read(dumps_a_nested_model, JobDone) == ("rating", "slot")
    assert fields_read(dumps_everything, JobDone) == (
        "customer_id",
        "job_id",
        "parts",
        "rating",
        "slot",
        "tags",
    )


async def counts(ctx: Any, events: list[tuple[Any, JobDone]]) -> None:
    for _, job in events:
        if isinstance(job, JobDone) and len(job.tags) > len(events):
            store(job.job_id)


async def one_of_a_batch(ctx: Any, event: JobDone) -> None:
    await counts(ctx, [(ctx.envelope, event)])


def test_counting_a_batch_or_checking_a_type_reads_nothing_but_counting_a_field_reads_it() -> None:
    assert fields_read(one_of_a_batch, JobDone) == ("job_id", "tags")


async def through_the_envelope(ctx: Any, event: JobDone) -> None:
    store(ctx.envelope.data.job_id)


async def printed(ctx: Any, event: JobDone) -> None:
    print(event)


async def by_name(ctx: Any, event: JobDone) -> None:
    store(getattr(event, "job_id"))  # noqa: B009  (the point: a read no one can see)


async def misspelled(ctx: Any, event: JobDone) -> None:
    store(event.jobid)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        (through_the_envelope, "reads the event through the envelope"),
        (printed, "the whole event is used here"),
        (by_name, "the whole event is used here"),
        (misspelled, "reads `jobid`, which is no field of JobDone"),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_what_cannot_be_followed_is_refused_naming_the_place(handler: Any, why: str) -> None:
    with pytest.raises(UnfollowableRead) as refusal:
        fields_read(handler, JobDone)

    assert why in str(refusal.value)
    assert f"test_consumer_reads.py:{handler.__code__.co_firstlineno + 1}" in str(refusal.value)
