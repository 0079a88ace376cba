"""What every router of reminder's HTTP API shares: the service context and the staff dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from pitlane_events import Actor
from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_reminder.service_layer.service import Reminder

CHAIN_ADMINS = (Role.OWNER,)
BRANCH_ADMINS = (Role.OWNER, Role.MANAGER)
FRONT_DESK = (Role.OWNER, Role.MANAGER, Role.ADVISOR)
READERS = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.ANALYST)
# Tasks go to advisors and, for a late stage of their work, to technicians.
TASK_HOLDERS = (*FRONT_DESK, Role.TECHNICIAN)


@dataclass
class ReminderContext:
    """What the routes need, kept on `app.state.reminder` by the bootstrap."""

    service: Reminder


async def reminder(request: Request) -> ReminderContext:
    context: ReminderContext = request.app.state.reminder
    return context


Context = Annotated[ReminderContext, Depends(reminder)]
ChainAdmin = Annotated[Principal, Depends(require_roles(*CHAIN_ADMINS))]
BranchAdmin = Annotated[Principal, Depends(require_roles(*BRANCH_ADMINS))]
FrontDesk = Annotated[Principal, Depends(require_roles(*FRONT_DESK))]
TaskHolder = Annotated[Principal, Depends(require_roles(*TASK_HOLDERS))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]


def actor_of(principal: Principal) -> Actor:
    return Actor(kind="user", id=principal.user_id, role=str(principal.role))


def branch_filter(principal: Principal) -> list[str] | None:
    """The branches a principal may read (None: every branch)."""
    return None if principal.is_chain_wide else sorted(principal.branches)
