"""The HTTP API, one router per resource under /v1 (bearer token and role checked): the message log,
templates, surveys, campaigns and segments, branches' quiet hours and staff addresses, and what providers push
to us; and the customer's pages under /n behind signed links (the NPS survey, unsubscribe)."""

from pitlane_notification.entrypoints.http import (
    branches_api,
    campaigns_api,
    messages,
    pages,
    providers_api,
    staff_api,
    surveys_api,
    templates_api,
)
from pitlane_notification.entrypoints.http.common import NotificationContext
from pitlane_notification.entrypoints.http.pages import install_error_pages

ROUTERS = (
    messages.router,
    templates_api.router,
    surveys_api.router,
    campaigns_api.router,
    branches_api.router,
    staff_api.router,
    providers_api.router,
    pages.router,
)

__all__ = ["ROUTERS", "NotificationContext", "install_error_pages"]
