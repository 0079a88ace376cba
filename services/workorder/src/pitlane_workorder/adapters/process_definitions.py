"""The chain's and branches' process definitions, every version kept (an order runs on the one it was opened
under, for the whole of its life), as fixed SQL on the driver."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_events.workorder import ProcessRef, ProcessScope
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.errors import NotFoundError
from pitlane_workorder.domain.process import BUILT_IN, ProcessDefinition, definition_from

CHAIN = ""  # the branch_id of the chain's own versions

# A branch's own definition replaces the chain's there; the newest version of whichever applies.
_EFFECTIVE = """
    SELECT scope, version, stages, published_at, published_by FROM process_definitions
    WHERE (scope = 'branch' AND branch_id = %(branch_id)s) OR scope = 'chain'
    ORDER BY scope = 'branch' DESC, version DESC LIMIT 1
"""
_VERSION = """
    SELECT scope, version, stages, published_at, published_by FROM process_definitions
    WHERE scope = %(scope)s AND branch_id = %(branch_id)s AND version = %(version)s
"""
_NEWEST_OF_SCOPE = """
    SELECT scope, version, stages, published_at, published_by FROM process_definitions
    WHERE scope = %(scope)s AND branch_id = %(branch_id)s ORDER BY version DESC LIMIT 1
"""
# Publications of one scope one at a time: each takes the next version number.
_LOCK_SCOPE = "SELECT pg_advisory_xact_lock(hashtextextended('workorder.process:' || %(key)s, 0))"
_PUBLISH = """
    INSERT INTO process_definitions (scope, branch_id, version, stages, published_at, published_by)
    VALUES (%(scope)s, %(branch_id)s, %(version)s, %(stages)s, %(at)s, %(by)s)
    RETURNING scope, version, stages, published_at, published_by
"""


def _owner(scope: ProcessScope, branch_id: str) -> str:
    return branch_id if scope is ProcessScope.BRANCH else CHAIN


def _definition(row: dict[str, Any]) -> ProcessDefinition:
    ref = ProcessRef(scope=ProcessScope(row["scope"]), version=row["version"])
    return definition_from(ref, row["stages"], "stages")


def view(definition: ProcessDefinition, branch_id: str | None, row: dict[str, Any] | None) -> dict[str, Any]:
    """What the API shows of a version: whose it is, which, when and by whom published, and its stages."""
    return {
        "scope": definition.ref.scope.value,
        "branch_id": branch_id if definition.ref.scope is ProcessScope.BRANCH else None,
        "version": definition.ref.version,
        "published_at": row["published_at"] if row else None,
        "published_by": row["published_by"] if row else None,
        "stages": definition.settings(),
    }


async def effective(unit: Unit, branch_id: str) -> tuple[ProcessDefinition, dict[str, Any] | None]:
    """The definition a work order opened at the branch now runs on: the branch's newest version, else the
    chain's, else the built-in one (with no row)."""
    rows = await fetch_on_driver(
        unit, "effective process", _EFFECTIVE, {"branch_id": branch_id}, as_dicts=True
    )
    return (_definition(rows[0]), rows[0]) if rows else (BUILT_IN, None)


async def newest_of_chain(unit: Unit) -> tuple[ProcessDefinition, dict[str, Any] | None]:
    rows = await fetch_on_driver(
        unit, "newest process", _NEWEST_OF_SCOPE, {"scope": "chain", "branch_id": CHAIN}, as_dicts=True
    )
    return (_definition(rows[0]), rows[0]) if rows else (BUILT_IN, None)


async def version(
    unit: Unit, ref: ProcessRef, branch_id: str
) -> tuple[ProcessDefinition, dict[str, Any] | None]:
    """The version `ref` names, as the order of `branch_id` sees it (a branch-scoped ref is that branch's)."""
    if ref.scope is ProcessScope.BUILT_IN:
        return BUILT_IN, None
    rows = await fetch_on_driver(
        unit,
        "process version",
        _VERSION,
        {"scope": ref.scope.value, "branch_id": _owner(ref.scope, branch_id), "version": ref.version},
        as_dicts=True,
    )
    if not rows:
        where = f" of branch {branch_id}" if ref.scope is ProcessScope.BRANCH else ""
        raise NotFoundError(f"no {ref.scope.value} process definition v{ref.version}{where}")
    return _definition(rows[0]), rows[0]


async def publish(
    unit: Unit, scope: ProcessScope, branch_id: str, stages: dict[str, Any], *, at: datetime, by: str
) -> tuple[ProcessDefinition, dict[str, Any], bool]:
    """Publish `stages` as the scope's next version, unless they are its newest version's already (a PUT
    sent twice makes one version); True when a version was made."""
    owner = _owner(scope, branch_id)
    await execute_on_driver(unit, "lock process scope", _LOCK_SCOPE, {"key": f"{scope.value}:{owner}"})
    rows = await fetch_on_driver(
        unit, "newest process", _NEWEST_OF_SCOPE, {"scope": scope.value, "branch_id": owner}, as_dicts=True
    )
    if rows and rows[0]["stages"] == stages:
        return _definition(rows[0]), rows[0], False
    published = await fetch_on_driver(
        unit,
        "publish process",
        _PUBLISH,
        {
            "scope": scope.value,
            "branch_id": owner,
            "version": rows[0]["version"] + 1 if rows else 1,
            "stages": Jsonb(stages),
            "at": at,
            "by": by,
        },
        as_dicts=True,
    )
    return _definition(published[0]), published[0], True
