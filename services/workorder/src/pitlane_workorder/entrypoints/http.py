"""The HTTP API: staff routes under /v1 (bearer token, role and branch checked), the public booking endpoint,
and the customer's page behind a signed link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pitlane_events import Actor
from pitlane_events.identifiers import mask_mobile
from pitlane_events.types import ContentHash
from pitlane_events.workorder import BookingChannel, DecidedBy, DecisionMethod
from pitlane_platform.auth import (
    CurrentPrincipal,
    Principal,
    Role,
    require_branch_access,
    require_roles,
    requires_bearer_token,
)
from pitlane_platform.errors import InvalidInputError, NotFoundError
from pitlane_platform.problems import problem_response
from pitlane_workorder.adapters import queries, read_models
from pitlane_workorder.adapters.blobstore import BlobStore
from pitlane_workorder.domain.capacity import SlotFullError
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.service_layer import commands, limits
from pitlane_workorder.service_layer.handlers import Handlers
from pitlane_workorder.service_layer.links import CustomerLink, sign_link, verify_link
from pitlane_workorder.service_layer.unit_of_work import unit_of_work

BRANCH_ADMINS = (Role.OWNER, Role.MANAGER)
FRONT_DESK = (Role.OWNER, Role.MANAGER, Role.ADVISOR)
WORKSHOP = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.TECHNICIAN)
COUNTER = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.FINANCE)
ACCEPTED_MEDIA = re.compile(r"^(image|video)/[a-z0-9.+-]{1,64}$")
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


@dataclass
class WorkorderContext:
    """What the routes need, kept on `app.state.workorder` by the bootstrap."""

    handlers: Handlers
    blobs: BlobStore
    link_secret: str
    link_ttl: timedelta
    max_upload_bytes: int


async def workorder(request: Request) -> WorkorderContext:
    context: WorkorderContext = request.app.state.workorder
    return context


Service = Annotated[WorkorderContext, Depends(workorder)]


def actor_of(principal: Principal) -> Actor:
    return Actor(kind="user", id=principal.user_id, role=str(principal.role))


def staff_in_branch(*roles: Role) -> Any:
    """A dependency: the principal, if its role is one of `roles` and its token covers the route's branch."""
    principal_with_role = require_roles(*roles)

    # One dependency level, not one on top of require_roles: each level costs FastAPI work per request.
    @requires_bearer_token
    async def principal_in_branch(branch_id: str, request: Request) -> Principal:
        principal = await principal_with_role(request)
        require_branch_access(principal, branch_id)
        return principal

    return Depends(principal_in_branch)


BranchAdmin = Annotated[Principal, staff_in_branch(*BRANCH_ADMINS)]
FrontDesk = Annotated[Principal, staff_in_branch(*FRONT_DESK)]
Workshop = Annotated[Principal, staff_in_branch(*WORKSHOP)]
Counter = Annotated[Principal, staff_in_branch(*COUNTER)]
AnyStaff = Annotated[Principal, staff_in_branch(*Role)]


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hop per request.
async def expected_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """The work order version the client last saw (`If-Match: "7"`); commands on a stale view are a 409."""
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InvalidInputError("header.if-match", 'must be the ETag of the work order, e.g. "7"')
    return int(tag)


ExpectedVersion = Annotated[int | None, Depends(expected_version)]


def order_response(order: WorkOrder, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = f'"{order.version}"'
    return {"work_order_id": order.id, "state": order.state.value, "version": order.version}


async def slot_full_problem(request: Request, error: SlotFullError) -> Response:
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error),
        problem_type="urn:pitlane:problem:slot-fully-booked",
        next_free_slots=[slot.model_dump(mode="json") for slot in error.next_free],
    )


# Staff API --------------------------------------------------------------------------------------------------

staff_router = APIRouter(prefix="/v1", tags=["staff"])


@staff_router.post("/branches", status_code=201)
async def open_branch(
    body: commands.OpenBranch,
    service: Service,
    principal: Annotated[Principal, Depends(require_roles(*BRANCH_ADMINS))],
) -> dict[str, str]:
    require_branch_access(principal, body.branch_id)
    await service.handlers.open_branch(body, actor_of(principal))
    return {"branch_id": body.branch_id}


@staff_router.post("/branches/{branch_id}/staff", status_code=201)
async def add_staff_member(
    branch_id: str,
    body: commands.AddStaffMember,
    service: Service,
    principal: BranchAdmin,
) -> dict[str, str]:
    await service.handlers.add_staff_member(branch_id, body, actor_of(principal))
    return {"staff_id": body.staff_id}


@staff_router.get("/branches/{branch_id}/staff")
async def list_staff(branch_id: str, service: Service, principal: AnyStaff) -> list[dict[str, Any]]:
    async with service.handlers.driver.transaction() as unit:
        return await queries.staff_of(unit, branch_id)


@staff_router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_by_staff(
    branch_id: str,
    body: commands.BookByStaff,
    service: Service,
    principal: FrontDesk,
) -> dict[str, Any]:
    return await service.handlers.book(branch_id, body, BookingChannel(body.channel), actor_of(principal))


