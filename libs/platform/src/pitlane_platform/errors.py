"""Errors the domain and service layer raise; the HTTP layer turns each into an RFC 9457 problem."""

from __future__ import annotations


class PitlaneError(Exception):
    status = 500
    title = "Internal error"


class NotFoundError(PitlaneError):
    status = 404
    title = "Not found"


class ConflictError(PitlaneError):
    """The command does not fit the current state (e.g. an invalid transition); the message names the state."""

    status = 409
    title = "Conflict"


class ConcurrencyError(ConflictError):
    """Someone else appended to the stream first: reload and retry the command."""

    title = "Concurrent modification"

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None = None) -> None:
        found = f", found {actual_version}" if actual_version is not None else ""
        super().__init__(f"stream {stream_id} was expected at version {expected_version}{found}")
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class ForbiddenError(PitlaneError):
    status = 403
    title = "Forbidden"


class UnauthorizedError(PitlaneError):
    status = 401
    title = "Unauthorized"


class InvalidInputError(PitlaneError):
    """Input that passed the schema but breaks a rule; `field` names what to fix."""

    status = 422
    title = "Invalid input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MessageTooLargeError(PitlaneError):
    """The command would produce an event larger than the broker accepts: refused before anything is stored,
    so nothing is ever accepted that cannot be published."""

    status = 413
    title = "Content too large"

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(
            f"the {event_type} event this command produces is {size} bytes; the broker accepts at most {limit}"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit
