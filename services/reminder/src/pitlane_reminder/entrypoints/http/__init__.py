"""The HTTP API, one router per resource under /v1 (bearer token and role checked): rules, a vehicle's
reminders, advisors' tasks; and the customer's answer page under /r behind the signed link."""

from pitlane_reminder.entrypoints.http import pages, rules_api, tasks_api, vehicles_api
from pitlane_reminder.entrypoints.http.common import ReminderContext
from pitlane_reminder.entrypoints.http.pages import install_error_pages

ROUTERS = (rules_api.router, vehicles_api.router, tasks_api.router, pages.router)

__all__ = ["ROUTERS", "ReminderContext", "install_error_pages"]
