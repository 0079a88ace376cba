"""Which failures are the infrastructure's (retried without counting an attempt) and which the handler's, on
the exceptions the drivers raise and the chains Python builds around them."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from psycopg import errors as pg_errors

from pitlane_platform.messaging.faults import is_infrastructure_error


def raised_while_handling(outer: Exception, inner: BaseException) -> Exception:
    """`outer` as Python leaves it when raised inside an `except` block for `inner`."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is the point
    except Exception as caught:
        return caught


def wrapped_by_sqlalchemy(driver_error: Exception) -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, driver_error)


@pytest.mark.parametrize(
    ("error", "infrastructure"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (wrapped_by_sqlalchemy(psycopg.OperationalError("connection refused")), True),
        (pg_errors.SerializationFailure("could not serialize access"), True),
        (pg_errors.DeadlockDetected("deadlock detected"), True),
        (ConnectionResetError("reset by peer"), True),
        (pg_errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (ValueError("odometer reading out of range"), False),
        (raised_while_handling(RuntimeError("cleanup failed"), psycopg.OperationalError("gone")), True),
    ],
)
def test_an_error_is_the_infrastructures_when_it_or_what_it_came_from_is_a_connection_failure(
    error: Exception, infrastructure: bool
) -> None:
    assert is_infrastructure_error(error) is infrastructure


def test_a_chain_of_exceptions_that_refers_back_to_itself_is_still_classified() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first  # a cycle Python allows and reraises can build

    assert is_infrastructure_error(first) is False
