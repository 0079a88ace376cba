"""A branch's quiet hours: no SMS or WeChat in them (queued, then sent when they end), on the branch's clock."""

from __future__ import annotations

from datetime import time

from fastapi import APIRouter
from pydantic import BaseModel, model_validator

from pitlane_notification.adapters import queries
from pitlane_notification.domain.courtesy import QuietHours
from pitlane_notification.entrypoints.http.common import BranchAdmin, Context, Reader
from pitlane_platform.auth import require_branch_access

router = APIRouter(prefix="/v1/branches", tags=["branches"])


class QuietHoursBody(BaseModel):
    starts: time
    ends: time

    @model_validator(mode="after")
    def _a_window(self) -> QuietHoursBody:
        if self.starts == self.ends:
            raise ValueError("starts and ends must differ")
        if self.starts.tzinfo is not None or self.ends.tzinfo is not None:
            raise ValueError("quiet hours are on the branch's own clock: give times without an offset")
        return self


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
        starts=row["starts"] if own and row else default.start,
        ends=row["ends"] if own and row else default.end,
        default=not own,
    )


@router.put("/{branch_id}/quiet-hours")
async def set_quiet_hours(
    branch_id: str, body: QuietHoursBody, context: Context, principal: BranchAdmin
) -> BranchQuietHours:
    require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        await queries.set_quiet_hours(unit, branch_id, body.starts, body.ends)
        row = await queries.branch(unit, branch_id)
    return BranchQuietHours(
        branch_id=branch_id,
        timezone=(row or {}).get("timezone") or str(context.service.delivery.chain_timezone),
        starts=body.starts,
        ends=body.ends,
        default=False,
    )
