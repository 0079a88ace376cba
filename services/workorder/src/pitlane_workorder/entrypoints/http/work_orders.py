"""The work order at the front desk and in the workshop: walk-in check-in, each command of its state machine
(answering state, version and ETag), the customer's link, the board and the detail with its history."""

from __future__ import annotations

from fastapi import APIRouter, Response

from pitlane_events.workorder import DecidedBy, DecisionMethod
from pitlane_platform.errors import ConflictError
from pitlane_platform.security.links import CustomerLink, sign_link
from pitlane_workorder.adapters import queries, read_models
from pitlane_workorder.domain.workorder import WorkOrderState
from pitlane_workorder.entrypoints.http.common import (
    AnyStaff,
    BranchAdmin,
    Counter,
    ExpectedVersion,
    FrontDesk,
    Service,
    Workshop,
    actor_of,
    order_response,
    sees_personal_data,
)
from pitlane_workorder.entrypoints.http.responses import (
    AddOnProposalAnswer,
    Board,
    CustomerLinkAnswer,
    DecisionAnswer,
    WorkOrderAnswer,
    WorkOrderDetail,
)
from pitlane_workorder.service_layer import commands, dispatch
from pitlane_workorder.service_layer.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["staff"])


@router.post("/branches/{branch_id}/work-orders", status_code=201)
async def open_walk_in(
    branch_id: str,
    body: commands.CheckIn,
    service: Service,
    response: Response,
    principal: FrontDesk,
) -> WorkOrderAnswer:
    return order_response(await service.handlers.check_in(branch_id, body, actor_of(principal)), response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/technicians")
async def assign_technician(
    branch_id: str,
    work_order_id: str,
    body: commands.AssignTechnician,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: FrontDesk,
) -> WorkOrderAnswer:
    suggestion = (
        dispatch.verified(
            service.link_secret, body.suggestion_token, work_order_id, service.handlers.clock.now()
        )
        if body.suggestion_token is not None
        else None
    )
    order = await service.handlers.assign_technician(
        branch_id, work_order_id, body, actor_of(principal), suggestion=suggestion, expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/progress")
async def record_progress(
    branch_id: str,
    work_order_id: str,
    body: commands.RecordProgress,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> WorkOrderAnswer:
    order = await service.handlers.record_progress(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/add-ons")
async def propose_add_on(
    branch_id: str,
    work_order_id: str,
    body: commands.ProposeAddOn,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> AddOnProposalAnswer:
    order = await service.handlers.propose_add_on(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    newest = list(order.add_ons.values())[-1]
    return AddOnProposalAnswer(
        **order_response(order, response).model_dump(),
        add_on_id=newest.add_on_id,
        estimate_revision=newest.estimate_revision,
    )


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/add-ons/{add_on_id}/decision")
async def record_decision(
    branch_id: str,
    work_order_id: str,
    add_on_id: str,
    body: commands.RecordDecision,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: FrontDesk,
) -> DecisionAnswer:
    order, recorded = await service.handlers.decide_add_on(
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
    return DecisionAnswer(
        **order_response(order, response).model_dump(),
        add_on_id=add_on_id,
        decision=body.decision,
        recorded=recorded,
    )


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/quality-check")
async def record_quality_check(
    branch_id: str,
    work_order_id: str,
    body: commands.RecordQualityCheck,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Workshop,
) -> WorkOrderAnswer:
    order = await service.handlers.record_quality_check(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/settlement")
async def settle(
    branch_id: str,
    work_order_id: str,
    body: commands.SettleWorkOrder,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Counter,
) -> WorkOrderAnswer:
    order = await service.handlers.settle(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/completion")
async def complete(
    branch_id: str,
    work_order_id: str,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: Counter,
) -> WorkOrderAnswer:
    order = await service.handlers.complete(
        branch_id, work_order_id, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/void")
async def void(
    branch_id: str,
    work_order_id: str,
    body: commands.VoidWorkOrder,
    service: Service,
    response: Response,
    version: ExpectedVersion,
    principal: BranchAdmin,
) -> WorkOrderAnswer:
    order = await service.handlers.void(
        branch_id, work_order_id, body, actor_of(principal), expected_version=version
    )
    return order_response(order, response)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/customer-link", status_code=201)
async def customer_link(
    branch_id: str,
    work_order_id: str,
    service: Service,
    principal: FrontDesk,
) -> CustomerLinkAnswer:
    """A signed link to the customer's page, under the configured public base URL (never the request's
    Host header, which the client chooses)."""
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, branch_id, work_order_id)
        generation = await queries.link_generation(uow.unit, work_order_id)
    if order.state is WorkOrderState.VOIDED:
        raise ConflictError(f"work order {work_order_id} is voided; its customer page is closed")
    expires_at = service.handlers.clock.now() + service.link_ttl
    token = sign_link(service.link_secret, CustomerLink(work_order_id, branch_id, expires_at, generation))
    path = f"/c/{token}"
    return CustomerLinkAnswer(url=service.public_base_url + path, path=path, expires_at=expires_at)


@router.post("/branches/{branch_id}/work-orders/{work_order_id}/customer-link/revocation", status_code=204)
async def revoke_customer_links(
    branch_id: str, work_order_id: str, service: Service, principal: FrontDesk
) -> None:
    """Every link to the order's page sent so far stops working (a 403); a link made afterwards works."""
    async with unit_of_work(service.handlers.driver) as uow:
        await service.handlers.work_order(uow, branch_id, work_order_id)
        # Waits for a decision in flight through one of the links, and holds back those that come after
        # (queries.lock_links): once this answers, no withdrawn link records anything.
        await queries.lock_links(uow.unit, work_order_id)
        await queries.revoke_links(uow.unit, work_order_id, service.handlers.clock.now(), principal.user_id)


@router.get("/branches/{branch_id}/board")
async def board(branch_id: str, service: Service, principal: AnyStaff) -> Board:
    async with service.handlers.driver.transaction() as unit:
        board = await read_models.board(unit, branch_id, service.handlers.clock.now())
    if not sees_personal_data(principal):
        for card in (card for column in board["columns"].values() for card in column):
            card["customer_name"] = None
    return Board.model_validate(board)


@router.get("/branches/{branch_id}/work-orders/{work_order_id}")
async def work_order_detail(
    branch_id: str,
    work_order_id: str,
    service: Service,
    response: Response,
    principal: AnyStaff,
) -> WorkOrderDetail:
    now = service.handlers.clock.now()
    async with unit_of_work(service.handlers.driver) as uow:
        order = await service.handlers.work_order(uow, branch_id, work_order_id)
        history = await read_models.history(uow.unit, work_order_id)
    response.headers["ETag"] = f'"{order.version}"'
    return WorkOrderDetail.model_validate(
        {
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
            "process": order.facts.process,
            "stages": [
                {
                    **vars(passage),
                    "due_at": order.process.due_at(passage),
                    "responsible_role": order.process.rule(passage.stage).responsible_role,
                }
                for passage in order.passages
            ],
            "history": history,
        }
    )
