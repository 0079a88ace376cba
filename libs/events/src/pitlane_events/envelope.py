"""The one envelope every event travels in (ARCHITECTURE.md, "Events")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator
from uuid_utils.compat import uuid7

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

    model_config = ConfigDict(frozen=True)

    kind: ActorKind
    id: str
    role: str | None = None

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls(kind="service", id=name)


class Envelope(BaseModel, Generic[E]):
    model_config = ConfigDict(frozen=True)

    event_id: UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    chain_id: str
    branch_id: str | None = None
    aggregate_id: str
    aggregate_version: int
    correlation_id: UUID
    causation_id: UUID | None = None
    actor: Actor
    data: E

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

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
        return Envelope[type(data)](  # type: ignore[misc]
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
