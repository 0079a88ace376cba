"""The customer's page behind a signed link: the order's state, milestones and progress, add-ons to approve
or decline, the bill once settled, and the order's own photos and videos. Errors here are pages too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitlane_events import Actor
from pitlane_events.types import ContentHash
from pitlane_events.workorder import DecidedBy, DecisionMethod
from pitlane_platform.errors import ForbiddenError, NotFoundError, PitlaneError
from pitlane_platform.security.links import CustomerLink, verify_link
from pitlane_workorder.adapters import queries
from pitlane_workorder.domain.workorder import WorkOrder, WorkOrderState
from pitlane_workorder.entrypoints.http.common import Service, WorkorderContext
from pitlane_workorder.entrypoints.http.media import MEDIA_RESPONSES, branches_reader, media_response
from pitlane_workorder.service_layer import limits
from pitlane_workorder.service_layer.unit_of_work import unit_of_work

logger = logging.getLogger(__name__)
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)

HTML = {"text/html": {"schema": {"type": "string"}}}
# Errors on the customer's pages are pages in the customer's language (install_error_pages), not problem+json.
ERROR_PAGES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The link is forged, altered or expired: a page saying so", "content": HTML},
    404: {"description": "No such add-on or file on this work order: a page saying so", "content": HTML},
    409: {
        "description": "The add-on was decided or the estimate moved on: a page linking back",
        "content": HTML,
    },
    422: {"description": "The form or link does not fit: a page saying so", "content": HTML},
}
# Every answer under /c/ carries these: the page is nobody's frame (clickjacking an Approve button), the
# token in its URL never leaves in a Referer, and neither the page nor its files stay in a shared cache or a
# phone's back-forward cache. The pages run no script; their only style is inline.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_HEADER_DOCS = {
    name: {"schema": {"type": "string", "enum": [value]}} for name, value in PAGE_HEADERS.items()
}


class CustomerPageRoute(APIRoute):
    """A route whose answers carry PAGE_HEADERS (error pages add them in `error_page`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_page_headers(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(PAGE_HEADERS)
            return response

        return with_page_headers


router = APIRouter(prefix="/c", tags=["customer"], responses=ERROR_PAGES, route_class=CustomerPageRoute)
DECIDED: dict[int | str, dict[str, Any]] = {
    303: {
        "description": "Recorded: back to the customer's page (post/redirect/get)",
        "headers": PAGE_HEADER_DOCS,
    }
}

LABELS: dict[str, dict[str, Any]] = {
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
        "steps": "服务环节",
        "step": {
            "opened": "接车",
            "quality_passed": "质检通过",
            "settled": "结算",
            "completed": "交车",
        },
        "not_yet": "待进行",
        "bill": "账单",
        "item": "项目",
        "quantity": "数量",
        "amount": "金额",
        "subtotal": "小计",
        "discounts": "优惠",
        "total": "合计",
        "payments": "付款",
        "discount_kind": {
            "coupon": "优惠券",
            "campaign": "活动优惠",
            "membership": "会员优惠",
            "manual": "门店优惠",
        },
        "payment_method": {
            "cash": "现金",
            "wechat_pay": "微信支付",
            "alipay": "支付宝",
            "bank_card": "银行卡",
            "stored_value": "储值卡",
            "insurance_claim": "保险理赔",
        },
        "error": {
            403: ("链接无效", "此链接无效或已过期，请联系门店获取新的链接。"),
            404: ("未找到", "找不到您要查看的内容。"),
            409: ("无法处理", "此项已经处理过，或报价已经更新，请回到进度页查看。"),
            422: ("请求无效", "提交的内容无效，请回到进度页重试。"),
            500: ("出错了", "系统出了点问题，请稍后再试。"),
        },
        "back": "返回进度页",
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
        "steps": "Milestones",
        "step": {
            "opened": "Checked in",
            "quality_passed": "Quality check passed",
            "settled": "Paid",
            "completed": "Handed back",
        },
        "not_yet": "Not yet",
        "bill": "Your bill",
        "item": "Item",
        "quantity": "Qty",
        "amount": "Amount",
        "subtotal": "Subtotal",
        "discounts": "Discounts",
        "total": "Total",
        "payments": "Payments",
        "discount_kind": {
            "coupon": "Coupon",
            "campaign": "Promotion",
            "membership": "Member discount",
            "manual": "Discount",
        },
        "payment_method": {
            "cash": "Cash",
            "wechat_pay": "WeChat Pay",
            "alipay": "Alipay",
            "bank_card": "Bank card",
            "stored_value": "Stored-value card",
            "insurance_claim": "Insurance claim",
        },
        "error": {
            403: (
                "Link not valid",
                "This link is not valid or has expired. Please ask the shop for a new one.",
            ),
            404: ("Not found", "We could not find what you are looking for."),
            409: (
                "Already decided",
                "This has already been decided, or the estimate has changed. Please go back to your page.",
            ),
            422: ("Not valid", "What was sent is not valid. Please go back to your page and try again."),
            500: ("Something went wrong", "Something went wrong on our side. Please try again later."),
        },
        "back": "Back to your car's page",
    },
}
# The milestones the page shows with their times, in the order a visit passes them.
STEPS = (
    WorkOrderState.OPENED,
    WorkOrderState.QUALITY_PASSED,
    WorkOrderState.SETTLED,
    WorkOrderState.COMPLETED,
)
Language = Literal["zh-CN", "en"]


async def _linked_order(service: WorkorderContext, token: str) -> tuple[CustomerLink, WorkOrder]:
    """The link's order, or a 403 when the link is forged, altered, expired or revoked, or the order voided
    (a voided order is no longer the customer's business)."""
    link = verify_link(service.link_secret, token, service.handlers.clock.now())
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, link.branch_id, link.work_order_id)
        generation = await queries.link_generation(uow.unit, link.work_order_id)
    if link.generation != generation:
        raise ForbiddenError("this link was withdrawn; ask the branch for a new one")
    if order.state is WorkOrderState.VOIDED:
        raise ForbiddenError("this work order was voided")
    return link, order


