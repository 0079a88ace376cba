"""The one envelope every event travels in (ARCHITECTURE.md, "Events")."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, SerializeAsAny, field_validator, model_validator
from uuid_utils.compat import uuid7

from pitlane_events.inputs import SUBJECT_TOKEN_FORBIDDEN
from pitlane_events.model import DomainEvent

E = TypeVar("E", bound=DomainEvent)

ActorKind = Literal["user", "service", "customer", "system"]

# Events of chain-wide aggregates (customers, vehicles) carry no branch; their subject uses this token.
CHAIN_WIDE_BRANCH_TOKEN = "chain"


def new_event_id() -> UUID:
    """UUIDv7: time-ordered, so ids sort roughly by creation and index well."""
    return uuid7()


class Actor(BaseModel):
    """Who caused the event: a user (id + role), a service, a customer acting through a signed link, or the
    system's own clock."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    kind: ActorKind
    """What kind of actor this is."""
    id: str
    """The user's, customer's or service's id."""
    role: str | None = None
    """The user's role when it acted (owner, manager, advisor, technician, finance, analyst)."""

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls(kind="service", id=name)


class Envelope(BaseModel, Generic[E]):
    """The metadata every event travels with; `data` is the event itself."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    event_id: UUID
    """UUIDv7 of this event; also the `Nats-Msg-Id` JetStream dedupes on and the inbox key consumers keep."""
    event_type: str
    """`<service>.<PastTenseName>`, e.g. `workorder.WorkOrderCompleted`."""
    schema_version: int
    """Version of `data`'s schema for this event type."""
    occurred_at: AwareDatetime
    """When the fact happened, in UTC."""
    chain_id: str
    """The repair chain (tenant) the event belongs to."""
    branch_id: str | None = None
    """The branch the event belongs to; null for chain-wide aggregates (customers, vehicles)."""
    aggregate_id: str
    """Id of the aggregate (stream) that emitted the event."""
    aggregate_version: int
    """Version of that aggregate after this event; read models ignore events older than what they saw."""
    correlation_id: UUID
    """Id shared by every event of one business flow (a visit, from its booking), reactions and timers too."""
    causation_id: UUID | None = None
    """Id of the event that directly caused this one; null when a command from outside caused it."""
    actor: Actor
    """Who caused the event."""
    # SerializeAsAny: an Envelope[DomainEvent] holding a concrete event must still dump all its fields,
    # not just the (empty) fields of the declared base class.
    data: SerializeAsAny[E]
    """The event's payload, as the model of (event_type, schema_version) defines it."""

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("branch_id")
    @classmethod
    def _usable_as_subject_token(cls, value: str | None) -> str | None:
        # The branch id is one token of the NATS subject: a dot, wildcard or space would change which
        # streams and consumers see the event.
        if value is not None and (not value or not SUBJECT_TOKEN_FORBIDDEN.isdisjoint(value)):
            raise ValueError("branch_id must be a non-empty NATS subject token (no '.', '*', '>' or spaces)")
        return value

    @model_validator(mode="after")
    def _names_its_data(self) -> Envelope[E]:
        declared = getattr(type(self.data), "event_type", None)
        if declared is not None and (declared, type(self.data).schema_version) != (
            self.event_type,
            self.schema_version,
        ):
            raise ValueError(
                f"envelope says {self.event_type} v{self.schema_version} but data is "
                f"{declared} v{type(self.data).schema_version}"
            )
        return self

    @classmethod
    def new(
        cls,
        data: E,
        *,
        chain_id: str,
        aggregate_id: str,
        aggregate_version: int,
        actor: Actor,
        occurred_at: datetime,
        branch_id: str | None = None,
        caused_by: Envelope[DomainEvent] | None = None,
        correlation_id: UUID | None = None,
    ) -> Envelope[E]:
        """Wrap a new fact. An event caused by another keeps its correlation and names it as cause."""
        event_id = new_event_id()
        if caused_by is not None:
            correlation_id = caused_by.correlation_id
        return envelope_of(type(data))(  # type: ignore[call-arg]
            event_id=event_id,
            event_type=data.event_type,
            schema_version=data.schema_version,
            occurred_at=occurred_at,
            chain_id=chain_id,
            branch_id=branch_id,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            correlation_id=correlation_id or event_id,
            causation_id=caused_by.event_id if caused_by is not None else None,
            actor=actor,
            data=data,
        )

    @property
    def subject(self) -> str:
        return subject_for(self.event_type, self.schema_version, self.branch_id)


def subject_for(event_type: str, schema_version: int, branch_id: str | None) -> str:
    """`<service>.<branch_id>.<EventType>.v<N>`; one stream per producing service captures `<service>.>`."""
    service, _, name = event_type.partition(".")
    return f"{service}.{branch_id or CHAIN_WIDE_BRANCH_TOKEN}.{name}.v{schema_version}"


def stream_subjects(service: str) -> list[str]:
    return [f"{service}.>"]


def stream_name(service: str) -> str:
    """The JetStream stream of a producing service: `workorder` → `WORKORDER`, `customer-profile` →
    `CUSTOMER_PROFILE` (part of the contract: consumers outside Pitlane subscribe by it)."""
    return service.upper().replace("-", "_")


@cache
def envelope_of(model: type[DomainEvent]) -> type[Envelope[Any]]:
    """`Envelope[model]`, built once per event model for the life of the process.

    pydantic keeps parametrised generic classes only weakly, so without this every `Envelope.new` and every
    decode could build the class again (milliseconds each, the largest cost of a command)."""
    return Envelope[model]  # type: ignore[valid-type]
