"""The HTTP API, one router per resource: branches and staff, appointments, work orders and media under /v1
(bearer token, role and branch checked), public booking under /v1/public, and the customer's page under /c
behind a signed link."""

from pitlane_workorder.entrypoints.http import appointments, branches, customer, media, public, work_orders
from pitlane_workorder.entrypoints.http.appointments import slot_full_problem
from pitlane_workorder.entrypoints.http.common import WorkorderContext

ROUTERS = (
    branches.router,
    appointments.router,
    work_orders.router,
    media.router,
    public.router,
    customer.router,
)

__all__ = ["ROUTERS", "WorkorderContext", "slot_full_problem"]
