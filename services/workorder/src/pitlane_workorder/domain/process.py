"""A chain's standard procedure (SOP, 流程): the stages a work order passes, which of them may be skipped,
where photos are required, who answers for each stage and how long it may take.

A definition is published per chain, or per branch (replacing the chain's there), in numbered versions that
never change; an order runs on the version it was opened under (WorkOrderOpened names it). The built-in
definition is today's fixed procedure: nothing required beyond the state machine, no time limits — what
every order ran before chains defined their own, and what a chain that defines none still runs.

A command a definition forbids raises ProcessRuleBroken (409) naming the rule, e.g. `check_in.photos_required`.
Decisions: ADR 28.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from pitlane_events.types import StaffRole
from pitlane_events.workorder import BUILT_IN_PROCESS, ProcessRef, ProcessScope, StageRecord
from pitlane_events.workorder import ProcessStage as Stage
from pitlane_platform.errors import ConflictError, InvalidInputError

# QC cannot be skipped, nor can the stages the state machine leads through; a chain may only make the
# check-in inspection (环车检查) optional or required.
SKIPPABLE = frozenset({Stage.INSPECTION})
# Stages whose command carries photos: check-in, its inspection points, each progress step, each add-on.
TAKES_PHOTOS = frozenset({Stage.CHECK_IN, Stage.INSPECTION, Stage.REPAIR, Stage.ADD_ON_APPROVAL})
# Check-in and inspection happen in the one check-in command: they take no time to run late.
INSTANT = frozenset({Stage.CHECK_IN, Stage.INSPECTION})
MAX_TIME_LIMIT_MINUTES = 7 * 24 * 60
PASSAGES = UUID("6b1f8e0e-0d52-5c8a-9c3e-7f1d0b6a2e41")  # the namespace of stage passages' ids

DEFAULT_ROLES: Mapping[Stage, StaffRole] = {
    Stage.CHECK_IN: StaffRole.ADVISOR,
    Stage.INSPECTION: StaffRole.ADVISOR,
    Stage.DISPATCH: StaffRole.ADVISOR,
    Stage.REPAIR: StaffRole.TECHNICIAN,
    Stage.ADD_ON_APPROVAL: StaffRole.ADVISOR,
    Stage.QUALITY_CHECK: StaffRole.MANAGER,
    Stage.SETTLEMENT: StaffRole.ADVISOR,
    Stage.HAND_OVER: StaffRole.ADVISOR,
}


class ProcessRuleBroken(ConflictError):
    """The order's process definition forbids the command; `rule` names the rule (`repair.photos_required`)."""

    title = "Process rule broken"

    def __init__(self, rule: str, process: ProcessRef, message: str) -> None:
        super().__init__(f"{message} (rule {rule} of the {describe(process)})")
        self.rule = rule


def describe(process: ProcessRef) -> str:
    if process.scope is ProcessScope.BUILT_IN:
        return "built-in process"
    return f"{process.scope.value}'s process definition v{process.version}"


@dataclass(frozen=True)
class StageRule:
    responsible_role: StaffRole
    mandatory: bool = True
    photos_required: bool = False
    time_limit: timedelta | None = None


