"""Branches and their staff: opening a branch and adding staff (branch admins); reading branches (bays, opening
hours, time zone, slot length) and staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from pitlane_platform.auth import Principal, Role, require_branch_access, require_roles
from pitlane_platform.errors import NotFoundError
from pitlane_workorder.adapters import queries
from pitlane_workorder.entrypoints.http.common import BRANCH_ADMINS, AnyStaff, BranchAdmin, Service, actor_of
from pitlane_workorder.entrypoints.http.responses import (
    BranchCreated,
    BranchView,
    StaffAdded,
    StaffMemberView,
)
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1", tags=["staff"])


@router.post("/branches", status_code=201)
async def open_branch(
    body: commands.OpenBranch,
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*BRANCH_ADMINS))],
) -> BranchCreated:
    require_branch_access(principal, body.branch_id)
    await service.handlers.open_branch(body, actor_of(principal))
    return BranchCreated(branch_id=body.branch_id)


@router.post("/branches/{branch_id}/staff", status_code=201)
async def add_staff_member(
    branch_id: str,
    body: commands.AddStaffMember,
    service: Service,
    principal: BranchAdmin,
) -> StaffAdded:
    await service.handlers.add_staff_member(branch_id, body, actor_of(principal))
    return StaffAdded(staff_id=body.staff_id)


@router.get("/branches")
async def list_branches(
    service: Service, principal: Annotated[Principal, Depends(require_roles(*Role))]
) -> list[BranchView]:
    """The branches the token covers (every branch for a chain-wide token)."""
    async with service.handlers.driver.transaction() as unit:
        rows = await queries.branches(unit)
    return [BranchView.model_validate(row) for row in rows if principal.can_access_branch(row["branch_id"])]


@router.get("/branches/{branch_id}")
async def read_branch(branch_id: str, service: Service, principal: AnyStaff) -> BranchView:
    async with service.handlers.driver.transaction() as unit:
        row = await queries.branch(unit, branch_id)
    if row is None:
        raise NotFoundError(f"branch {branch_id} does not exist")
    return BranchView.model_validate(row)


@router.get("/branches/{branch_id}/staff")
async def list_staff(branch_id: str, service: Service, principal: AnyStaff) -> list[StaffMemberView]:
    async with service.handlers.driver.transaction() as unit:
        rows = await queries.staff_of(unit, branch_id)
    return [StaffMemberView.model_validate(row) for row in rows]


@router.get("/branches/{branch_id}/staff/{staff_id}")
async def read_staff_member(
    branch_id: str, staff_id: str, service: Service, principal: AnyStaff
) -> StaffMemberView:
    async with service.handlers.driver.transaction() as unit:
        row = await queries.staff_member(unit, branch_id, staff_id)
    if row is None:
        raise NotFoundError(f"branch {branch_id} has no staff member {staff_id}")
    return StaffMemberView.model_validate(row)
