"""What every router of analytics' HTTP API shares: the service context, who may read KPIs, the scope a
request asks for (period, branch) and how an answer is sent (JSON, or CSV for Excel).

Owners and analysts read the whole chain or any branch; a manager reads the branches of their token only:
another branch is a 403, and so is a chain-wide request (`branch_id` left out), since the chain's figures
include other branches' customers and staff.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request, Response

from pitlane_analytics.domain.periods import EmptyPeriodError, Period
from pitlane_analytics.service_layer.answers import DrillDown
from pitlane_analytics.service_layer.kpis import Kpis, Scope
from pitlane_events.inputs import BranchIdInput, DateInput
from pitlane_platform.auth import Principal, Role, require_branch_access, require_roles
from pitlane_platform.clock import Clock
from pitlane_platform.db import Unit
from pitlane_platform.errors import ForbiddenError, InvalidInputError

READERS = (Role.OWNER, Role.MANAGER, Role.ANALYST)

KPI_NAMES = (
    "return-rate",
    "customer-activity",
    "spend-per-year",
    "customer-lifetime",
    "ltv",
    "time-between-visits",
    "nps",
    "appointment-conversion",
    "staff-leaderboard",
    "popular-services",
    "campaign-roi",
    "reminder-effectiveness",
    "declined-work-recovery",
    "stage-on-time",
    "trends",
    "cohorts",
)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Excel reads a CSV as the system's code page (GBK on Chinese Windows) unless it starts with a BOM.
BYTE_ORDER_MARK = "\ufeff"
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "the answer as JSON, or its drill-down rows as CSV"}
}


@dataclass
class AnalyticsContext:
    """What the routes need, kept on `app.state.analytics` by the bootstrap."""

    kpis: Kpis
    timezone: ZoneInfo
    clock: Clock  # when a segment is saved (the runtime's: injected, so tests and demos can move it)


async def analytics(request: Request) -> AnalyticsContext:
    context: AnalyticsContext = request.app.state.analytics
    return context


Context = Annotated[AnalyticsContext, Depends(analytics)]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]


@dataclass(frozen=True)
class KpiRequest:
    scope: Scope
    output: Literal["json", "csv"]


async def kpi_request(
    context: Context,
    principal: Reader,
    start: Annotated[DateInput, Query(alias="from", description="first local day, YYYY-MM-DD")],
    end: Annotated[DateInput, Query(alias="to", description="first local day after the period, YYYY-MM-DD")],
    branch_id: Annotated[BranchIdInput | None, Query(description="one branch; left out: the chain")] = None,
    output: Annotated[
        Literal["json", "csv"], Query(alias="format", description="csv: the drill-down rows, UTF-8 with BOM")
    ] = "json",
) -> KpiRequest:
    if branch_id is None:
        if not principal.is_chain_wide:
            raise ForbiddenError(
                f"this token covers branches {', '.join(sorted(principal.branches))}: ask for one with branch_id"
            )
    else:
        require_branch_access(principal, branch_id)
    try:
        period = Period(start, end, context.timezone)
    except EmptyPeriodError:
        raise InvalidInputError("query.to", f"must be after query.from ({start.isoformat()})") from None
    return KpiRequest(scope=Scope(period=period, branch_id=branch_id), output=output)


Kpi = Annotated[KpiRequest, Depends(kpi_request)]
A = TypeVar("A", bound=DrillDown)


async def answer(
    context: AnalyticsContext, request: KpiRequest, compute: Callable[[Unit, Scope], Awaitable[A]]
) -> A | Response:
    async with context.kpis.snapshot() as unit:
        result = await compute(unit, request.scope)
    return csv_response(result) if request.output == "csv" else result


def csv_response(result: DrillDown) -> Response:
    rows = result.rows()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(type(result).ROW.model_fields)
    for row in rows:
        writer.writerow(_cell(value) for value in row.model_dump().values())
    period = result.period
    # The branch id goes into a header: only characters that need no quoting there.
    scope = re.sub(r"[^A-Za-z0-9_-]", "_", result.branch_id) if result.branch_id else "chain"
    filename = f"{result.kpi}_{scope}_{period.from_.isoformat()}_{period.to.isoformat()}.csv"
    return Response(
        content=(BYTE_ORDER_MARK + buffer.getvalue()).encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
