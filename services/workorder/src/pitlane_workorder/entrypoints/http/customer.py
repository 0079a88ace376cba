"""The customer's page behind a signed link: the order's state and progress, add-ons to approve or decline,
and the order's own photos and videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pitlane_events import Actor
from pitlane_events.types import ContentHash
from pitlane_events.workorder import DecidedBy, DecisionMethod
from pitlane_platform.errors import NotFoundError
from pitlane_workorder.adapters import queries
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.entrypoints.http.common import Service, WorkorderContext
from pitlane_workorder.entrypoints.http.media import media_response
from pitlane_workorder.service_layer import limits
from pitlane_workorder.service_layer.links import CustomerLink, verify_link
from pitlane_workorder.service_layer.unit_of_work import unit_of_work

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)

router = APIRouter(prefix="/c", tags=["customer"])

LABELS = {
    "zh-CN": {
        "title": "车辆维修进度",
        "state": {
            "opened": "已接车",
            "dispatched": "已派工",
            "in_progress": "维修中",
            "awaiting_approval": "待您确认",
            "quality_passed": "已质检",
            "settled": "已结算",
            "completed": "已交车",
            "voided": "已作废",
        },
        "progress": "维修进度",
        "add_ons": "增项确认",
        "reason": "原因",
        "price": "价格",
        "approve": "同意",
        "decline": "不需要",
        "approved": "已同意",
        "declined": "已拒绝",
        "revision": "报价版本",
        "language": "English",
    },
    "en": {
        "title": "Your car's repair",
        "state": {
            "opened": "Checked in",
            "dispatched": "Technician assigned",
            "in_progress": "In progress",
            "awaiting_approval": "Waiting for your decision",
            "quality_passed": "Quality checked",
            "settled": "Paid",
            "completed": "Handed back",
            "voided": "Voided",
        },
        "progress": "Progress",
        "add_ons": "Additional work",
        "reason": "Why",
        "price": "Price",
        "approve": "Approve",
        "decline": "Decline",
        "approved": "Approved",
        "declined": "Declined",
        "revision": "Estimate revision",
        "language": "中文",
    },
}
Language = Literal["zh-CN", "en"]


async def _linked_order(service: WorkorderContext, token: str) -> tuple[CustomerLink, WorkOrder]:
    link = verify_link(service.link_secret, token, service.handlers.clock.now())
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, link.branch_id, link.work_order_id)
    return link, order


@router.get("/{token}", response_class=HTMLResponse)
async def customer_page(token: str, service: Service, lang: Language = "zh-CN") -> HTMLResponse:
    link, order = await _linked_order(service, token)
    async with service.handlers.driver.transaction() as unit:
        branch = await queries.branch(unit, link.branch_id)
    assert branch is not None  # the link's work order is at this branch, and branches are never removed
    zone = ZoneInfo(branch["timezone"])
    html = TEMPLATES.get_template("customer_page.html").render(
        token=token,
        lang=lang,
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        t=LABELS[lang],
        branch_name=branch["name"],
        local_time=lambda moment: moment.astimezone(zone).strftime("%m-%d %H:%M"),
        order=order,
        add_ons=list(order.add_ons.values()),
        progress=list(reversed(order.progress)),
    )
    return HTMLResponse(html)


async def _customer_decision(
    service: WorkorderContext,
    token: str,
    add_on_id: str,
    *,
    approve: bool,
    revision: int,
    reason: str | None,
    lang: str,
) -> RedirectResponse:
    link, order = await _linked_order(service, token)
    await service.handlers.decide_add_on(
        link.branch_id,
        link.work_order_id,
        add_on_id,
        approve=approve,
        estimate_revision_seen=revision,
        decided_by=DecidedBy.CUSTOMER,
        method=DecisionMethod.SIGNED_LINK,
        reason=reason,
        actor=Actor(kind="customer", id=order.facts.customer_id),
    )
    # Post/redirect/get: reloading the page never re-sends the form.
    return RedirectResponse(f"/c/{token}?lang={lang}", status_code=303)


Revision = Annotated[int, Form(ge=1)]


@router.post("/{token}/add-ons/{add_on_id}/approve")
async def customer_approves(
    token: str,
    add_on_id: str,
    service: Service,
    estimate_revision_seen: Revision,
    lang: Annotated[Language, Form()] = "zh-CN",
) -> RedirectResponse:
    return await _customer_decision(
        service, token, add_on_id, approve=True, revision=estimate_revision_seen, reason=None, lang=lang
    )


@router.post("/{token}/add-ons/{add_on_id}/decline")
async def customer_declines(
    token: str,
    add_on_id: str,
    service: Service,
    estimate_revision_seen: Revision,
    reason: Annotated[str | None, Form(max_length=limits.TEXT_LENGTH)] = None,
    lang: Annotated[Language, Form()] = "zh-CN",
) -> RedirectResponse:
    return await _customer_decision(
        service,
        token,
        add_on_id,
        approve=False,
        revision=estimate_revision_seen,
        reason=reason or None,
        lang=lang,
    )


@router.get("/{token}/media/{content_hash}")
async def customer_media(token: str, content_hash: ContentHash, service: Service) -> Response:
    _, order = await _linked_order(service, token)
    if content_hash not in order.media_hashes:
        raise NotFoundError(f"work order {order.id} has no file {content_hash}")
    return await media_response(service, content_hash)
