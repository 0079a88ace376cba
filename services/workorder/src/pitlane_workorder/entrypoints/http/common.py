"""What every router of the HTTP API shares: the service context, the staff dependencies (role and branch
checked in one level), If-Match and the work order's command answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from pitlane_events import Actor
from pitlane_platform.auth import (
    Principal,
    Role,
    require_branch_access,
    require_roles,
    requires_bearer_token,
)
from pitlane_platform.errors import InvalidInputError
from pitlane_workorder.adapters.blobstore import BlobStore
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.entrypoints.http.responses import WorkOrderAnswer
from pitlane_workorder.service_layer.booking_calendar import BookingCalendar
from pitlane_workorder.service_layer.handlers import Handlers

BRANCH_ADMINS = (Role.OWNER, Role.MANAGER)
FRONT_DESK = (Role.OWNER, Role.MANAGER, Role.ADVISOR)
WORKSHOP = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.TECHNICIAN)
COUNTER = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.FINANCE)


@dataclass
class WorkorderContext:
    """What the routes need, kept on `app.state.workorder` by the bootstrap."""

    handlers: Handlers
    calendar: BookingCalendar
    blobs: BlobStore
    link_secret: str
    link_ttl: timedelta
    public_base_url: str
    max_upload_bytes: int


async def workorder(request: Request) -> WorkorderContext:
    context: WorkorderContext = request.app.state.workorder
    return context


Service = Annotated[WorkorderContext, Depends(workorder)]


def sees_personal_data(principal: Principal) -> bool:
    """Analysts work with figures: names and phones are left out of what they read, not masked (ADR 13)."""
    return principal.role is not Role.ANALYST


def actor_of(principal: Principal) -> Actor:
    return Actor(kind="user", id=principal.user_id, role=str(principal.role))


def staff_in_branch(*roles: Role) -> Any:
    """A dependency: the principal, if its role is one of `roles` and its token covers the route's branch."""
    principal_with_role = require_roles(*roles)

    # One dependency level, not one on top of require_roles: each level costs FastAPI work per request.
    @requires_bearer_token
    async def principal_in_branch(branch_id: str, request: Request) -> Principal:
        principal = await principal_with_role(request)
        require_branch_access(principal, branch_id)
        return principal

    return Depends(principal_in_branch)


BranchAdmin = Annotated[Principal, staff_in_branch(*BRANCH_ADMINS)]
FrontDesk = Annotated[Principal, staff_in_branch(*FRONT_DESK)]
Workshop = Annotated[Principal, staff_in_branch(*WORKSHOP)]
Counter = Annotated[Principal, staff_in_branch(*COUNTER)]
AnyStaff = Annotated[Principal, staff_in_branch(*Role)]


# A version is a stream's event count: nine digits are far beyond any work order's.
IF_MATCH = re.compile(r'^(W/)?"?(?P<version>[0-9]{1,9})"?$')


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hop per request.
async def expected_version(
    if_match: Annotated[
        str | None,
        Header(
            description='The ETag of the work order the client last saw, e.g. "7"',
            pattern=IF_MATCH.pattern,
            max_length=24,
        ),
    ] = None,
) -> int | None:
    """The work order version the client last saw (`If-Match: "7"`); commands on a stale view are a 409."""
    if if_match is None:
        return None
    matched = IF_MATCH.fullmatch(if_match.strip())
    if matched is None:
        raise InvalidInputError("header.if-match", 'must be the ETag of the work order, e.g. "7"')
    return int(matched["version"])


ExpectedVersion = Annotated[int | None, Depends(expected_version)]


def order_response(order: WorkOrder, response: Response) -> WorkOrderAnswer:
    response.headers["ETag"] = f'"{order.version}"'
    return WorkOrderAnswer(work_order_id=order.id, state=order.state, version=order.version)
