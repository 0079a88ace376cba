"""Shifts and leave (ADR 25): branch managers set each local day's shifts (with breaks) and record staff
leave; every member of staff reads the roster. Once a branch has entered a shift, a slot takes no more cars
than technicians work all of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from pitlane_events.inputs import DateInput
from pitlane_events.types import Id
from pitlane_platform.errors import InvalidInputError
from pitlane_workorder.entrypoints.http.calendar_views import (
    BreakView,
    LeaveRecorded,
    LeaveView,
    RosterView,
    ShiftView,
)
from pitlane_workorder.entrypoints.http.common import AnyStaff, BranchAdmin, Service, actor_of
from pitlane_workorder.service_layer.calendar_commands import DayShifts, RecordLeave

router = APIRouter(prefix="/v1", tags=["staff"])
# A roster is read a week or a month at a time.
MAX_ROSTER_DAYS = 62

Day = Annotated[DateInput, Path(description="the branch's local day, YYYY-MM-DD")]


@router.put("/branches/{branch_id}/shifts/{day}", status_code=204)
async def set_shifts(
    branch_id: str, day: Day, body: DayShifts, service: Service, principal: BranchAdmin
) -> None:
    """The day's shifts become these: staff not listed are off that day (an empty list clears the day)."""
    await service.calendar.set_shifts(branch_id, day, body)


@router.get("/branches/{branch_id}/shifts")
async def read_roster(
    branch_id: str,
    service: Service,
    principal: AnyStaff,
    first: Annotated[DateInput, Query(alias="from", description="first local day, YYYY-MM-DD")],
    last: Annotated[DateInput, Query(alias="to", description="last local day (included)")],
) -> RosterView:
    if last < first:
        raise InvalidInputError("query.to", "must not be before `from`")
    if last - first >= timedelta(days=MAX_ROSTER_DAYS):
        raise InvalidInputError("query.to", f"a roster is read {MAX_ROSTER_DAYS} days at a time at most")
    roster = await service.calendar.roster(branch_id, first, last)
    return RosterView(
        branch_id=branch_id,
        first=first,
        last=last,
        plans_by_shifts=roster["plans_by_shifts"],
        shifts=[
            ShiftView(
                staff_id=row["staff_id"],
                day=row["day"],
                starts_at=row["starts_at"],
                ends_at=row["ends_at"],
                breaks=[BreakView.model_validate(pause) for pause in row["breaks"]],
            )
            for row in roster["shifts"]
        ],
        leave=[LeaveView.model_validate(row) for row in roster["leave"]],
    )


@router.post("/branches/{branch_id}/staff/{staff_id}/leave", status_code=201)
async def record_leave(
    branch_id: str, staff_id: Id, body: RecordLeave, service: Service, principal: BranchAdmin
) -> LeaveRecorded:
    return LeaveRecorded(
        leave_id=await service.calendar.record_leave(branch_id, staff_id, body, actor_of(principal))
    )


@router.delete("/branches/{branch_id}/staff/{staff_id}/leave/{leave_id}", status_code=204)
async def cancel_leave(
    branch_id: str, staff_id: Id, leave_id: Id, service: Service, principal: BranchAdmin
) -> None:
    await service.calendar.cancel_leave(branch_id, staff_id, leave_id)
