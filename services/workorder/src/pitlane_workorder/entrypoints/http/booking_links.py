"""The customer's booking pages behind the signed links notification sends (ADR 25): an appointment's page
(`/c/appointments/<token>`: confirm it, or move it to a free slot; sent with the booking's confirmation and
the day-before and two-hours-before reminders) and a waitlist offer's page (`/c/waitlist/<token>`: take the
place held for the customer). No login, no script, zh-CN by default and English with ?lang=en; errors are
pages (pitlane_platform.customer_pages)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pitlane_events.inputs import DateInput, DatetimeInput
from pitlane_platform.customer_pages import PAGE_HEADERS, Lang, Language, language, page_responses
from pitlane_platform.customer_pages import install_error_pages as install_customer_error_pages
from pitlane_platform.security.links import BookingLink, BookingLinkKind, verify_booking_link
from pitlane_workorder.domain.appointment import AppointmentStatus
from pitlane_workorder.entrypoints.http.common import Service, WorkorderContext
from pitlane_workorder.service_layer.booking_calendar import AppointmentPage, OfferPage
from pitlane_workorder.service_layer.commands import RescheduleAppointment
from pitlane_workorder.service_layer.waitlist import held_until

APPOINTMENTS = "/c/appointments"
WAITLIST = "/c/waitlist"
router = APIRouter(tags=["customer"])
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
PAGE_RESPONSES = page_responses(
    {
        403: "The link is forged, altered or expired: a page saying so",
        404: "No such appointment or waitlist entry: a page saying so",
        409: "The slot has no room, or the offer lapsed: a page saying so",
        422: "The time cannot be booked, or the form does not fit: a page saying so",
    }
)
LABELS: dict[Language, dict[str, Any]] = {
    "zh-CN": {
        "appointment": "您的预约",
        "offer": "候补空位",
        "branch": "门店：{}",
        "time": "时间：{}",
        "service": "项目：{}",
        "confirm": "确认到店",
        "confirmed": "您已确认到店，期待您的光临。",
        "moved": "已改约到{}。",
        "deadline": "请在{}前确认，否则预约将被取消。",
        "status": {
            "cancelled": "此预约已取消。",
            "arrived": "您已到店。",
            "no_show": "此预约已过期。",
        },
        "reschedule": "改约到其他时间",
        "no_free_slot": "当天没有可预约的时间。",
        "previous_day": "前一天",
        "next_day": "后一天",
        "offered": "{}有空位，为您保留到{}。",
        "take": "预约这个时间",
        "taken": "已为您预约{}。",
        "lapsed": "保留时间已过，名额已转给下一位候补客户。",
        "waiting": "您在候补名单中；有空位时我们会通知您。",
        "error": {
            403: ("链接无效", "此链接无效或已过期，请联系门店。"),
            404: ("未找到", "找不到此预约。"),
            409: ("无法预约", "该时间已约满，或保留的名额已失效，请选择其他时间。"),
            422: ("无法预约", "该时间无法预约，请选择其他时间。"),
            500: ("出错了", "系统出了点问题，请稍后再试。"),
        },
    },
    "en": {
        "appointment": "Your appointment",
        "offer": "A place for you",
        "branch": "Branch: {}",
        "time": "When: {}",
        "service": "Service: {}",
        "confirm": "I'm coming",
        "confirmed": "You confirmed you are coming. See you then!",
        "moved": "Moved to {}.",
        "deadline": "Please confirm by {}, or the booking is released.",
        "status": {
            "cancelled": "This appointment was cancelled.",
            "arrived": "You have arrived.",
            "no_show": "This appointment has passed.",
        },
        "reschedule": "Move it to another time",
        "no_free_slot": "No free time on this day.",
        "previous_day": "Day before",
        "next_day": "Day after",
        "offered": "A place is free at {}; it is held for you until {}.",
        "take": "Book this time",
        "taken": "You are booked for {}.",
        "lapsed": "The hold ran out; the place went to the next customer waiting.",
        "waiting": "You are on the waitlist; we will tell you when a place frees.",
        "error": {
            403: ("Link not valid", "This link is not valid or has expired. Please contact the branch."),
            404: ("Not found", "We could not find this appointment."),
            409: (
                "Not available",
                "This time is full, or the place held for you has lapsed. Please pick another.",
            ),
            422: ("Not available", "This time cannot be booked. Please pick another."),
            500: ("Something went wrong", "Something went wrong on our side. Please try again later."),
        },
    },
}
PageDay = Annotated[DateInput | None, Query(description="the day whose free slots to offer, YYYY-MM-DD")]


def page(lang: Language, title: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    values = {"facts": [], "message": None, "notice": None, "action": None, "choices": None, **values}
    html = TEMPLATES.get_template("booking_page.html").render(
        lang=lang, t=LABELS[lang], title=title, **values
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _link(service: WorkorderContext, token: str, kind: BookingLinkKind) -> BookingLink:
    return verify_booking_link(service.link_secret, token, kind, service.handlers.clock.now())


# An appointment's page --------------------------------------------------------------------------------------


def appointment_page(
    shown: AppointmentPage, token: str, lang: Language, *, message: str | None = None
) -> HTMLResponse:
    t = LABELS[lang]
    appointment, zone = shown.appointment, shown.timezone
    url = f"{APPOINTMENTS}/{token}"
    facts = [
        t["branch"].format(shown.branch_name),
        t["time"].format(_local(appointment.slot.start, zone)),
        t["service"].format(appointment.service_requested),
    ]
    if appointment.status is not AppointmentStatus.BOOKED:
        return page(
            lang, t["appointment"], facts=facts, message=message or t["status"][appointment.status.value]
        )
    day_link = f"{url}?lang={lang}&on={{}}"
    return page(
        lang,
        t["appointment"],
        facts=facts,
        message=message or (t["confirmed"] if appointment.confirmed else None),
        notice=t["deadline"].format(_local(shown.deadline, zone)) if shown.deadline else None,
        action=None
        if appointment.confirmed
        else {"url": f"{url}/confirmation?lang={lang}", "label": t["confirm"], "id": "confirm"},
        choices={
            "day": shown.day.isoformat(),
            "url": f"{url}/reschedule?lang={lang}",
            "slots": [
                {"value": slot.start.isoformat(), "label": slot.start.astimezone(zone).strftime("%H:%M")}
                for slot in shown.free_slots
            ],
            "previous": day_link.format((shown.day - timedelta(days=1)).isoformat()),
            "next": day_link.format((shown.day + timedelta(days=1)).isoformat()),
        },
    )


@router.get(APPOINTMENTS + "/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def read_appointment(
    token: str, service: Service, lang: Lang = None, on: PageDay = None
) -> HTMLResponse:
    link = _link(service, token, BookingLinkKind.APPOINTMENT)
    shown = await service.calendar.appointment_page(link.branch_id, link.record_id, on)
    return appointment_page(shown, token, language(lang))


@router.post(APPOINTMENTS + "/{token}/confirmation", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def confirm_appointment(token: str, service: Service, lang: Lang = None) -> HTMLResponse:
    link = _link(service, token, BookingLinkKind.APPOINTMENT)
    await service.handlers.confirm(link.branch_id, link.record_id, actor=None)
    shown = await service.calendar.appointment_page(link.branch_id, link.record_id, None)
    return appointment_page(shown, token, language(lang))


@router.post(APPOINTMENTS + "/{token}/reschedule", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def move_appointment(
    token: str, service: Service, slot_start: Annotated[DatetimeInput, Form()], lang: Lang = None
) -> HTMLResponse:
    link = _link(service, token, BookingLinkKind.APPOINTMENT)
    await service.handlers.reschedule(
        link.branch_id,
        link.record_id,
        RescheduleAppointment(slot_start=slot_start, reason="客户自助改约 / moved by the customer"),
        actor=None,
        field="slot_start",
    )
    shown = await service.calendar.appointment_page(link.branch_id, link.record_id, None)
    chosen = language(lang)
    moved = LABELS[chosen]["moved"].format(_local(shown.appointment.slot.start, shown.timezone))
    return appointment_page(shown, token, chosen, message=moved)


# A waitlist offer's page ------------------------------------------------------------------------------------


def offer_page(shown: OfferPage, token: str, lang: Language, now: datetime) -> HTMLResponse:
    t = LABELS[lang]
    entry, zone = shown.entry, shown.timezone
    facts = [t["branch"].format(shown.branch_name), t["service"].format(entry["service_requested"])]
    when = _local(entry["slot_start"], zone)
    if entry["status"] == "booked":
        return page(lang, t["offer"], facts=facts, message=t["taken"].format(when))
    until = held_until(entry, shown.hold, now)
    if until is not None:
        return page(
            lang,
            t["offer"],
            facts=facts,
            message=t["offered"].format(when, _local(until, zone)),
            action={"url": f"{WAITLIST}/{token}/acceptance?lang={lang}", "label": t["take"], "id": "take"},
        )
    return page(
        lang, t["offer"], facts=facts, message=t["waiting" if entry["status"] == "waiting" else "lapsed"]
    )


@router.get(WAITLIST + "/{token}", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def read_offer(token: str, service: Service, lang: Lang = None) -> HTMLResponse:
    link = _link(service, token, BookingLinkKind.WAITLIST_OFFER)
    shown = await service.calendar.offer_page(link.branch_id, link.record_id)
    return offer_page(shown, token, language(lang), service.handlers.clock.now())


@router.post(WAITLIST + "/{token}/acceptance", responses=PAGE_RESPONSES, response_class=HTMLResponse)
async def take_offer(token: str, service: Service, lang: Lang = None) -> HTMLResponse:
    link = _link(service, token, BookingLinkKind.WAITLIST_OFFER)
    await service.calendar.take_offer(link.branch_id, link.record_id)
    shown = await service.calendar.offer_page(link.branch_id, link.record_id)
    return offer_page(shown, token, language(lang), service.handlers.clock.now())


# Errors as pages ---------------------------------------------------------------------------------------------


def error_page(request: Request, status: int) -> Response:
    chosen = language(request.query_params.get("lang"))
    title, message = LABELS[chosen]["error"].get(status, LABELS[chosen]["error"][500])
    return page(chosen, title, status=status, message=message)


def install_error_pages(app: FastAPI) -> None:
    """Over the work order page's own (customer.py): these prefixes get these pages."""
    for prefix in (APPOINTMENTS, WAITLIST):
        install_customer_error_pages(app, prefix, error_page)
