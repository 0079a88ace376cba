"""What every router of notification's HTTP API shares: the service context and the staff dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from pitlane_notification.service_layer.service import Notification
from pitlane_platform.auth import Principal, Role, require_roles

CHAIN_ADMINS = (Role.OWNER,)
BRANCH_ADMINS = (Role.OWNER, Role.MANAGER)
FRONT_DESK = (Role.OWNER, Role.MANAGER, Role.ADVISOR)
READERS = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.ANALYST)


@dataclass
class NotificationContext:
    """What the routes need, kept on `app.state.notification` by the bootstrap."""

    service: Notification
    # Providers push receipts and replies to /v1/providers/…?key=<this>: they cannot send our tokens.
    callback_key: str
    # The recording provider's messages are served only where it is configured (development).
    recording: bool


async def notification(request: Request) -> NotificationContext:
    context: NotificationContext = request.app.state.notification
    return context


Context = Annotated[NotificationContext, Depends(notification)]
ChainAdmin = Annotated[Principal, Depends(require_roles(*CHAIN_ADMINS))]
BranchAdmin = Annotated[Principal, Depends(require_roles(*BRANCH_ADMINS))]
FrontDesk = Annotated[Principal, Depends(require_roles(*FRONT_DESK))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]


def branch_filter(principal: Principal) -> list[str] | None:
    """The branches a principal may read (None: every branch)."""
    return None if principal.is_chain_wide else sorted(principal.branches)
