"""The base of every published event model and the decorator that names and versions it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pitlane_events.registry import EventRegistry

E = TypeVar("E", bound="DomainEvent")


class DomainEvent(BaseModel):
    """A fact that happened, as published on the bus.

    Frozen so that a handler cannot change what it received; `extra="ignore"` so that a reader of an
    older model tolerates fields added later (adding an optional field keeps the version).
    The type name and version are explicit class variables set by `@event`, never derived from the
    module path, so moving code never renames an event.
    """

    # Attribute docstrings become field descriptions, which the schemas and the catalog publish.
    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    @classmethod
    def service(cls) -> str:
        return cls.event_type.split(".", 1)[0]

    @classmethod
    def name(cls) -> str:
        return cls.event_type.split(".", 1)[1]


def event(
    event_type: str, version: int, *, registry: EventRegistry | None = None
) -> Callable[[type[E]], type[E]]:
    """Give a model its published name (`<service>.<PastTenseName>`) and schema version, and register it.

    `registry` defaults to the global REGISTRY; tests pass their own so test-only events stay out of it.
    """
    service, _, name = event_type.partition(".")
    if not service or not name or "." in name or not name[0].isupper():
        raise ValueError(f"event type must look like 'service.PastTenseName', got {event_type!r}")
    if version < 1:
        raise ValueError(f"{event_type}: schema version starts at 1")

    def register(cls: type[E]) -> type[E]:
        from pitlane_events.registry import REGISTRY

        cls.event_type = event_type
        cls.schema_version = version
        (registry or REGISTRY).register(cls)
        return cls

    return register


def payload_of(model: DomainEvent) -> dict[str, Any]:
    return model.model_dump(mode="json")
