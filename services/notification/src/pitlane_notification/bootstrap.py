"""Wires the notification service: settings from `NOTIFICATION_*` variables, the channel providers the chain
configured (the recording provider where none is), the message pipeline on the platform's durable timers,
the consumers of customer-profile's, workorder's, reminder's and analytics' streams, and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from pitlane_events.types import Channel
from pitlane_notification.adapters.channels.base import ChannelProvider
from pitlane_notification.adapters.channels.config import ProviderConfig, build_provider
from pitlane_notification.adapters.channels.recording import RecordingProvider
from pitlane_notification.domain.courtesy import FrequencyLimit
from pitlane_notification.domain.surveys import SurveyPolicy
from pitlane_notification.entrypoints.consumers import build_consumers
from pitlane_notification.entrypoints.http import ROUTERS, NotificationContext, install_error_pages
from pitlane_notification.service_layer.campaigns import Campaigns
from pitlane_notification.service_layer.customer_links import LinkMaker
from pitlane_notification.service_layer.delivery import Delivery, DeliveryPolicy
from pitlane_notification.service_layer.service import Notification
from pitlane_notification.service_layer.surveys import Surveys
from pitlane_platform.clock import Clock
from pitlane_platform.http import create_app as create_platform_app
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
DEV_CALLBACK_KEY = "pitlane-dev-callback-key-not-for-production"


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", frozen=True)

    service_name: str = "notification"

    sms_provider: ProviderConfig | None = Field(
        default=None,
        description="JSON of the SMS provider (kind aliyun, tencent or webhook); unset: the recording provider",
    )
    wechat_provider: ProviderConfig | None = Field(
        default=None, description="JSON of the WeChat provider (kind wechat or webhook); unset: recording"
    )
    email_provider: ProviderConfig | None = Field(
        default=None, description="JSON of the e-mail provider (kind smtp or webhook); unset: recording"
    )
    channels: tuple[Channel, ...] = Field(
        default=(Channel.WECHAT, Channel.SMS, Channel.EMAIL),
        description="the channels messages may go out on; also the order they are tried and fallen back along",
    )
    sms_sign_name: str = Field(default="车友汽修", min_length=1, max_length=20)
    sms_daily_cap_per_number: int = Field(default=10, ge=1, le=1000)
    callback_key: SecretStr = Field(
        default=SecretStr(DEV_CALLBACK_KEY),
        description="the key in the receipt and reply URLs given to the SMS providers (?key=…)",
    )

    delivery_max_attempts: int = Field(default=5, ge=1, le=20)
    delivery_backoff: tuple[timedelta, ...] = (
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(minutes=30),
    )
    survey_delay: timedelta = Field(default=timedelta(hours=2), ge=timedelta(0))
    survey_reminder_after: timedelta = Field(
        default=timedelta(hours=48), ge=timedelta(hours=48), le=timedelta(hours=72)
    )
    survey_valid_for: timedelta = Field(default=timedelta(days=7), gt=timedelta(hours=72))
    contact_limit_max: int = Field(default=1, ge=1, le=100, description="surveys and marketing per window")
    contact_limit_window: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    customer_link_ttl_hours: int = Field(default=72, ge=1, le=24 * 30)
    booking_url: AnyHttpUrl | None = Field(
        default=None,
        description="the chain's booking page, which passes `attribution` on to the public booking API; "
        "unset: <public_base_url>/book",
    )

    @model_validator(mode="after")
    def _real_providers_in_production(self) -> NotificationSettings:
        if self.env == "prod":
            missing = [
                name
                for name, channel in (
                    ("sms", Channel.SMS),
                    ("wechat", Channel.WECHAT),
                    ("email", Channel.EMAIL),
                )
                if channel in self.channels and getattr(self, f"{name}_provider") is None
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)}_provider unset in production: the recording provider sends nothing "
                    "(configure the provider, or leave the channel out of NOTIFICATION_CHANNELS)"
                )
            if self.callback_key.get_secret_value() == DEV_CALLBACK_KEY:
                raise ValueError("callback_key is the development default; set a secret of your own")
        return self


@dataclass
class NotificationService:
    """The built service: its app, and what tests and benchmarks reach into."""

    app: FastAPI
    runtime: ServiceRuntime
    service: Notification
    providers: Mapping[Channel, ChannelProvider]


def providers_from(settings: NotificationSettings, runtime: ServiceRuntime) -> dict[Channel, ChannelProvider]:
    configured = {
        Channel.SMS: settings.sms_provider,
        Channel.WECHAT: settings.wechat_provider,
        Channel.EMAIL: settings.email_provider,
    }
    providers: dict[Channel, ChannelProvider] = {}
    for channel in settings.channels:
        config = configured.get(channel)
        providers[channel] = (
            build_provider(config) if config is not None else RecordingProvider(channel.value, runtime.driver)
        )
    return providers


def build(
    settings: NotificationSettings,
    *,
    clock: Clock | None = None,
    providers: Mapping[Channel, ChannelProvider] | None = None,
) -> NotificationService:
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    if clock is not None:
        runtime.clock = clock
    chosen = dict(providers) if providers is not None else providers_from(settings, runtime)
    base_url = str(settings.public_base_url).rstrip("/")
    links = LinkMaker(
        secret=settings.link_secret.get_secret_value(),
        public_base_url=base_url,
        booking_url=str(settings.booking_url) if settings.booking_url else f"{base_url}/book",
        customer_link_ttl=timedelta(hours=settings.customer_link_ttl_hours),
    )
    delivery = Delivery(
        providers=chosen,
        clock=runtime.clock,
        chain_id=settings.chain_id,
        chain_timezone=settings.timezone,
        channel_order=settings.channels,
        policy=DeliveryPolicy(
            max_attempts=settings.delivery_max_attempts,
            backoff=settings.delivery_backoff,
            frequency=FrequencyLimit(settings.contact_limit_max, settings.contact_limit_window),
            sms_daily_cap=settings.sms_daily_cap_per_number,
        ),
    )
    surveys = Surveys(
        delivery=delivery,
        policy=SurveyPolicy(
            delay=settings.survey_delay,
            remind_after=settings.survey_reminder_after,
            valid_for=settings.survey_valid_for,
        ),
        link_secret=settings.link_secret.get_secret_value(),
        public_base_url=base_url,
    )
    service = Notification(
        driver=runtime.driver,
        clock=runtime.clock,
        delivery=delivery,
        surveys=surveys,
        campaigns=Campaigns(delivery=delivery, links=links),
        links=links,
        sms_sign_name=settings.sms_sign_name,
    )
    runtime.consumers.extend(build_consumers(runtime, service))
    runtime.timers = service.timer_handlers()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            async with runtime.lifespan(app):
                yield
        finally:
            for provider in chosen.values():
                await provider.close()

    app = create_platform_app(
        settings,
        title="notification",
        version="1",
        routers=ROUTERS,
        readiness_checks=runtime.readiness_checks(),
        lifespan=lifespan,
        audit=runtime.audit,
    )
    install_error_pages(app)
    app.state.notification = NotificationContext(
        service=service,
        callback_key=settings.callback_key.get_secret_value(),
        recording=any(isinstance(provider, RecordingProvider) for provider in chosen.values()),
    )
    return NotificationService(app=app, runtime=runtime, service=service, providers=chosen)


def create_app() -> FastAPI:
    """The ASGI app `pitlane up` and uvicorn start: settings from the environment."""
    return build(NotificationSettings()).app  # type: ignore[call-arg]  # required fields come from the environment


SPEC = ServiceSpec(
    name="notification",
    env_prefix="NOTIFICATION_",
    asgi_factory="pitlane_notification.bootstrap:create_app",
    consumes=("customer-profile", "workorder", "reminder", "analytics"),
    gateway_paths=("/n/",),
)
