"""Branches and their staff: opening a branch and adding staff (branch admins), reading the staff list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from pitlane_platform.auth import Principal, require_branch_access, require_roles
from pitlane_workorder.adapters import queries
from pitlane_workorder.entrypoints.http.common import BRANCH_ADMINS, AnyStaff, BranchAdmin, Service, actor_of
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1", tags=["staff"])


@router.post("/branches", status_code=201)
async def open_branch(
    body: commands.OpenBranch,
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*BRANCH_ADMINS))],
) -> dict[str, str]:
    require_branch_access(principal, body.branch_id)
    await service.handlers.open_branch(body, actor_of(principal))
    return {"branch_id": body.branch_id}


@router.post("/branches/{branch_id}/staff", status_code=201)
async def add_staff_member(
    branch_id: str,
    body: commands.AddStaffMember,
    service: Service,
    principal: BranchAdmin,
) -> dict[str, str]:
    await service.handlers.add_staff_member(branch_id, body, actor_of(principal))
    return {"staff_id": body.staff_id}


@router.get("/branches/{branch_id}/staff")
async def list_staff(branch_id: str, service: Service, principal: AnyStaff) -> list[dict[str, Any]]:
    async with service.handlers.driver.transaction() as unit:
        return await queries.staff_of(unit, branch_id)
