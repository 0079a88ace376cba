"""Wires the analytics service: settings from `ANALYTICS_*` variables, the consumers of every producer's
stream, the KPI answers and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from pitlane_analytics.adapters import tables
from pitlane_analytics.adapters.kpi_projections import everything_at_once
from pitlane_analytics.adapters.recording_mailer import RecordingMailer
from pitlane_analytics.entrypoints.consumers import SOURCES, build_consumers
from pitlane_analytics.entrypoints.http import ROUTERS, AnalyticsContext
from pitlane_analytics.service_layer.digests import Digests
from pitlane_analytics.service_layer.kpis import Kpis
from pitlane_platform.clock import Clock
from pitlane_platform.http import create_app as create_platform_app
from pitlane_platform.mail import Mailer, SmtpMailer, SmtpSettings
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# The facts, written by the consumers alone: `pitlane analytics rebuild` replays them from the streams and
# swaps them in. A table of anything else (state not made of events) stays off this list: a rebuild would
# replace it with an empty one; a consumer writing a table missing here makes the rebuild fail instead.
READ_MODELS = (
    tables.work_orders,
    tables.visit_lines,
    tables.stage_passages,
    tables.appointments,
    tables.add_ons,
    tables.surveys,
    tables.nps_answers,
    tables.campaigns,
    tables.campaign_sends,
    tables.campaign_audience_batches,
    tables.campaign_audience_members,
    tables.reminders_sent,
    tables.customer_aliases,
    tables.erased_customers,
    tables.branches,
    tables.source_watermarks,
    tables.customer_visits,
    tables.visit_months,
    tables.month_boundaries,
    tables.lifetime_histogram,
    tables.counted_facts,
    tables.month_counts,
    tables.customer_appointments,
    tables.appointment_months,
)


class AnalyticsSettings(ServiceSettings):
    """The chain's time zone (`chain_timezone`, default Asia/Shanghai) is the one KPI periods are in."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore", frozen=True)

    service_name: str = "analytics"

    smtp: SmtpSettings | None = Field(
        default=None,
        description="JSON of the SMTP server KPI digests are sent through (host, port, security, username, "
        "password, from_address, from_name, ca_bundle, timeout_s); unset: the recording mailer (development)",
    )

    @model_validator(mode="after")
    def _digests_are_sent_in_production(self) -> AnalyticsSettings:
        if self.env == "prod" and self.smtp is None:
            raise ValueError(
                "smtp unset in production: the recording mailer sends no digest (set ANALYTICS_SMTP)"
            )
        return self


@dataclass
class AnalyticsService:
    """The built service: its app, and what tests and benchmarks reach into."""

    app: FastAPI
    runtime: ServiceRuntime
    kpis: Kpis


def build(settings: AnalyticsSettings, *, clock: Clock | None = None) -> AnalyticsService:
    runtime = ServiceRuntime(
        settings,
        migrations=MIGRATIONS,
        read_models=READ_MODELS,
        derive_read_models=everything_at_once(settings.timezone),
    )
    if clock is not None:
        runtime.clock = clock
    runtime.consumers.extend(build_consumers(settings.timezone))
    kpis = Kpis(runtime.driver, chain_id=settings.chain_id, timezone=settings.timezone)
    mailer: Mailer = (
        SmtpMailer(settings.smtp)
        if settings.smtp is not None
        else RecordingMailer(runtime.driver, runtime.clock)
    )
    digests = Digests(
        runtime.driver,
        kpis,
        mailer,
        clock=runtime.clock,
        timezone=settings.timezone,
        dashboard_url=str(settings.public_base_url),
    )
    digests.register(runtime.timers)
    app = create_platform_app(
        settings,
        title="analytics",
        version="1",
        routers=ROUTERS,
        readiness_checks=runtime.readiness_checks(),
        lifespan=runtime.lifespan,
        audit=runtime.audit,
    )
    app.state.digests = digests
    app.state.analytics = AnalyticsContext(kpis=kpis, timezone=settings.timezone, clock=runtime.clock)
    return AnalyticsService(app=app, runtime=runtime, kpis=kpis)


def create_app() -> FastAPI:
    """The ASGI app `pitlane up` and uvicorn start: settings from the environment."""
    return build(AnalyticsSettings()).app  # type: ignore[call-arg]  # required fields come from the environment


def create_runtime() -> ServiceRuntime:
    """The runtime alone, settings from the environment: for `pitlane analytics rebuild`."""
    return build(AnalyticsSettings()).runtime  # type: ignore[call-arg]  # required fields come from the environment


SPEC = ServiceSpec(
    name="analytics",
    env_prefix="ANALYTICS_",
    asgi_factory="pitlane_analytics.bootstrap:create_app",
    consumes=SOURCES,
    runtime_factory="pitlane_analytics.bootstrap:create_runtime",
    gateway_paths=("/dashboard",),
)
