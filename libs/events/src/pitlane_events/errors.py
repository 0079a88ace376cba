"""Errors a reader of events can meet. Each names the event it is about."""


class EventError(Exception):
    """Base of every error raised while reading or writing an event."""


class UnknownEventType(EventError):
    def __init__(self, event_type: str, schema_version: int | None = None) -> None:
        version = f" v{schema_version}" if schema_version is not None else ""
        super().__init__(f"unknown event type {event_type!r}{version}: no model is registered for it")
        self.event_type = event_type
        self.schema_version = schema_version


class MalformedEvent(EventError):
    """The bytes are not a valid envelope, or the payload does not match its model."""

    def __init__(self, event_type: str | None, reason: str) -> None:
        subject = event_type or "<unreadable event>"
        super().__init__(f"malformed event {subject}: {reason}")
        self.event_type = event_type
        self.reason = reason


class DuplicateRegistration(EventError):
    pass