@dataclass(frozen=True)
class ProcessDefinition:
    ref: ProcessRef
    rules: Mapping[Stage, StageRule]

    def rule(self, stage: Stage) -> StageRule:
        return self.rules[stage]

    def due_at(self, passage: StagePassage) -> datetime | None:
        limit = self.rules[passage.stage].time_limit
        return passage.entered_at + limit if limit is not None else None

    def settings(self) -> dict[str, dict[str, Any]]:
        """The definition as stored and shown: per stage, in the order stages are passed."""
        return {
            stage.value: {
                "mandatory": rule.mandatory,
                "photos_required": rule.photos_required,
                "time_limit_minutes": int(rule.time_limit.total_seconds() // 60) if rule.time_limit else None,
                "responsible_role": rule.responsible_role.value,
            }
            for stage, rule in self.rules.items()
        }

    # The rules of each command ---------------------------------------------------------------------------

    def check_check_in(self, photo_hashes: Sequence[str], inspection_photos: Sequence[Sequence[str]]) -> None:
        """`inspection_photos`: the photos of each inspection point."""
        if self.rules[Stage.CHECK_IN].photos_required and not photo_hashes:
            self._broken(Stage.CHECK_IN, "photos_required", "a check-in needs at least one photo of the car")
        if self.rules[Stage.INSPECTION].mandatory and not inspection_photos:
            self._broken(
                Stage.INSPECTION, "mandatory", "a check-in needs its inspection (at least one point)"
            )
        if self.rules[Stage.INSPECTION].photos_required and not all(inspection_photos):
            self._broken(Stage.INSPECTION, "photos_required", "every inspection point needs a photo")

    def check_progress(self, attachments: Sequence[object]) -> None:
        if self.rules[Stage.REPAIR].photos_required and not attachments:
            self._broken(Stage.REPAIR, "photos_required", "each progress step needs a photo or video")

    def check_add_on(self, photo_hashes: Sequence[str]) -> None:
        if self.rules[Stage.ADD_ON_APPROVAL].photos_required and not photo_hashes:
            self._broken(
                Stage.ADD_ON_APPROVAL, "photos_required", "an add-on needs a photo to show the customer"
            )

    def _broken(self, stage: Stage, setting: str, message: str) -> None:
        raise ProcessRuleBroken(f"{stage.value}.{setting}", self.ref, message)


BUILT_IN = ProcessDefinition(
    BUILT_IN_PROCESS,
    {stage: StageRule(DEFAULT_ROLES[stage], mandatory=stage not in SKIPPABLE) for stage in Stage},
)


def definition_from(
    ref: ProcessRef, settings: Mapping[str, Mapping[str, Any]], field: str
) -> ProcessDefinition:
    """A definition from its settings per stage (a stage or setting left out takes the built-in value), or
    InvalidInputError naming `<field>.<stage>.<setting>` for a setting no stage of that kind can have."""
    rules: dict[Stage, StageRule] = {}
    for stage in Stage:
        given = settings.get(stage.value) or {}
        built_in = BUILT_IN.rules[stage]
        mandatory = given.get("mandatory")
        minutes = given.get("time_limit_minutes")
        at = f"{field}.{stage.value}"
        if mandatory is False and stage not in SKIPPABLE:
            what = "quality control" if stage is Stage.QUALITY_CHECK else f"the {stage.value} stage"
            raise InvalidInputError(f"{at}.mandatory", f"{what} cannot be skipped")
        if given.get("photos_required") and stage not in TAKES_PHOTOS:
            raise InvalidInputError(f"{at}.photos_required", f"the {stage.value} stage takes no photos")
        if minutes is not None and stage in INSTANT:
            raise InvalidInputError(
                f"{at}.time_limit_minutes", f"the {stage.value} stage is done in the check-in: it has no time"
            )
        rules[stage] = replace(
            built_in,
            responsible_role=StaffRole(given.get("responsible_role") or built_in.responsible_role),
            mandatory=built_in.mandatory if mandatory is None else mandatory,
            photos_required=bool(given.get("photos_required")),
            time_limit=timedelta(minutes=minutes) if minutes is not None else None,
        )
    return ProcessDefinition(ref, rules)


# The stages an order passes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagePassage:
    """One passage of an order through a stage: the n-th QC after failed ones, the approval of one add-on."""

    stage: Stage
    occurrence: int
    entered_at: datetime
    completed_at: datetime | None = None
    add_on_id: str | None = None

    def id(self, work_order_id: str) -> str:
        """The passage's id among all orders' (its deadline timer's key, its overdue event's stream): derived,
        so whoever meets the passage again finds the same id."""
        return str(uuid5(PASSAGES, f"{work_order_id}:{self.stage.value}:{self.occurrence}"))

    def record(self, definition: ProcessDefinition) -> StageRecord:
        assert self.completed_at is not None
        return StageRecord(
            stage=self.stage,
            occurrence=self.occurrence,
            add_on_id=self.add_on_id,
            entered_at=self.entered_at,
            completed_at=self.completed_at,
            due_at=definition.due_at(self),
        )


def on_time(passage: StagePassage, due_at: datetime | None) -> bool | None:
    """Done before its deadline (a stage that takes the whole limit to the microsecond is late: its deadline
    timer fires at `due_at`); None while open or without a limit."""
    if passage.completed_at is None or due_at is None:
        return None
    return passage.completed_at < due_at
