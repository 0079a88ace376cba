"""JetStream streams and durable consumers, declared from code at start-up, idempotently.

A declaration that differs from what the server has is applied (create-or-update) and then read back; if the
server kept something else, or refused the change, start-up fails loudly instead of silently running with
the old configuration (a durable consumer otherwise keeps its old `max_deliver`/`ack_wait`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

# The events' contract names the streams; the platform's modules take the name from here.
from pitlane_events import stream_name as stream_name
from pitlane_events import stream_subjects

log = logging.getLogger(__name__)

DEAD_LETTER_STREAM = "PITLANE_DEAD_LETTERS"
DEAD_LETTER_PREFIX = "dlq"
REPLAY_STREAM = "PITLANE_REPLAY"
REPLAY_PREFIX = "replay"


class DeclarationError(RuntimeError):
    """The server refused or did not keep a stream or consumer configuration the code declares."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    duplicate_window_s: float = 30 * 60
    replicas: int = 1
    max_age_s: float = 0  # 0: kept for replay, never aged out

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=self.duplicate_window_s,
            num_replicas=self.replicas,
            max_age=self.max_age_s,
        )


def service_stream(service: str, *, replicas: int = 1) -> StreamSpec:
    return StreamSpec(stream_name(service), tuple(stream_subjects(service)), replicas=replicas)


def platform_streams(*, replicas: int = 1) -> list[StreamSpec]:
    """Where dead letters wait for an operator, and where replayed ones go back to their consumer."""
    return [
        StreamSpec(DEAD_LETTER_STREAM, (f"{DEAD_LETTER_PREFIX}.>",), replicas=replicas),
        StreamSpec(REPLAY_STREAM, (f"{REPLAY_PREFIX}.>",), replicas=replicas, max_age_s=14 * 24 * 3600),
    ]


async def declare_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    wanted = spec.config()
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(wanted)
        log.info("created stream %s", spec.name, extra={"subjects": list(spec.subjects)})
        return
    differences = _differences(wanted.as_dict(), info.config.as_dict(), _STREAM_FIELDS)
    if not differences:
        return
    try:
        info = await js.update_stream(wanted)
    except APIError as exc:
        raise DeclarationError(
            f"stream {spec.name}: server refused {differences}: {exc.description}"
        ) from exc
    _check_kept(f"stream {spec.name}", wanted.as_dict(), info.config.as_dict(), _STREAM_FIELDS)
    log.warning("updated stream %s", spec.name, extra={"changes": differences})


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    ack_wait_s: float = 30.0
    max_ack_pending: int = 1000
    # Dead-lettering is done by the runner after its own `max_deliver` attempts; the server redelivers
    # without limit so that a message is never silently dropped if the process dies on its last attempt.
    server_max_deliver: int = -1
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            deliver_policy=self.deliver_policy,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.server_max_deliver,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.filter_subjects),
        )


async def declare_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    wanted = spec.config()
    try:
        existing = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        existing = None
    if existing is not None and not _differences(
        wanted.as_dict(), existing.config.as_dict(), _CONSUMER_FIELDS
    ):
        return
    try:
        info = await js.add_consumer(spec.stream, wanted)  # create, or update an existing durable
    except APIError as exc:
        raise DeclarationError(
            f"consumer {spec.stream}/{spec.durable}: server refused the declared configuration: {exc.description}"
        ) from exc
    _check_kept(
        f"consumer {spec.stream}/{spec.durable}", wanted.as_dict(), info.config.as_dict(), _CONSUMER_FIELDS
    )
    if existing is not None:
        log.warning("updated consumer %s/%s", spec.stream, spec.durable)


_STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "duplicate_window",
    "num_replicas",
    "max_age",
)
_CONSUMER_FIELDS = (
    "deliver_policy",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "filter_subjects",
)


def _normalise(key: str, value: Any) -> Any:
    if key in ("subjects", "filter_subjects"):
        return sorted(value or [])
    if key == "max_age" and not value:
        return 0
    return value


def _differences(wanted: dict[str, Any], actual: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        key: {"declared": wanted.get(key), "server": actual.get(key)}
        for key in keys
        if _normalise(key, wanted.get(key)) != _normalise(key, actual.get(key))
    }


def _check_kept(what: str, wanted: dict[str, Any], actual: dict[str, Any], keys: tuple[str, ...]) -> None:
    left = _differences(wanted, actual, keys)
    if left:
        raise DeclarationError(f"{what}: server kept a different configuration than declared: {left}")
