"""The HTTP API under /v1/kpis (bearer token; owner, manager or analyst): the headline, one route per KPI
with its drill-down, monthly trends and cohorts, `?format=csv` for Excel; /v1/branches for the dashboard's
picker; the dashboard page itself at /dashboard. The catch-all for unknown KPI names comes last."""

from pitlane_analytics.entrypoints.http import (
    add_ons_api,
    appointments_api,
    campaigns_api,
    customers_api,
    dashboard,
    digests_api,
    kpis_api,
    nps_api,
    reminders_api,
    segments_api,
    services_api,
    staff_api,
    stages_api,
    trends_api,
)
from pitlane_analytics.entrypoints.http.common import AnalyticsContext

ROUTERS = (
    customers_api.router,
    nps_api.router,
    appointments_api.router,
    staff_api.router,
    services_api.router,
    campaigns_api.router,
    segments_api.router,
    reminders_api.router,
    stages_api.router,
    add_ons_api.router,
    trends_api.router,
    dashboard.router,
    digests_api.router,
    kpis_api.router,
)

__all__ = ["ROUTERS", "AnalyticsContext"]
