"""The HTTP API, one router per resource: branches and staff, appointments, work orders and media under /v1
(bearer token, role and branch checked), public booking under /v1/public, and the customer's page under /c
behind a signed link."""

from fastapi import FastAPI

from pitlane_workorder.domain.capacity import OffGridSlotError, SlotFullError
from pitlane_workorder.entrypoints.http import appointments, branches, customer, media, public, work_orders
from pitlane_workorder.entrypoints.http.common import WorkorderContext

ROUTERS = (
    branches.router,
    appointments.router,
    work_orders.router,
    media.router,
    public.router,
    customer.router,
)


def install_error_handlers(app: FastAPI) -> None:
    """After the platform's: booking problems that suggest slots, and the customer's error pages."""
    app.add_exception_handler(SlotFullError, appointments.slot_full_problem)  # type: ignore[arg-type]
    app.add_exception_handler(OffGridSlotError, appointments.off_grid_problem)  # type: ignore[arg-type]
    customer.install_error_pages(app)


__all__ = ["ROUTERS", "WorkorderContext", "install_error_handlers"]
