"""The customer's answer to a reminder, under /r/ behind the signed link in the message: "done elsewhere"
(closes the cycle; for a service, with the mileage if the customer gives it) or "remind me later". No login,
no script, zh-CN by default and English with ?lang=en; errors are pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pitlane_platform.customer_pages import (
    PAGE_HEADERS,
    Lang,
    Language,
    language,
    page_responses,
)
from pitlane_platform.customer_pages import install_error_pages as install_customer_error_pages
from pitlane_reminder.entrypoints.http.common import Context
from pitlane_reminder.service_layer.rules import RuleKind

PREFIX = "/r"
router = APIRouter(prefix=PREFIX, tags=["customer pages"])
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
PAGE_RESPONSES = page_responses(
    {
        403: "The link is forged, altered or expired: a page saying so",
        404: "No such reminder: a page saying so",
        409: "The reminder is closed already: a page saying so",
        422: "The form does not fit: a page saying so",
    }
)
LABELS: dict[Language, dict[str, Any]] = {
    "zh-CN": {
        "title": {
            "maintenance": "保养提醒",
            "insurance_renewal": "车险续保提醒",
            "annual_inspection": "年检提醒",
            "declined_work": "维修项目提醒",
        },
        "due": "预计{due}到期。",
        "mileage": "当前里程（公里，选填）",
        "done": "已在别处完成",
        "later": "稍后提醒我",
        "closed": "好的，本次提醒已关闭。",
        "snoozed": "好的，我们会在{until}之后再提醒您。",
        "error": {
            403: ("链接无效", "此链接无效或已过期。"),
            404: ("提醒不存在", "找不到此提醒。"),
            409: ("提醒已关闭", "此提醒已经关闭。"),
            422: ("提交有误", "请填写正确的里程。"),
            500: ("出错了", "请稍后再试。"),
        },
    },
    "en": {
        "title": {
            "maintenance": "Service reminder",
            "insurance_renewal": "Insurance renewal",
            "annual_inspection": "Annual inspection",
            "declined_work": "Recommended work",
        },
        "due": "Due around {due}.",
        "mileage": "Your mileage now (km, optional)",
        "done": "Done elsewhere",
        "later": "Remind me later",
        "closed": "Thank you: this reminder is closed.",
        "snoozed": "Thank you: we will remind you again after {until}.",
        "error": {
            403: ("Link not valid", "This link is not valid or has expired."),
            404: ("No such reminder", "This reminder does not exist."),
            409: ("Reminder closed", "This reminder is closed already."),
            422: ("Please check", "Give the mileage in km."),
            500: ("Something went wrong", "Please try again later."),
        },
    },
}


def page(lang: Language, title: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    html = TEMPLATES.get_template("page.html").render(lang=lang, t=LABELS[lang], title=title, **values)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@router.get("/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def reminder_page(token: str, context: Context, lang: Lang = None) -> HTMLResponse:
    service = context.service
    reminder_id = service.verify(token, service.clock.now())
    async with service.driver.transaction() as unit:
        reminder = await service.answered_reminder(unit, reminder_id)
    chosen = language(lang)
    labels = LABELS[chosen]
    title = labels["title"].get(reminder["kind"], labels["title"]["maintenance"])
    if reminder["status"] != "scheduled":
        return page(chosen, title, message=labels["closed"])
    return page(
        chosen,
        title,
        message=labels["due"].format(due=reminder["due_on"].isoformat()),
        action=f"{PREFIX}/{token}",
        ask_mileage=reminder["kind"] == RuleKind.MAINTENANCE.value,
    )


@router.post("/{token}/done", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def done_elsewhere(
    token: str,
    context: Context,
    mileage_km: Annotated[int | None, Form(ge=0, le=2_000_000)] = None,
    lang: Lang = None,
) -> HTMLResponse:
    service = context.service
    reminder_id = service.verify(token, service.clock.now())
    async with service.driver.transaction() as unit:
        await service.done_elsewhere(unit, reminder_id, mileage_km)
    chosen = language(lang)
    return page(chosen, LABELS[chosen]["closed"])


@router.post("/{token}/later", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def remind_later(token: str, context: Context, lang: Lang = None) -> HTMLResponse:
    service = context.service
    reminder_id = service.verify(token, service.clock.now())
    async with service.driver.transaction() as unit:
        until = await service.later(unit, reminder_id)
    chosen = language(lang)
    return page(chosen, LABELS[chosen]["snoozed"].format(until=until.isoformat()))


def error_page(request: Request, status: int) -> Response:
    chosen = language(request.query_params.get("lang"))
    title, message = LABELS[chosen]["error"].get(status, LABELS[chosen]["error"][500])
    return page(chosen, title, status=status, message=message)


def install_error_pages(app: FastAPI) -> None:
    install_customer_error_pages(app, PREFIX, error_page)
