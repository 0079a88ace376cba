"""Where a branch's staff are reached: the addresses the chain gives a manager for the branch's alerts (a
stage of a work order past its time limit). Staff come from workorder (StaffMemberAdded); their addresses
only from here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from pitlane_events.identifiers import MobileInput
from pitlane_events.types import StaffRole
from pitlane_notification.adapters import queries
from pitlane_notification.entrypoints.http.common import BranchAdmin, Context
from pitlane_notification.service_layer import staff_alerts
from pitlane_notification.service_layer.requests import staff_recipient
from pitlane_platform.auth import require_branch_access
from pitlane_platform.db import Unit
from pitlane_platform.errors import NotFoundError
from pitlane_platform.mail import MailAddress

router = APIRouter(prefix="/v1/branches", tags=["staff"])


class StaffContact(BaseModel):
    phone: MobileInput | None = None
    email: MailAddress | None = None
    wechat_open_id: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")] | None
    ) = None
    locale: Literal["zh-CN", "en"] = "zh-CN"

    @model_validator(mode="after")
    def _an_address(self) -> StaffContact:
        if not (self.phone or self.email or self.wechat_open_id):
            raise ValueError("give a phone, an e-mail address or a WeChat open id")
        return self


class StaffContactView(BaseModel):
    branch_id: str
    staff_id: str
    role: StaffRole
    phone: str | None
    email: str | None
    wechat_open_id: str | None
    locale: str


async def _view(unit: Unit, branch_id: str, staff_id: str) -> StaffContactView:
    member = await staff_alerts.staff_member(unit, branch_id, staff_id)
    if member is None:
        raise NotFoundError(f"branch {branch_id} has no staff member {staff_id}")
    contact = await queries.contact(unit, staff_recipient(staff_id)) or {}
    return StaffContactView(
        branch_id=branch_id,
        staff_id=staff_id,
        role=StaffRole(member["role"]),
        phone=contact.get("phone"),
        email=contact.get("email"),
        wechat_open_id=contact.get("wechat_open_id"),
        locale=contact.get("locale") or "zh-CN",
    )


@router.put("/{branch_id}/staff/{staff_id}/contact")
async def set_staff_contact(
    branch_id: str, staff_id: str, body: StaffContact, context: Context, principal: BranchAdmin
) -> StaffContactView:
    """Replaces the staff member's addresses; the channel order and quiet hours are the customers'."""
    require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        await _view(unit, branch_id, staff_id)
        await staff_alerts.set_contact(
            unit,
            staff_id,
            phone=body.phone,
            email=body.email,
            wechat_open_id=body.wechat_open_id,
            locale=body.locale,
        )
        return await _view(unit, branch_id, staff_id)


@router.get("/{branch_id}/staff/{staff_id}/contact")
async def staff_contact(
    branch_id: str, staff_id: str, context: Context, principal: BranchAdmin
) -> StaffContactView:
    require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        return await _view(unit, branch_id, staff_id)
