"""Process definitions: the chain's (owner) and a branch's own (its managers), each PUT publishing a new
version unless it repeats the newest; the definition a branch's new orders take; any version by number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from pitlane_events.types import StaffRole
from pitlane_events.workorder import ProcessRef, ProcessScope
from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_platform.db import Unit
from pitlane_platform.errors import NotFoundError
from pitlane_platform.problems import problem_response, problem_type_of
from pitlane_workorder.adapters import process_definitions, queries
from pitlane_workorder.domain.process import ProcessDefinition, ProcessRuleBroken, definition_from
from pitlane_workorder.entrypoints.http.common import AnyStaff, BranchAdmin, Service
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1", tags=["process definitions"])

Owner = Annotated[Principal, Depends(require_roles(Role.OWNER))]
Staff = Annotated[Principal, Depends(require_roles(*Role))]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


class StageView(BaseModel):
    mandatory: bool
    photos_required: bool
    time_limit_minutes: int | None
    responsible_role: StaffRole


class ProcessDefinitionView(BaseModel):
    scope: ProcessScope = Field(description="chain, branch (its own, replacing the chain's there), built_in")
    branch_id: str | None
    version: int = Field(description="0 for the built-in definition")
    published_at: datetime | None
    published_by: str | None
    stages: dict[str, StageView] = Field(description="per stage, in the order an order passes them")
    created: bool | None = Field(
        default=None, description="on a PUT: false when the definition repeated the newest version"
    )


async def _publish(
    service: Service, scope: ProcessScope, branch_id: str, body: commands.DefineProcess, by: str
) -> ProcessDefinitionView:
    # Checked whole before anything is stored (a 422 names the stage and setting), and stored complete.
    settings = definition_from(ProcessRef(scope=scope, version=1), body.stages.model_dump(), "body.stages")
    async with service.handlers.driver.transaction() as unit:
        if scope is ProcessScope.BRANCH:
            await _existing(unit, branch_id)
        definition, row, created = await process_definitions.publish(
            unit, scope, branch_id, settings.settings(), at=service.handlers.clock.now(), by=by
        )
    return _view(definition, branch_id, row, created=created)


async def _existing(unit: Unit, branch_id: str) -> None:
    if await queries.branch(unit, branch_id) is None:
        raise NotFoundError(f"branch {branch_id} does not exist")


def _view(
    definition: ProcessDefinition, branch_id: str | None, row: dict[str, Any] | None, **extra: Any
) -> ProcessDefinitionView:
    return ProcessDefinitionView.model_validate(
        {**process_definitions.view(definition, branch_id, row), **extra}
    )


@router.put("/process-definition")
async def define_chain_process(
    body: commands.DefineProcess, service: Service, principal: Owner
) -> ProcessDefinitionView:
    """The chain's definition: every branch without one of its own takes it for the orders it opens next."""
    return await _publish(service, ProcessScope.CHAIN, "", body, principal.user_id)


@router.get("/process-definition")
async def chain_process(service: Service, principal: Staff) -> ProcessDefinitionView:
    """The chain's newest version (the built-in definition while the chain has none)."""
    async with service.handlers.driver.transaction() as unit:
        definition, row = await process_definitions.newest_of_chain(unit)
    return _view(definition, None, row)


@router.get("/process-definition/versions/{version}")
async def chain_process_version(
    version: Version, service: Service, principal: Staff
) -> ProcessDefinitionView:
    ref = ProcessRef(scope=ProcessScope.CHAIN, version=version)
    async with service.handlers.driver.transaction() as unit:
        definition, row = await process_definitions.version(unit, ref, "")
    return _view(definition, None, row)


@router.put("/branches/{branch_id}/process-definition")
async def define_branch_process(
    branch_id: str, body: commands.DefineProcess, service: Service, principal: BranchAdmin
) -> ProcessDefinitionView:
    """The branch's own definition, replacing the chain's for the orders it opens next."""
    return await _publish(service, ProcessScope.BRANCH, branch_id, body, principal.user_id)


@router.get("/branches/{branch_id}/process-definition")
async def branch_process(branch_id: str, service: Service, principal: AnyStaff) -> ProcessDefinitionView:
    """What the branch's next order runs on: its own newest version, else the chain's, else the built-in."""
    async with service.handlers.driver.transaction() as unit:
        await _existing(unit, branch_id)
        definition, row = await process_definitions.effective(unit, branch_id)
    return _view(definition, branch_id, row)


@router.get("/branches/{branch_id}/process-definition/versions/{version}")
async def branch_process_version(
    branch_id: str, version: Version, service: Service, principal: AnyStaff
) -> ProcessDefinitionView:
    ref = ProcessRef(scope=ProcessScope.BRANCH, version=version)
    async with service.handlers.driver.transaction() as unit:
        definition, row = await process_definitions.version(unit, ref, branch_id)
    return _view(definition, branch_id, row)


async def rule_broken_problem(request: Request, error: ProcessRuleBroken) -> Response:
    """A 409 naming the rule, in `detail` and as `rule` (`check_in.photos_required`) for clients to act on."""
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error),
        problem_type=problem_type_of(ProcessRuleBroken),
        rule=error.rule,
    )
