"""The dashboard (数据决策驾驶舱) at `/dashboard`: a static page whose script reads the KPI API with the user's
bearer token and draws it with the vendored Apache ECharts (docs/adr/0019-dashboard.md).

The page holds no data and demands no token: everything it shows comes from `/v1/…`, which checks the token
and the branches it covers. Nothing is loaded from anywhere else (the Content-Security-Policy allows this
origin only). Its files are served from the package with their content hash in the URL, so a browser keeps
them until a release changes them, and asks again for the page itself each time.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitlane_analytics.entrypoints.http.common import Context, Reader
from pitlane_analytics.service_layer import trends

router = APIRouter()

HERE = Path(__file__).parent
PAGE_PATH = "/dashboard"
ASSETS_PATH = PAGE_PATH + "/static"
# Served by name only: nothing else under static/ (or beside it) is reachable.
ASSET_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/echarts/echarts.min.js": "text/javascript; charset=utf-8",
}
# Only this origin, for everything; `data:` images for the empty icon (no request for /favicon.ico).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Revalidated each time: it names the current assets' hashes.
    "Cache-Control": "no-cache",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# The gateway (and the Kubernetes Ingress) serve this service's API under `/api/analytics/` and the page
# under `/dashboard`; a request that came through a proxy says so with X-Forwarded-Host.
GATEWAY_API_PREFIX = "/api/analytics"


@dataclass(frozen=True)
class Asset:
    content: bytes
    media_type: str
    version: str  # the start of the content's sha256: in the URL, so a new release is a new URL


@functools.cache
def _asset(name: str) -> Asset:
    content = (HERE / "static" / name).read_bytes()
    return Asset(content, ASSET_TYPES[name], hashlib.sha256(content).hexdigest()[:16])


@functools.cache
def _page_template() -> Template:
    return Template((HERE / "templates" / "dashboard.html").read_text(encoding="utf-8"))


def _asset_url(name: str) -> str:
    return f"{ASSETS_PATH}/{name}?v={_asset(name).version}"


@router.get(PAGE_PATH, include_in_schema=False)
async def dashboard_page(request: Request) -> Response:
    behind_gateway = "x-forwarded-host" in request.headers
    page = _page_template().substitute(
        api_base=GATEWAY_API_PREFIX if behind_gateway else "",
        style_url=_asset_url("dashboard.css"),
        echarts_url=_asset_url("vendor/echarts/echarts.min.js"),
        script_url=_asset_url("dashboard.js"),
    )
    return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get(ASSETS_PATH + "/{name:path}", include_in_schema=False)
async def dashboard_asset(name: str, request: Request) -> Response:
    if name not in ASSET_TYPES:
        raise StarletteHTTPException(404)
    asset = _asset(name)
    etag = f'"{asset.version}"'
    # The URL the page names is immutable; any other (an old page's) is revalidated by its ETag.
    headers = {
        "Cache-Control": IMMUTABLE if request.query_params.get("v") == asset.version else "no-cache",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.content, media_type=asset.media_type, headers=headers)


class VisibleBranches(BaseModel):
    chain_wide: bool = Field(description="the token reads the whole chain's figures (owner, analyst)")
    branches: list[str] = Field(
        description="the branches the token may read: every branch the facts name, or the token's own"
    )


@router.get("/v1/branches", tags=["dashboard"])
async def visible_branches(context: Context, principal: Reader) -> VisibleBranches:
    """The branches whose KPIs the caller may read (the dashboard's branch picker)."""
    if not principal.is_chain_wide:
        return VisibleBranches(chain_wide=False, branches=sorted(principal.branches))
    async with context.kpis.snapshot() as unit:
        return VisibleBranches(chain_wide=True, branches=await trends.branches_seen(unit))
