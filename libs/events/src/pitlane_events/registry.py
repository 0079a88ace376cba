"""Which model reads which (event_type, schema_version), and how old payloads are lifted to the newest.

Upcasters are plain `dict -> dict` functions from version N to N+1; a reader only ever sees the newest
version of an event, whatever version the producer wrote when it was published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pitlane_events.errors import DuplicateRegistration, MalformedEvent, UnknownEventType
from pitlane_events.model import DomainEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._latest: dict[str, int] = {}  # kept with _models: asked for every event decoded

    def register(self, model: type[DomainEvent]) -> None:
        key = (model.event_type, model.schema_version)
        existing = self._models.get(key)
        if existing is not None and existing is not model:
            raise DuplicateRegistration(f"{key[0]} v{key[1]} is registered twice ({existing.__qualname__})")
        self._models[key] = model
        self._latest[key[0]] = max(self._latest.get(key[0], 0), key[1])

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register the function that lifts `event_type` from `from_version` to `from_version + 1`."""

        def register(fn: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise DuplicateRegistration(f"{event_type}: an upcaster from v{from_version} exists")
            self._upcasters[key] = fn
            return fn

        return register

    def model(self, event_type: str, schema_version: int) -> type[DomainEvent]:
        try:
            return self._models[(event_type, schema_version)]
        except KeyError:
            raise UnknownEventType(event_type, schema_version) from None

    def latest_version(self, event_type: str) -> int:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def current_version(self, event_type: str) -> int | None:
        """The newest version of a type, None for a type no model reads."""
        return self._latest.get(event_type)

    def latest(self, event_type: str) -> type[DomainEvent]:
        return self._models[(event_type, self.latest_version(event_type))]

    def upcast(
        self, event_type: str, schema_version: int, data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Lift `data` from `schema_version` to the newest version, one plain function at a time."""
        target = self.latest_version(event_type)
        if schema_version > target:
            raise UnknownEventType(event_type, schema_version)
        version = schema_version
        while version < target:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise MalformedEvent(event_type, f"no upcaster from v{version} to v{version + 1}")
            data = step(dict(data))
            version += 1
        return version, data

    def models(self) -> Iterator[type[DomainEvent]]:
        """Every registered (type, version), in a stable order."""
        for key in sorted(self._models):
            yield self._models[key]

    def event_types(self) -> list[str]:
        return sorted({t for (t, _) in self._models})


REGISTRY = EventRegistry()
upcaster = REGISTRY.upcaster
