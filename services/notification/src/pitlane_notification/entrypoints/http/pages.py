"""The customer's pages of notification, under /n/ behind signed links: the NPS survey (/n/s/<token>) and the
unsubscribe page (/n/u/<token>). No login, no script, mobile first, zh-CN by default and English with
?lang=en. Errors here are pages too: a forged or expired link is a 403 page, not JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pitlane_events.notification import UnsubscribeSource
from pitlane_notification.entrypoints.http.common import Context
from pitlane_platform.customer_pages import (
    PAGE_HEADERS,
    Lang,
    Language,
    language,
    page_responses,
)
from pitlane_platform.customer_pages import install_error_pages as install_customer_error_pages

PREFIX = "/n"
router = APIRouter(prefix=PREFIX, tags=["customer pages"])
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)

Token = Annotated[str, "a signed link token"]
PAGE_RESPONSES = page_responses(
    {
        403: "The link is forged, altered or expired: a page saying so",
        404: "The survey is closed: a page saying so",
        422: "The form does not fit: a page saying so",
    }
)

LABELS: dict[Language, dict[str, Any]] = {
    "zh-CN": {
        "question": "您有多大可能向朋友推荐{branch}？",
        "unlikely": "0 完全不可能",
        "likely": "10 非常可能",
        "your_score": "您的评分：",
        "change": "修改",
        "comment": "还有什么想告诉我们的吗？（选填）",
        "submit": "提交评价",
        "thanks": "感谢您的评价！",
        "thanks_detail": "您的意见我们已收到，我们会认真对待。",
        "unsubscribe_title": "退订营销消息",
        "unsubscribe_question": "退订后，您将不再收到我们的优惠和活动消息（短信、微信、邮件）；与您车辆相关的服务通知不受影响。",
        "unsubscribe": "确认退订",
        "unsubscribed": "您已退订",
        "unsubscribed_detail": "我们不会再向您发送营销消息。",
        "error": {
            403: ("链接无效", "此链接无效或已过期。"),
            404: ("问卷已关闭", "此问卷已不再接受回答。"),
            422: ("提交有误", "请选择0到10之间的分数。"),
            500: ("出错了", "请稍后再试。"),
        },
    },
    "en": {
        "question": "How likely are you to recommend {branch} to a friend?",
        "unlikely": "0 not at all likely",
        "likely": "10 extremely likely",
        "your_score": "Your score:",
        "change": "change",
        "comment": "Anything else you would like to tell us? (optional)",
        "submit": "Send",
        "thanks": "Thank you!",
        "thanks_detail": "We have your answer and we take it to heart.",
        "unsubscribe_title": "Unsubscribe from offers",
        "unsubscribe_question": "You will no longer receive our offers and campaigns (SMS, WeChat, e-mail); service messages about your car continue.",
        "unsubscribe": "Unsubscribe",
        "unsubscribed": "You are unsubscribed",
        "unsubscribed_detail": "We will send you no more marketing messages.",
        "error": {
            403: ("Link not valid", "This link is not valid or has expired."),
            404: ("Survey closed", "This survey no longer takes answers."),
            422: ("Please check", "Pick a score from 0 to 10."),
            500: ("Something went wrong", "Please try again later."),
        },
    },
}


def page(lang: Language, title: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    html = TEMPLATES.get_template("page.html").render(lang=lang, t=LABELS[lang], title=title, **values)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def see_page(path: str, lang: Language) -> RedirectResponse:
    """After a form post, the page again (303): a reload never posts twice."""
    return RedirectResponse(f"{path}?lang={lang}", status_code=303, headers=PAGE_HEADERS)


@router.get("/s/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def survey_page(
    token: Token, context: Context, lang: Lang = None, change: bool = False
) -> HTMLResponse:
    """The survey: pick a score (saved at once, so a customer who leaves comes back to it), then an
    optional comment; once answered, thanks."""
    surveys = context.service.surveys
    now = context.service.clock.now()
    survey_id = surveys.verify(token, now)
    async with context.service.driver.transaction() as unit:
        survey = await surveys.opened(unit, survey_id, now)
    chosen_lang = language(lang, survey["locale"])
    labels = LABELS[chosen_lang]
    action = f"{PREFIX}/s/{token}"
    if survey["answer"] is not None:
        return page(chosen_lang, labels["thanks"], message=labels["thanks_detail"])
    title = labels["question"].format(branch=survey["branch_name"] or "")
    if survey["draft_score"] is None or change:
        return page(chosen_lang, title, form="score", action=action, chosen=survey["draft_score"])
    return page(
        chosen_lang,
        title,
        form="comment",
        action=action,
        chosen=survey["draft_score"],
        comment=survey["draft_comment"],
    )


@router.post(
    "/s/{token}/draft", responses={303: {"description": "Back to the survey page"}, **PAGE_RESPONSES}
)
async def survey_draft(
    token: Token,
    context: Context,
    score: Annotated[int, Form(ge=0, le=10)],
    lang: Lang = None,
) -> Response:
    """The score picked, kept as a draft: the page resumes from it."""
    surveys = context.service.surveys
    now = context.service.clock.now()
    survey_id = surveys.verify(token, now)
    async with context.service.driver.transaction() as unit:
        await surveys.save_draft(unit, survey_id, score, None, now)
    return see_page(f"{PREFIX}/s/{token}", language(lang))


@router.post("/s/{token}", responses={303: {"description": "Back to the survey page"}, **PAGE_RESPONSES})
async def survey_answer(
    token: Token,
    context: Context,
    score: Annotated[int, Form(ge=0, le=10)],
    comment: Annotated[str | None, Form(max_length=2000)] = None,
    lang: Lang = None,
) -> Response:
    """The answer. One per survey: a second submit, or a retried request, changes nothing and leads to the
    same thanks."""
    surveys = context.service.surveys
    now = context.service.clock.now()
    survey_id = surveys.verify(token, now)
    async with context.service.driver.transaction() as unit:
        await surveys.answer(unit, survey_id, score, (comment or "").strip() or None, now)
    return see_page(f"{PREFIX}/s/{token}", language(lang))


@router.get("/u/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def unsubscribe_page(token: Token, context: Context, lang: Lang = None) -> HTMLResponse:
    context.service.links.verify_unsubscribe(token, context.service.clock.now())
    chosen = language(lang)
    labels = LABELS[chosen]
    return page(
        chosen,
        labels["unsubscribe_title"],
        message=labels["unsubscribe_question"],
        form="unsubscribe",
        action=f"{PREFIX}/u/{token}",
    )


@router.post("/u/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def unsubscribe(token: Token, context: Context, lang: Lang = None) -> HTMLResponse:
    """Stops marketing on every channel, without a login: the signed link is the customer's word."""
    request = context.service.links.verify_unsubscribe(token, context.service.clock.now())
    async with context.service.driver.transaction() as unit:
        await context.service.unsubscribe(unit, request.customer_id, UnsubscribeSource.LINK)
    chosen = language(lang)
    return page(chosen, LABELS[chosen]["unsubscribed"], message=LABELS[chosen]["unsubscribed_detail"])


def error_page(request: Request, status: int) -> Response:
    chosen = language(request.query_params.get("lang"))
    title, message = LABELS[chosen]["error"].get(status, LABELS[chosen]["error"][500])
    return page(chosen, title, status=status, message=message)


def install_error_pages(app: FastAPI) -> None:
    """Under /n/ an error is a page in the customer's language; elsewhere the platform's problem+json."""
    install_customer_error_pages(app, PREFIX, error_page)