@staff_router.get("/branches/{branch_id}/appointments")
async def list_appointments(
    branch_id: str,
    service: Service,
    on: Annotated[date, Query(description="local date of the branch")],
    principal: AnyStaff,
) -> list[dict[str, Any]]:
    async with service.handlers.driver.transaction() as unit:
        branch = await queries.branch(unit, branch_id)
        if branch is None:
            raise NotFoundError(f"branch {branch_id} does not exist")
        start = datetime.combine(on, datetime.min.time(), ZoneInfo(branch["timezone"]))
        listed = await queries.appointments_between(unit, branch_id, start, start + timedelta(days=1))
    if not principal.sees_full_phone_numbers:
        for appointment in listed:
            appointment["phone"] = mask_mobile(appointment["phone"])
    return listed


@staff_router.post("/branches/{branch_id}/appointments/{appointment_id}/reschedule", status_code=204)
async def reschedule(
    branch_id: str,
    appointment_id: str,
    body: commands.RescheduleAppointment,
    service: Service,
    principal: FrontDesk,
) -> None:
    await service.handlers.reschedule(branch_id, appointment_id, body, actor_of(principal))


@staff_router.post("/branches/{branch_id}/appointments/{appointment_id}/cancel", status_code=204)
async def cancel(
    branch_id: str,
    appointment_id: str,
    body: commands.CancelAppointment,
    service: Service,
    principal: FrontDesk,
) -> None:
    await service.handlers.cancel(branch_id, appointment_id, body, actor_of(principal))


@staff_router.post("/branches/{branch_id}/appointments/{appointment_id}/no-show", status_code=204)
async def mark_no_show(branch_id: str, appointment_id: str, service: Service, principal: FrontDesk) -> None:
    await service.handlers.mark_no_show(branch_id, appointment_id, actor_of(principal))


@staff_router.post("/branches/{branch_id}/appointments/{appointment_id}/arrival", status_code=201)
async def arrive(
    branch_id: str,
    appointment_id: str,
    body: commands.CheckIn,
    service: Service,
    principal: FrontDesk,
) -> dict[str, str]:
    work_order_id = await service.handlers.check_in(branch_id, body, actor_of(principal), appointment_id)
    return {"work_order_id": work_order_id}


