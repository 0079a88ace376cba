"""Campaign ROI: each campaign running in the period, the visits attributed to it and what they paid, and its
incremental revenue against its held-out control group (domain/control_group.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import CampaignRoi
from pitlane_analytics.service_layer.kpis import Scope
from pitlane_platform.db import Unit

router = APIRouter(prefix="/v1/kpis", tags=["campaigns"])


@router.get("/campaign-roi", response_model=CampaignRoi, responses=CSV_RESPONSE)
async def campaign_roi(
    context: Context,
    kpi: Kpi,
    campaign_id: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, pattern=r"^[^\x00]+$", description="list this campaign's orders only"
        ),
    ] = None,
) -> Any:
    """(Attributed revenue − cost) ÷ cost per campaign; beside it, what its treated customers spent beyond its
    control group (incremental revenue, incremental ROI); and the attributed orders."""

    async def compute(unit: Unit, scope: Scope) -> CampaignRoi:
        return await context.kpis.campaign_roi(unit, scope, campaign_id=campaign_id)

    return await answer(context, kpi, compute)
