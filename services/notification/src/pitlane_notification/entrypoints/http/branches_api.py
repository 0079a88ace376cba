"""A branch's quiet hours: no SMS or WeChat in them (queued, then sent when they end), on the branch's clock."""

from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from pitlane_notification.adapters import queries
from pitlane_notification.domain.courtesy import QuietHours
from pitlane_notification.entrypoints.http.common import BranchAdmin, Context, Reader
from pitlane_platform.auth import require_branch_access

router = APIRouter(prefix="/v1/branches", tags=["branches"])


# A time of day on the branch's own clock, e.g. 21:00 (no offset: the branch's time zone applies).
LocalTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["21:00"])]


class QuietHoursBody(BaseModel):
    starts: LocalTime
    ends: LocalTime

    @model_validator(mode="after")
    def _a_window(self) -> QuietHoursBody:
        if self.starts == self.ends:
            raise ValueError("starts and ends must differ")
        return self

    def window(self) -> QuietHours:
        return QuietHours(start=time.fromisoformat(self.starts), end=time.fromisoformat(self.ends))


class BranchQuietHours(QuietHoursBody):
    branch_id: str
    timezone: str
    default: bool


@router.get("/{branch_id}/quiet-hours")
async def get_quiet_hours(branch_id: str, context: Context, principal: Reader) -> BranchQuietHours:
    require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        row = await queries.branch(unit, branch_id)
    default = QuietHours()
    own = row is not None and row["starts"] is not None
    return BranchQuietHours(
        branch_id=branch_id,
        timezone=(row or {}).get("timezone") or str(context.service.delivery.chain_timezone),
        starts=(row["starts"] if own and row else default.start).strftime("%H:%M"),
        ends=(row["ends"] if own and row else default.end).strftime("%H:%M"),
        default=not own,
    )


@router.put("/{branch_id}/quiet-hours")
async def set_quiet_hours(
    branch_id: str, body: QuietHoursBody, context: Context, principal: BranchAdmin
) -> BranchQuietHours:
    require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        window = body.window()
        await queries.set_quiet_hours(unit, branch_id, window.start, window.end)
        row = await queries.branch(unit, branch_id)
    return BranchQuietHours(
        branch_id=branch_id,
        timezone=(row or {}).get("timezone") or str(context.service.delivery.chain_timezone),
        starts=body.starts,
        ends=body.ends,
        default=False,
    )