@staff_router.post("/branches/{branch_id}/work-orders", status_code=201)
async def open_walk_in(
    branch_id: str,
    body: commands.CheckIn,
    service: Service,
    principal: FrontDesk,
) -> dict[str, str]:
    return {"work_order_id": await service.handlers.check_in(branch_id, body, actor_of(principal))}


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/technicians")
async def assign_technician(
    branch_id: str,
    work_order_id: str,
    body: commands.AssignTechnician,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: FrontDesk,
) -> dict[str, Any]:
    order = await service.handlers.assign_technician(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/progress")
async def record_progress(
    branch_id: str,
    work_order_id: str,
    body: commands.RecordProgress,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> dict[str, Any]:
    order = await service.handlers.record_progress(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/add-ons")
async def propose_add_on(
    branch_id: str,
    work_order_id: str,
    body: commands.ProposeAddOn,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> dict[str, Any]:
    order = await service.handlers.propose_add_on(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    newest = list(order.add_ons.values())[-1]
    return {
        **order_response(order, response),
        "add_on_id": newest.add_on_id,
        "estimate_revision": newest.estimate_revision,
    }


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/add-ons/{add_on_id}/decision")
async def record_decision(
    branch_id: str,
    work_order_id: str,
    add_on_id: str,
    body: commands.RecordDecision,
    service: Service,
    version: ExpectedVersion,
    principal: FrontDesk,
) -> dict[str, Any]:
    recorded = await service.handlers.decide_add_on(
        branch_id,
        work_order_id,
        add_on_id,
        approve=body.decision == "approved",
        estimate_revision_seen=body.estimate_revision_seen,
        decided_by=DecidedBy.ADVISOR,
        method=DecisionMethod(body.method),
        reason=body.reason,
        actor=actor_of(principal),
        expected_version=version,
    )
    return {"add_on_id": add_on_id, "decision": body.decision, "recorded": recorded}


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/quality-check")
async def record_quality_check(
    branch_id: str,
    work_order_id: str,
    body: commands.RecordQualityCheck,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> dict[str, Any]:
    order = await service.handlers.record_quality_check(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/settlement")
async def settle(
    branch_id: str,
    work_order_id: str,
    body: commands.SettleWorkOrder,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Counter,
) -> dict[str, Any]:
    order = await service.handlers.settle(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/completion")
async def complete(
    branch_id: str,
    work_order_id: str,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Counter,
) -> dict[str, Any]:
    order = await service.handlers.complete(
        branch_id, work_order_id, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/void")
async def void(
    branch_id: str,
    work_order_id: str,
    body: commands.VoidWorkOrder,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: BranchAdmin,
) -> dict[str, Any]:
    order = await service.handlers.void(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@staff_router.post("/branches/{branch_id}/work-orders/{work_order_id}/customer-link", status_code=201)
async def customer_link(
    branch_id: str,
    work_order_id: str,
    service: Service,
    request: Request,
    principal: FrontDesk,
) -> dict[str, Any]:
    async with unit_of_work(service.handlers.driver) as uow:
        await service.handlers.work_order(uow, branch_id, work_order_id)
    expires_at = service.handlers.clock.now() + service.link_ttl
    token = sign_link(service.link_secret, CustomerLink(work_order_id, branch_id, expires_at))
    path = f"/c/{token}"
    return {"url": str(request.base_url).rstrip("/") + path, "path": path, "expires_at": expires_at}


@staff_router.get("/branches/{branch_id}/board")
async def board(branch_id: str, service: Service, principal: AnyStaff) -> dict[str, Any]:
    async with service.handlers.driver.transaction() as unit:
        return await read_models.board(unit, branch_id, service.handlers.clock.now())


@staff_router.get("/branches/{branch_id}/work-orders/{work_order_id}")
async def work_order_detail(
    branch_id: str,
    work_order_id: str,
    service: Service,
    response: Response,
    principal: AnyStaff,
) -> dict[str, Any]:
    now = service.handlers.clock.now()
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, branch_id, work_order_id)
        history = await read_models.history(uow.unit, work_order_id)
    response.headers["ETag"] = f'"{order.version}"'
    return {
        "work_order_id": order.id,
        "branch_id": branch_id,
        "state": order.state.value,
        "version": order.version,
        "customer_id": order.facts.customer_id,
        "vehicle_id": order.facts.vehicle_id,
        "plate": order.facts.plate,
        "mileage_km": order.facts.mileage_km,
        "complaint": order.facts.complaint,
        "advisor_id": order.facts.advisor_id,
        "technician_ids": order.technician_ids,
        "estimate_revision": order.estimate_revision,
        "add_ons": [
            {**vars(add_on), "decision": add_on.decision.value if add_on.decision else None}
            for add_on in order.add_ons.values()
        ],
        "seconds_in_states": {
            state.value: spent.total_seconds() for state, spent in order.time_in_states(now).items()
        },
        "history": history,
    }


@staff_router.post("/branches/{branch_id}/media", status_code=201)
async def upload_media(
    branch_id: str,
    file: Annotated[UploadFile, File()],
    service: Service,
    principal: Workshop,
) -> dict[str, Any]:
    media_type = (file.content_type or "").lower()
    if not ACCEPTED_MEDIA.match(media_type):
        raise InvalidInputError(
            "body.file", f"only photos and videos are kept, not {media_type or 'unknown'}"
        )
    data = await file.read(service.max_upload_bytes + 1)
    if not data:
        raise InvalidInputError("body.file", "the file is empty")
    if len(data) > service.max_upload_bytes:
        raise InvalidInputError("body.file", f"larger than {service.max_upload_bytes} bytes")
    content_hash = await service.blobs.put(data, media_type)
    async with service.handlers.driver.transaction() as unit:
        await queries.add_media(unit, content_hash, media_type, len(data))
    return {"content_hash": content_hash, "media_type": media_type, "size_bytes": len(data)}


@staff_router.get("/media/{content_hash}")
async def download_media(
    content_hash: ContentHash, service: Service, principal: CurrentPrincipal
) -> Response:
    return await _media_response(service, content_hash)


async def _media_response(service: WorkorderContext, content_hash: str) -> Response:
    async with service.handlers.driver.transaction() as unit:
        stored = await queries.media(unit, [content_hash])
    media_type = stored[content_hash]["media_type"] if stored else None
    data = await service.blobs.get(content_hash) if media_type else None
    if media_type is None or data is None:
        raise NotFoundError(f"no file is stored under {content_hash}")
    # Content-addressed: the bytes under a hash never change, so clients may keep them for good.
    return Response(
        data, media_type=media_type, headers={"Cache-Control": "private, max-age=31536000, immutable"}
    )


# Public booking ---------------------------------------------------------------------------------------------

public_router = APIRouter(prefix="/v1/public", tags=["public"])


@public_router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_online(branch_id: str, body: commands.BookAppointment, service: Service) -> dict[str, Any]:
    """Online booking by the customer (no token): the channel is online; a campaign link passes its id."""
    return await service.handlers.book(branch_id, body, BookingChannel.ONLINE, actor=None)


# The customer's page ----------------------------------------------------------------------------------------

customer_router = APIRouter(prefix="/c", tags=["customer"])

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


@customer_router.get("/{token}", response_class=HTMLResponse)
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


@customer_router.post("/{token}/add-ons/{add_on_id}/approve")
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


@customer_router.post("/{token}/add-ons/{add_on_id}/decline")
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


@customer_router.get("/{token}/media/{content_hash}")
async def customer_media(token: str, content_hash: ContentHash, service: Service) -> Response:
    _, order = await _linked_order(service, token)
    if content_hash not in order.media_hashes:
        raise NotFoundError(f"work order {order.id} has no file {content_hash}")
    return await _media_response(service, content_hash)
