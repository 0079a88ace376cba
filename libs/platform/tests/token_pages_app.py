"""An app with a page behind a link token at each path the services' links use, for the log redaction tests:
every page fails (the platform then logs the request's path), and `/marker` logs a line to wait for."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI

from pitlane_platform.http import create_app
from pitlane_platform.settings import ServiceSettings

# Where the services put a link's token (LinkMaker in notification, workorder's pages): customer pages,
# booking and waitlist pages, reminder answers, notification's survey and unsubscribe pages.
TOKEN_ROUTES = (
    "/c/{token}",
    "/c/{token}/add-ons/{add_on_id}/approve",
    "/c/appointments/{token}",
    "/c/waitlist/{token}/acceptance",
    "/r/{token}",
    "/n/s/{token}",
    "/n/u/{token}",
)
MARKER = "all token pages were requested"

router = APIRouter()


async def failing_page() -> None:
    raise RuntimeError("the page fails, so the platform logs its path")


for route in TOKEN_ROUTES:
    router.add_api_route(route, failing_page, methods=["GET"])


@router.get("/marker")
async def marker() -> None:
    logging.getLogger("token-pages").warning(MARKER)


def create_token_pages_app() -> FastAPI:
    settings = ServiceSettings(
        service_name="token-pages", database_url="postgresql://unused", nats_url="nats://unused"
    )
    return create_app(settings, title="token pages", version="0", routers=[router])
