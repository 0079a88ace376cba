"""The chain's rules: every kind's settings as they apply at a branch (GET), the chain's own (PUT, owner) and a
branch's override (PUT, its manager); a change re-evaluates every vehicle it reaches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import ValidationError

from pitlane_platform.auth import require_branch_access
from pitlane_platform.errors import InvalidInputError
from pitlane_reminder.entrypoints.http.common import BranchAdmin, ChainAdmin, Context, Reader, actor_of
from pitlane_reminder.service_layer.rules import (
    SETTINGS,
    EffectiveRules,
    RuleKind,
    effective_rules,
    save_rule,
)

router = APIRouter(prefix="/v1", tags=["rules"])


@router.get("/rules")
async def get_rules(context: Context, principal: Reader, branch_id: str | None = None) -> EffectiveRules:
    """Every rule as it applies at `branch_id` (its overrides over the chain's settings), or the chain's."""
    if branch_id is not None:
        require_branch_access(principal, branch_id)
    async with context.service.driver.transaction() as unit:
        return await effective_rules(unit, branch_id)


async def _save(
    context: Context, kind: RuleKind, branch_id: str | None, body: dict[str, Any], by: str
) -> EffectiveRules:
    try:
        settings = SETTINGS[kind].model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in ("body", *first["loc"]))
        raise InvalidInputError(field, first["msg"]) from None
    service = context.service
    async with service.driver.transaction() as unit:
        version = await save_rule(unit, kind, branch_id, settings, at=service.clock.now(), by=by)
        await service.rule_changed(unit, kind, branch_id, version)
        return await effective_rules(unit, branch_id)


@router.put("/rules/{kind}")
async def save_chain_rule(
    kind: RuleKind, context: Context, principal: ChainAdmin, body: Annotated[dict[str, Any], Body()]
) -> EffectiveRules:
    """The chain's settings of one rule (every field optional: the defaults fill the rest)."""
    return await _save(context, kind, None, body, actor_of(principal).id)


@router.put("/branches/{branch_id}/rules/{kind}")
async def save_branch_rule(
    branch_id: str,
    kind: RuleKind,
    context: Context,
    principal: BranchAdmin,
    body: Annotated[dict[str, Any], Body()],
) -> EffectiveRules:
    """A branch's own settings of one rule, replacing the chain's for that branch."""
    require_branch_access(principal, branch_id)
    return await _save(context, kind, branch_id, body, actor_of(principal).id)