@router.get(
    "/{token}", response_class=HTMLResponse, responses={200: {"content": HTML, "headers": PAGE_HEADER_DOCS}}
)
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
        yuan=yuan,
        order=order,
        add_ons=list(order.add_ons.values()),
        progress=list(reversed(order.progress)),
        steps=[(state.value, order.entered_at(state)) for state in STEPS],
        bill=order.settlement.event if order.settlement else None,
    )
    return HTMLResponse(html)


def yuan(fen: int) -> str:
    """Integer fen as the customer reads money, ¥1,234.50; integer arithmetic, so no float rounding."""
    return f"¥{fen // 100:,}.{fen % 100:02d}"


async def _customer_decision(
    service: WorkorderContext,
    token: str,
    add_on_id: str,
    *,
    approve: bool,
    revision: int,
    reason: str | None,
    lang: Language,
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
        link_generation=link.generation,
    )
    # Post/redirect/get: reloading the page never re-sends the form.
    return RedirectResponse(f"/c/{token}?lang={lang}", status_code=303)


Revision = Annotated[int, Form(ge=1)]
# In the form's URL, not its fields: an error page must speak the customer's language too, and it is rendered
# from the request without the form.
PageLanguage = Annotated[Language, Query()]


@router.post(
    "/{token}/add-ons/{add_on_id}/approve",
    status_code=303,
    response_class=RedirectResponse,
    responses=DECIDED,
)
async def customer_approves(
    token: str,
    add_on_id: str,
    service: Service,
    estimate_revision_seen: Revision,
    lang: PageLanguage = "zh-CN",
) -> RedirectResponse:
    return await _customer_decision(
        service, token, add_on_id, approve=True, revision=estimate_revision_seen, reason=None, lang=lang
    )


@router.post(
    "/{token}/add-ons/{add_on_id}/decline",
    status_code=303,
    response_class=RedirectResponse,
    responses=DECIDED,
)
async def customer_declines(
    token: str,
    add_on_id: str,
    service: Service,
    estimate_revision_seen: Revision,
    reason: Annotated[str | None, Form(max_length=limits.TEXT_LENGTH)] = None,
    lang: PageLanguage = "zh-CN",
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


@router.get("/{token}/media/{content_hash}", response_class=Response, responses=MEDIA_RESPONSES)
async def customer_media(token: str, content_hash: ContentHash, service: Service) -> Response:
    link, order = await _linked_order(service, token)
    if content_hash not in order.media_hashes:
        raise NotFoundError(f"work order {order.id} has no file {content_hash}")
    return await media_response(service, content_hash, branches_reader([link.branch_id]))


# Errors as pages --------------------------------------------------------------------------------------------


def install_error_pages(app: FastAPI) -> None:
    """On the customer's pages an error is a page in the customer's language (a phone's browser shows JSON
    as text); elsewhere it stays the platform's problem+json. Wraps the handlers the platform installed."""
    for error_class in (PitlaneError, RequestValidationError, StarletteHTTPException):
        # The platform's handlers are coroutines.
        problem = cast(Callable[[Request, Any], Awaitable[Response]], app.exception_handlers[error_class])
        app.add_exception_handler(error_class, _page_or(problem))


def _page_or(problem: Callable[[Request, Any], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    async def page_or_problem(request: Request, error: Exception) -> Response:
        path = request.url.path
        if path != router.prefix and not path.startswith(router.prefix + "/"):
            return await problem(request, error)
        return error_page(request, error)

    return page_or_problem


def error_page(request: Request, error: Exception) -> HTMLResponse:
    headers = None
    if isinstance(error, PitlaneError):
        status = error.status
    elif isinstance(error, StarletteHTTPException):
        status, headers = error.status_code, error.headers
    else:
        status = 422
    if status >= 500:
        logger.error("customer page failed", exc_info=error)
    lang = request.query_params.get("lang")
    language: Language = "en" if lang == "en" else "zh-CN"
    t = LABELS[language]
    title, message = t["error"].get(status, t["error"][500])
    token = request.path_params.get("token")
    html = TEMPLATES.get_template("customer_error.html").render(
        lang=language,
        t=t,
        title=title,
        message=message,
        # A dead link leads nowhere; after a refused decision the page shows what is on record.
        back=f"{router.prefix}/{token}?lang={language}" if token and status not in (403, 404) else None,
    )
    return HTMLResponse(html, status_code=status, headers={**(headers or {}), **PAGE_HEADERS})
