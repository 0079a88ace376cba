"""Wiring: settings from the environment, the runtime (database, NATS, relay, consumers) and the HTTP app."""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from pitlane_customer_profile.adapters.event_store import ProfileEventStore
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.entrypoints.abuse import publish_limit_reached, user_limits
from pitlane_customer_profile.entrypoints.consumers import build_consumers
from pitlane_customer_profile.entrypoints.http import Services, build_router
from pitlane_customer_profile.entrypoints.imports import IMPORT_PATH, MAX_FILE_BYTES, build_import_router
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWorkFactory
from pitlane_platform.http import create_app as create_http_app
from pitlane_platform.request_guards import MULTIPART_ALLOWANCE_BYTES
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.security.rates import checked_rate
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings

SERVICE = "customer-profile"
ENV_PREFIX = "CUSTOMER_PROFILE_"
MIGRATIONS = Path(__file__).parent / "migrations"
# 32 bytes, base64. Like the platform's development secrets, refused outside env=dev.
DEV_PII_MASTER_KEY = base64.b64encode(b"pitlane-dev-pii-key-not-for-prod").decode()


class CustomerProfileSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    service_name: str = SERVICE
    pii_master_key: SecretStr = SecretStr(DEV_PII_MASTER_KEY)
    """Wraps every customer's data key (crypto-shredding, ADR 0006); base64 of 32 random bytes."""
    import_max_rows: int = 100_000
    # A front desk looks up a few customers an hour at its busiest; harvesting tries thousands.
    lookup_rate_limit: str = Field(
        default="30/minute;300/hour", description="lookups (GET /v1/lookup) per user; `limits` notation"
    )
    search_rate_limit: str = Field(
        default="30/minute;300/hour", description="searches (GET /v1/customers) per user; `limits` notation"
    )

    @field_validator("lookup_rate_limit", "search_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        return checked_rate(value)

    @model_validator(mode="after")
    def _no_default_pii_key_outside_dev(self) -> CustomerProfileSettings:
        if self.env != "dev" and self.pii_master_key.get_secret_value() == DEV_PII_MASTER_KEY:
            raise ValueError("pii_master_key is the development default; set a key of your own")
        return self

    def master_key(self) -> bytes:
        return base64.b64decode(self.pii_master_key.get_secret_value())


def build(settings: CustomerProfileSettings) -> tuple[ServiceRuntime, FastAPI]:
    """The runtime and the app; the app's lifespan starts and stops the runtime."""
    vault = PiiVault(settings.master_key())
    store = ProfileEventStore(vault)
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    services = Services(
        chain_id=settings.chain_id,
        clock=runtime.clock,
        uow=UnitOfWorkFactory(runtime.sessions, store),
        vault=vault,
        driver=runtime.driver,
    )
    runtime.consumers.extend(build_consumers(runtime, store))
    app = create_http_app(
        settings,
        title=SERVICE,
        version="1",
        routers=[build_router(services), build_import_router(services, max_rows=settings.import_max_rows)],
        readiness_checks=runtime.readiness_checks(),
        lifespan=runtime.lifespan,
        audit=runtime.audit,
        user_limits=user_limits(
            lookup_rate=settings.lookup_rate_limit,
            search_rate=settings.search_rate_limit,
            on_refused=publish_limit_reached(runtime.driver, chain_id=settings.chain_id, clock=runtime.clock),
        ),
        max_body_bytes={IMPORT_PATH: MAX_FILE_BYTES + MULTIPART_ALLOWANCE_BYTES},
    )
    app.state.runtime = runtime
    return runtime, app


def create_app() -> FastAPI:
    """The ASGI app `pitlane up` and uvicorn start: settings from CUSTOMER_PROFILE_* variables."""
    return build(CustomerProfileSettings())[1]  # type: ignore[call-arg]


SPEC = ServiceSpec(
    name=SERVICE,
    env_prefix=ENV_PREFIX,
    asgi_factory="pitlane_customer_profile.bootstrap:create_app",
    consumes=("workorder", "notification", "reminder"),
)
