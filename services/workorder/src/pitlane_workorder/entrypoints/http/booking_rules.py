"""Booking rules (ADR 25): the chain's defaults (the owner's) and each branch's overrides (the owner's, or
the branch manager's), read by every member of staff with the rules the branch books by."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends

from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_workorder.adapters.calendar import CHAIN_SCOPE
from pitlane_workorder.domain.booking_rules import VISIT_TYPE_CAPS, BookingRules
from pitlane_workorder.entrypoints.http.calendar_views import (
    BranchRulesView,
    DateOverrideView,
    EffectiveRules,
)
from pitlane_workorder.entrypoints.http.common import AnyStaff, BranchAdmin, Service, actor_of
from pitlane_workorder.service_layer.calendar_commands import BookingRulesInput

router = APIRouter(prefix="/v1", tags=["staff"])
ChainOwner = Annotated[Principal, Depends(require_roles(Role.OWNER))]
ChainStaff = Annotated[Principal, Depends(require_roles(*Role))]


@router.put("/booking-rules", status_code=204)
async def set_chain_rules(body: BookingRulesInput, service: Service, principal: ChainOwner) -> None:
    """The chain's defaults for every branch; a field left out is the built-in default."""
    await service.calendar.set_rules(CHAIN_SCOPE, body, actor_of(principal))


@router.get("/booking-rules")
async def read_chain_rules(service: Service, principal: ChainStaff) -> BookingRulesInput:
    return BookingRulesInput.model_validate(await service.calendar.chain_rules())


@router.put("/branches/{branch_id}/booking-rules", status_code=204)
async def set_branch_rules(
    branch_id: str, body: BookingRulesInput, service: Service, principal: BranchAdmin
) -> None:
    """The branch's overrides of the chain's rules; a field left out is the chain's. Dates merge by date."""
    await service.calendar.set_rules(branch_id, body, actor_of(principal))


@router.get("/branches/{branch_id}/booking-rules")
async def read_branch_rules(branch_id: str, service: Service, principal: AnyStaff) -> BranchRulesView:
    chain, branch, effective = await service.calendar.rules(branch_id)
    return BranchRulesView(
        branch_id=branch_id,
        chain=BookingRulesInput.model_validate(chain),
        branch=BookingRulesInput.model_validate(branch),
        effective=effective_view(effective),
    )


def effective_view(rules: BookingRules) -> EffectiveRules:
    def minutes(span: timedelta) -> int:
        return int(span.total_seconds() // 60)

    caps = {
        name: rules.max_per_visit_type_per_day.get(visit_type) for visit_type, name in VISIT_TYPE_CAPS.items()
    }
    return EffectiveRules(
        min_notice_minutes=minutes(rules.min_notice),
        max_days_ahead=rules.max_days_ahead,
        buffer_before_minutes=minutes(rules.buffer_before),
        buffer_after_minutes=minutes(rules.buffer_after),
        max_per_day=rules.max_per_day,
        max_per_service_per_day=dict(rules.max_per_service_per_day),
        max_waiting_per_day=caps["max_waiting_per_day"],
        max_drop_off_per_day=caps["max_drop_off_per_day"],
        hold_minutes=minutes(rules.hold),
        waitlist_hold_minutes=minutes(rules.waitlist_hold),
        no_show_threshold=rules.no_show_threshold,
        confirmation_deadline_minutes=minutes(rules.confirmation_deadline),
        dates=[
            DateOverrideView(
                on=override.on,
                closed=override.closed,
                as_weekday=override.as_weekday,
                opening_hours=list(override.hours),
                note=override.note,
            )
            for _, override in sorted(rules.dates.items())
        ],
    )
