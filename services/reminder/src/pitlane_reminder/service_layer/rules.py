"""The chain's rules (规则引擎): each kind's settings for the whole chain, overridable per branch, over the API.
No saved setting: the built-in defaults below. A branch's override replaces the chain's setting of that kind
as a whole (what the branch manager saw is what applies)."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_reminder.domain.ladder import Ladder
from pitlane_reminder.domain.rules import IntervalMode, MaintenanceRule

CHAIN = ""  # the branch_id of the chain's own settings

Offsets = Annotated[list[Annotated[int, Field(ge=-365, le=365)]], Field(min_length=1, max_length=10)]
Channel = Literal["wechat", "sms", "email"] | None
Template = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] | None


class RuleKind(StrEnum):
    MAINTENANCE = "maintenance"
    INSURANCE_RENEWAL = "insurance_renewal"
    ANNUAL_INSPECTION = "annual_inspection"
    DECLINED_WORK = "declined_work"
    NPS_DETRACTOR = "nps_detractor"
    WIN_BACK = "win_back"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The channel and template notification uses for the customer's message; unset: notification's own
    # choice (its channel order) and its template for reminders.
    channel: Channel = None
    template: Template = None


class _Laddered(_Settings):
    ladder: Offsets = Field(default_factory=lambda: [-30, -7, 0, 7, 30])

    @field_validator("ladder")
    @classmethod
    def _a_ladder(cls, value: list[int]) -> list[int]:
        Ladder(tuple(value))  # refuses offsets that are not strictly increasing
        return value

    @cached_property  # worked out once per rule, not once per vehicle of a re-evaluation
    def steps(self) -> Ladder:
        return Ladder(tuple(self.ladder))


class MaintenanceSettings(_Laddered):
    """Service due at the last service's mileage + `km_interval`, or `months_interval` after it, whichever
    comes first; rolling (from when the work was done) or fixed (on the schedule from the first service)."""

    km_interval: Annotated[int, Field(ge=500, le=100_000)] = 5000
    months_interval: Annotated[int, Field(ge=1, le=60)] = 6
    mode: Literal["rolling", "fixed"] = "rolling"

    @cached_property
    def rule(self) -> MaintenanceRule:
        return MaintenanceRule(
            km_interval=self.km_interval,
            months_interval=self.months_interval,
            mode=IntervalMode(self.mode),
            ladder=self.steps,
        )


class RenewalSettings(_Laddered):
    """Insurance (交强险, 商业险): due `lead_days` before the policy expires; a follow-up task for the
    advisor on that day as well as the customer's message."""

    lead_days: Annotated[int, Field(ge=1, le=120)] = 30
    task: bool = True
    ladder: Offsets = Field(default_factory=lambda: [0, 23])  # 30 days and 7 days before expiry


class InspectionSettings(_Laddered):
    """The annual inspection (年检): due `lead_days` before its deadline."""

    lead_days: Annotated[int, Field(ge=1, le=120)] = 30
    ladder: Offsets = Field(default_factory=lambda: [0, 23])


class DeclinedWorkSettings(_Settings):
    """A declined add-on is followed up `after_days` later: a task for the advisor and a message."""

    after_days: Annotated[int, Field(ge=1, le=365)] = 14
    task: bool = True
    message: bool = True


class DetractorSettings(_Settings):
    """An NPS answer of 0–6: a service-recovery task for the branch's manager, due within `within_hours`."""

    within_hours: Annotated[int, Field(ge=1, le=168)] = 24


class WinBackSettings(_Settings):
    """No visit for `after_days`: a task for the advisor who last served the car (off by default)."""

    enabled: bool = False
    after_days: Annotated[int, Field(ge=30, le=1825)] = 365


SETTINGS: dict[RuleKind, type[_Settings]] = {
    RuleKind.MAINTENANCE: MaintenanceSettings,
    RuleKind.INSURANCE_RENEWAL: RenewalSettings,
    RuleKind.ANNUAL_INSPECTION: InspectionSettings,
    RuleKind.DECLINED_WORK: DeclinedWorkSettings,
    RuleKind.NPS_DETRACTOR: DetractorSettings,
    RuleKind.WIN_BACK: WinBackSettings,
}


class EffectiveRules(BaseModel):
    """Every kind's settings as they apply at one branch."""

    maintenance: MaintenanceSettings
    insurance_renewal: RenewalSettings
    annual_inspection: InspectionSettings
    declined_work: DeclinedWorkSettings
    nps_detractor: DetractorSettings
    win_back: WinBackSettings
    overridden: list[RuleKind] = Field(default_factory=list)


async def effective_rules(unit: Unit, branch_id: str | None) -> EffectiveRules:
    return (await effective_rules_at(unit, [branch_id]))[branch_id]


async def effective_rules_at(
    unit: Unit, branch_ids: Collection[str | None]
) -> dict[str | None, EffectiveRules]:
    """The rules as they apply at each of these branches (None: a vehicle with no branch yet, the chain's)."""
    rows = await fetch_on_driver(
        unit,
        "rules",
        "SELECT kind, branch_id, settings FROM rules WHERE branch_id = ANY(%(branches)s)",
        {"branches": [CHAIN, *(branch_id or CHAIN for branch_id in branch_ids)]},
        as_dicts=True,
    )
    chain = {row["kind"]: row["settings"] for row in rows if row["branch_id"] == CHAIN}
    return {branch_id: _at_branch(chain, rows, branch_id or CHAIN) for branch_id in branch_ids}


def _at_branch(chain: dict[str, Any], rows: list[dict[str, Any]], branch_id: str) -> EffectiveRules:
    """The chain's settings, with the branch's overrides over them."""
    own = {row["kind"]: row["settings"] for row in rows if row["branch_id"] == branch_id != CHAIN}
    chosen = {**chain, **own}
    return EffectiveRules(
        **{kind.value: model.model_validate(chosen.get(kind.value, {})) for kind, model in SETTINGS.items()},
        overridden=[RuleKind(kind) for kind in sorted(own)],
    )


async def save_rule(
    unit: Unit, kind: RuleKind, branch_id: str | None, settings: _Settings, *, at: datetime, by: str
) -> int:
    """Save the chain's (branch_id None) or a branch's settings of one kind; returns the new version."""
    row = await execute_on_driver(
        unit,
        "save rule",
        """
        INSERT INTO rules (kind, branch_id, settings, version, updated_at, updated_by)
        VALUES (%(kind)s, %(branch)s, %(settings)s::jsonb, 1, %(at)s, %(by)s)
        ON CONFLICT (kind, branch_id) DO UPDATE SET settings = excluded.settings,
            version = rules.version + 1, updated_at = excluded.updated_at, updated_by = excluded.updated_by
        RETURNING version
        """,
        {
            "kind": kind.value,
            "branch": branch_id or CHAIN,
            "settings": json.dumps(settings.model_dump(mode="json")),
            "at": at,
            "by": by,
        },
    )
    assert row is not None
    return int(row[0])
