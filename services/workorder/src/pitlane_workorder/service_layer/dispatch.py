"""Dispatch suggestions and technicians' skills. A suggestion is signed into a token the advisor's assignment
sends back: the ranking recorded with the choice (TechnicianAssigned.suggestion) is the one the service
showed, not one a client made up, and nothing is stored per suggestion."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pitlane_events.types import LineCategory
from pitlane_events.workorder import DispatchSuggestion
from pitlane_platform.db import Unit
from pitlane_platform.errors import InvalidInputError, NotFoundError
from pitlane_platform.security.links import claims_of, sign_claims
from pitlane_workorder.adapters import calendar, dispatch, queries
from pitlane_workorder.domain.dispatch import Candidate, rank
from pitlane_workorder.domain.shifts import ShiftTime
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.service_layer.availability import shift_time

TOKEN_USE = "dispatch-suggestion"
# A ranking older than this no longer says who is free: the advisor asks for a new one.
VALID_FOR = timedelta(hours=1)


def work_needed(order: WorkOrder) -> tuple[LineCategory, ...]:
    """The kinds of work the order needs: those expected at check-in and those of its add-ons."""
    needed = set(order.facts.work_categories) | {add_on.category for add_on in order.add_ons.values()}
    return tuple(category for category in LineCategory if category in needed)


async def suggest(unit: Unit, order: WorkOrder, branch_id: str, now: datetime) -> DispatchSuggestion:
    needed = work_needed(order)
    # The booking calendar's roster. While the branch plans by bays alone nobody's time is known; once it
    # keeps shifts, a technician without a shift today is not at work (nobody is, on a day without any).
    shifts = await shift_time(unit, branch_id, now)
    keeps_shifts = await calendar.plans_by_shifts(unit, branch_id)
    load = await dispatch.open_orders(unit, branch_id)
    candidates = []
    for row in await dispatch.technicians(unit, branch_id):
        on_shift, minutes_left = _at_work(shifts.get(row["staff_id"]), keeps_shifts=keeps_shifts)
        candidates.append(
            Candidate(
                technician_id=row["staff_id"],
                skills=frozenset(LineCategory(skill) for skill in row["skills"]),
                open_orders=load.get(row["staff_id"], 0),
                minutes_left_on_shift=minutes_left,
                on_shift=on_shift,
            )
        )
    return DispatchSuggestion(suggested_at=now, work_needed=needed, ranking=rank(candidates, needed))


def _at_work(shift: ShiftTime | None, *, keeps_shifts: bool) -> tuple[bool, int | None]:
    """(on shift now, minutes of the day's shift left); nobody's time is known at a branch without shifts."""
    if shift is not None:
        return shift.on_shift, shift.remaining_minutes
    return (False, 0) if keeps_shifts else (True, None)


def sign(secret: str, work_order_id: str, suggestion: DispatchSuggestion) -> str:
    return sign_claims(secret, TOKEN_USE, {"wo": work_order_id, "s": suggestion.model_dump(mode="json")})


def verified(secret: str, token: str, work_order_id: str, now: datetime) -> DispatchSuggestion:
    """The suggestion a token carries, or a 422 naming `body.suggestion_token`: forged, of another order, or
    older than VALID_FOR."""
    field = "body.suggestion_token"
    claims: dict[str, Any] | None = claims_of(secret, token, TOKEN_USE)
    if claims is None or claims.get("wo") != work_order_id:
        raise InvalidInputError(field, "not a dispatch suggestion of this work order")
    try:
        suggestion = DispatchSuggestion.model_validate(claims["s"])
    except (KeyError, ValidationError):
        raise InvalidInputError(field, "not a dispatch suggestion of this work order") from None
    if now - suggestion.suggested_at > VALID_FOR:
        raise InvalidInputError(field, "the suggestion is over an hour old; ask for a new one")
    return suggestion


async def set_skills(
    unit: Unit, branch_id: str, staff_id: str, skills: list[LineCategory], now: datetime
) -> None:
    role = await queries.staff_role(unit, branch_id, staff_id)
    if role is None:
        raise NotFoundError(f"branch {branch_id} has no staff member {staff_id}")
    if role != "technician":
        raise InvalidInputError("path.staff_id", f"{staff_id} is a {role}; only technicians carry skills")
    await dispatch.set_skills(unit, branch_id, staff_id, sorted({skill.value for skill in skills}), now)
