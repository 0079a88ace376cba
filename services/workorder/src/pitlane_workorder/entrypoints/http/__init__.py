"""The HTTP API, one router per resource: branches and staff, appointments, work orders, process definitions,
dispatch and media under /v1 (bearer token, role and branch checked), public booking under /v1/public, and
the customer's page under /c behind a signed link."""

from fastapi import FastAPI

from pitlane_workorder.domain.capacity import NoRoomError, UnbookableTimeError
from pitlane_workorder.domain.process import ProcessRuleBroken
from pitlane_workorder.entrypoints.http import (
    appointments,
    booking_links,
    booking_rules,
    branches,
    customer,
    dispatch,
    holds,
    media,
    process_definitions,
    public,
    shifts,
    waitlist,
    work_orders,
)
from pitlane_workorder.entrypoints.http.common import WorkorderContext

ROUTERS = (
    branches.router,
    appointments.router,
    work_orders.router,
    process_definitions.router,
    dispatch.router,
    media.router,
    public.router,
    holds.router,
    waitlist.public,
    waitlist.router,
    shifts.router,
    booking_rules.router,
    customer.router,
    booking_links.router,
)


def install_error_handlers(app: FastAPI) -> None:
    """After the platform's: booking problems that suggest slots, and the customer's error pages."""
    app.add_exception_handler(NoRoomError, appointments.no_room_problem)  # type: ignore[arg-type]
    app.add_exception_handler(UnbookableTimeError, appointments.unbookable_problem)  # type: ignore[arg-type]
    app.add_exception_handler(ProcessRuleBroken, process_definitions.rule_broken_problem)  # type: ignore[arg-type]
    customer.install_error_pages(app)
    booking_links.install_error_pages(app)


__all__ = ["ROUTERS", "WorkorderContext", "install_error_handlers"]
