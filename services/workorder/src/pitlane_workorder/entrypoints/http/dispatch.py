"""Dispatch: technicians' skills (the line-item categories each can do) and the suggestions that rank them
for an order; the advisor sends the suggestion's token back with the assignment, which records it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pitlane_events.types import LineCategory
from pitlane_events.workorder import SuggestedTechnician
from pitlane_platform.errors import NotFoundError
from pitlane_workorder.adapters import dispatch as dispatch_queries
from pitlane_workorder.adapters import queries
from pitlane_workorder.entrypoints.http.common import AnyStaff, BranchAdmin, Service
from pitlane_workorder.service_layer import commands, dispatch
from pitlane_workorder.service_layer.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["dispatch"])


class Skills(BaseModel):
    staff_id: str
    skills: list[LineCategory]


class DispatchSuggestions(BaseModel):
    work_order_id: str
    suggested_at: datetime
    work_needed: list[LineCategory] = Field(description="expected at check-in, and the add-ons' categories")
    technicians: list[SuggestedTechnician] = Field(description="best first; the advisor still chooses")
    suggestion_token: str = Field(
        description="send it as `suggestion_token` with the assignment: the ranking is recorded with it"
    )


@router.put("/branches/{branch_id}/staff/{staff_id}/skills")
async def set_skills(
    branch_id: str, staff_id: str, body: commands.SetSkills, service: Service, principal: BranchAdmin
) -> Skills:
    async with service.handlers.driver.transaction() as unit:
        await dispatch.set_skills(unit, branch_id, staff_id, body.skills, service.handlers.clock.now())
        skills = await dispatch_queries.skills(unit, branch_id, staff_id)
    return Skills(staff_id=staff_id, skills=[LineCategory(skill) for skill in skills])


@router.get("/branches/{branch_id}/staff/{staff_id}/skills")
async def read_skills(branch_id: str, staff_id: str, service: Service, principal: AnyStaff) -> Skills:
    async with service.handlers.driver.transaction() as unit:
        if await queries.staff_member(unit, branch_id, staff_id) is None:
            raise NotFoundError(f"branch {branch_id} has no staff member {staff_id}")
        skills = await dispatch_queries.skills(unit, branch_id, staff_id)
    return Skills(staff_id=staff_id, skills=[LineCategory(skill) for skill in skills])


@router.get("/branches/{branch_id}/work-orders/{work_order_id}/dispatch-suggestions")
async def dispatch_suggestions(
    branch_id: str, work_order_id: str, service: Service, principal: AnyStaff
) -> DispatchSuggestions:
    """The branch's technicians ranked for the order: at work now, skills matching the work needed, fewest
    orders in hand, most time left on shift."""
    now = service.handlers.clock.now()
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, branch_id, work_order_id)
        suggestion = await dispatch.suggest(uow.unit, order, branch_id, now)
    return DispatchSuggestions(
        work_order_id=work_order_id,
        suggested_at=suggestion.suggested_at,
        work_needed=list(suggestion.work_needed),
        technicians=list(suggestion.ranking),
        suggestion_token=dispatch.sign(service.link_secret, work_order_id, suggestion),
    )
