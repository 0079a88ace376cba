"""Wires the reminder service: settings from `REMINDER_*` variables, the schedule and tasks on the
platform's durable timers, the consumers of customer-profile's, workorder's and notification's streams, and
the routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pitlane_platform.clock import Clock
from pitlane_platform.http import create_app as create_platform_app
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings
from pitlane_reminder.entrypoints.consumers import build_consumers
from pitlane_reminder.entrypoints.http import ROUTERS, ReminderContext, install_error_pages
from pitlane_reminder.service_layer.schedule import Schedule
from pitlane_reminder.service_layer.service import Reminder
from pitlane_reminder.service_layer.tasks import Tasks

MIGRATIONS = Path(__file__).parent / "migrations"


class ReminderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REMINDER_", extra="ignore", frozen=True)

    service_name: str = "reminder"

    send_at: time = Field(default=time(10, 0), description="the time of day (chain's clock) reminders go out")
    min_days_between: int = Field(
        default=3, ge=0, le=60, description="no reminder to one customer sooner than this after the last one"
    )


@dataclass
class ReminderService:
    """The built service: its app, and what tests and benchmarks reach into."""

    app: FastAPI
    runtime: ServiceRuntime
    service: Reminder


def build(settings: ReminderSettings, *, clock: Clock | None = None) -> ReminderService:
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    if clock is not None:
        runtime.clock = clock
    tasks = Tasks(clock=runtime.clock, chain_id=settings.chain_id, timezone=settings.timezone)
    schedule = Schedule(
        clock=runtime.clock,
        chain_id=settings.chain_id,
        timezone=settings.timezone,
        tasks=tasks,
        send_at=settings.send_at,
        min_gap=timedelta(days=settings.min_days_between),
    )
    service = Reminder(
        driver=runtime.driver,
        clock=runtime.clock,
        schedule=schedule,
        tasks=tasks,
        link_secret=settings.link_secret.get_secret_value(),
    )
    runtime.consumers.extend(build_consumers(service))
    runtime.timers = service.timer_handlers()
    app = create_platform_app(
        settings,
        title="reminder",
        version="1",
        routers=ROUTERS,
        readiness_checks=runtime.readiness_checks(),
        lifespan=runtime.lifespan,
        audit=runtime.audit,
    )
    install_error_pages(app)
    app.state.reminder = ReminderContext(service=service)
    return ReminderService(app=app, runtime=runtime, service=service)


def create_app() -> FastAPI:
    """The ASGI app `pitlane up` and uvicorn start: settings from the environment."""
    return build(ReminderSettings()).app  # type: ignore[call-arg]  # required fields come from the environment


SPEC = ServiceSpec(
    name="reminder",
    env_prefix="REMINDER_",
    asgi_factory="pitlane_reminder.bootstrap:create_app",
    consumes=("customer-profile", "workorder", "notification"),
    gateway_paths=("/r/",),
)
