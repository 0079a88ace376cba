"""Wires the workorder service: settings from `WORKORDER_*` variables, the platform runtime (migrations,
relay, durable timers: stage deadlines), the blob store chosen by configuration, the command handlers, the
routes and the no-show sweeper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
from fastapi import FastAPI
from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from pitlane_platform.clock import Clock
from pitlane_platform.http import create_app as create_platform_app
from pitlane_platform.request_guards import MULTIPART_ALLOWANCE_BYTES
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings
from pitlane_workorder.adapters.blobstore import BlobStore, FilesystemBlobStore, S3BlobStore
from pitlane_workorder.entrypoints.booking_timers import register_booking_timers
from pitlane_workorder.entrypoints.consumers import build_consumers
from pitlane_workorder.entrypoints.http import ROUTERS, WorkorderContext, install_error_handlers
from pitlane_workorder.entrypoints.sweeper import run_no_show_sweeper
from pitlane_workorder.service_layer.booking_calendar import BookingCalendar
from pitlane_workorder.service_layer.handlers import Handlers
from pitlane_workorder.service_layer.stage_deadlines import StageDeadlines

MIGRATIONS = Path(__file__).parent / "migrations"
# The one route whose body may be larger than the platform's default limit.
UPLOAD_PATH = "/v1/branches/{branch_id}/media"


class WorkorderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKORDER_", extra="ignore", frozen=True)

    service_name: str = "workorder"

    blob_store: Literal["filesystem", "s3"] = "filesystem"
    blob_dir: Path = Path(".pitlane/workorder-blobs")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # unset: AWS itself; set for MinIO or another S3-compatible service
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None  # unset: boto3's own chain (environment, profile, instance role)
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = ""
    max_upload_bytes: int = 64 * 1024 * 1024

    no_show_grace_minutes: int = 15
    no_show_sweep_interval_s: float = 60.0
    customer_link_ttl_hours: int = 72
    # Customers reach `/c/…` at the platform's `public_base_url` (the gateway), never at a Host header.

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> WorkorderSettings:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("blob_store=s3 needs s3_bucket (WORKORDER_S3_BUCKET)")
        return self


def blob_store_from(settings: WorkorderSettings) -> BlobStore:
    if settings.blob_store == "filesystem":
        return FilesystemBlobStore(settings.blob_dir)
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=(
            settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        ),
    )
    assert settings.s3_bucket is not None
    return S3BlobStore(client, settings.s3_bucket, settings.s3_prefix)


@dataclass
class Workorder:
    """The built service: its app, and what tests and benchmarks reach into."""

    app: FastAPI
    runtime: ServiceRuntime
    handlers: Handlers


def build(
    settings: WorkorderSettings, *, clock: Clock | None = None, blob_store: BlobStore | None = None
) -> Workorder:
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    runtime.consumers.extend(build_consumers(runtime))
    if clock is not None:
        runtime.clock = clock
    handlers = Handlers(
        driver=runtime.driver,
        clock=runtime.clock,
        chain_id=settings.chain_id,
        no_show_grace=timedelta(minutes=settings.no_show_grace_minutes),
    )
    register_booking_timers(runtime.timers, handlers)
    StageDeadlines(chain_id=settings.chain_id).register(runtime.timers)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            stop = asyncio.Event()
            sweeper = asyncio.create_task(
                run_no_show_sweeper(handlers, stop, settings.no_show_sweep_interval_s), name="no-show sweeper"
            )
            try:
                yield
            finally:
                stop.set()
                await sweeper

    app = create_platform_app(
        settings,
        title="workorder",
        version="1",
        routers=ROUTERS,
        readiness_checks=runtime.readiness_checks(),
        lifespan=lifespan,
        audit=runtime.audit,
        max_body_bytes={UPLOAD_PATH: settings.max_upload_bytes + MULTIPART_ALLOWANCE_BYTES},
    )
    install_error_handlers(app)
    app.state.workorder = WorkorderContext(
        handlers=handlers,
        calendar=BookingCalendar(handlers),
        blobs=blob_store or blob_store_from(settings),
        link_secret=settings.link_secret.get_secret_value(),
        link_ttl=timedelta(hours=settings.customer_link_ttl_hours),
        public_base_url=str(settings.public_base_url).rstrip("/"),
        max_upload_bytes=settings.max_upload_bytes,
    )
    return Workorder(app=app, runtime=runtime, handlers=handlers)


def create_app() -> FastAPI:
    """The ASGI app `pitlane up` and uvicorn start: settings from the environment."""
    return build(WorkorderSettings()).app  # type: ignore[call-arg]  # required fields come from the environment


SPEC = ServiceSpec(
    name="workorder",
    env_prefix="WORKORDER_",
    asgi_factory="pitlane_workorder.bootstrap:create_app",
    consumes=("customer-profile",),
    gateway_paths=("/c/",),
)
