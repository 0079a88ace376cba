"""Which failures are the infrastructure's and which are the handler's.

A consumer retries an infrastructure failure (database unreachable, connection lost, serialization failure,
deadlock, lock timeout) without counting it as an attempt of the handler, and waits for the database to
answer before it fetches again: an outage, however long, dead-letters nothing. Everything else a handler
raises is the handler's (its own bug or the event's content) and counts toward `max_deliver`; so does a
statement timeout, which means the handler's own work took too long.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import sqlalchemy.exc
from psycopg import errors as pg_errors

_TRANSIENT_SQL_STATES = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)


class InfrastructureError(Exception):
    """Raised by the runner to stop processing a batch until the database answers again."""


def is_infrastructure_error(error: BaseException) -> bool:
    for cause in _causes(error):
        if isinstance(cause, _TRANSIENT_SQL_STATES):
            return True
        if isinstance(cause, pg_errors.QueryCanceled):
            return False  # statement_timeout: the handler's work, counted as its attempt
        if isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True  # connection failures, server shutting down, out of connections or disk
        if isinstance(cause, (sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError)):
            return True  # the pool could not hand out a working connection
        if isinstance(cause, ConnectionError):
            return True
    return False


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error SQLAlchemy wrapped (`.orig`), and what it was raised from."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending.extend([getattr(cause, "orig", None), cause.__cause__, cause.__context__])
