"""The work order (工单): an event-sourced aggregate with an explicit state machine.

    opened ─assign─▶ dispatched ─progress─▶ in_progress ─QC pass─▶ quality_passed ─settle─▶ settled ─complete─▶ completed
                          │                   ▲  │   ▲ QC fail ─┘
                          └──propose add-on──▶ awaiting_approval (until every add-on is approved or declined)
    any state but voided ─void (manager)─▶ voided

Every command checks the current state against `ALLOWED_STATES` and raises ConflictError (409) naming it, and
the rules of the process definition the order runs on (domain/process.py), raising ProcessRuleBroken (409)
naming the rule. Beside its states, the order keeps the stages it passes (`passages`): when each began and
ended, so each stage's deadline follows from the definition's time limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from pitlane_events import DomainEvent
from pitlane_events.types import AddOnDecision, AddOnSummary, Attachment, InspectionItem, LineCategory
from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    AddOnApproved,
    AddOnDeclined,
    AddOnProposed,
    DecidedBy,
    DecisionMethod,
    DispatchSuggestion,
    ProcessRef,
    ProgressRecorded,
    QualityCheckFailed,
    QualityCheckPassed,
    TechnicianAssigned,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderSettled,
    WorkOrderVoided,
)
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import ConflictError, InvalidInputError, NotFoundError
from pitlane_workorder.domain.process import ProcessDefinition, Stage, StagePassage
from pitlane_workorder.domain.settlement import Bill


class WorkOrderState(StrEnum):
    OPENED = "opened"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    AWAITING_APPROVAL = "awaiting_approval"
    QUALITY_PASSED = "quality_passed"
    SETTLED = "settled"
    COMPLETED = "completed"
    VOIDED = "voided"


S = WorkOrderState
WORKING = frozenset({S.DISPATCHED, S.IN_PROGRESS, S.AWAITING_APPROVAL})
ALLOWED_STATES: dict[str, frozenset[WorkOrderState]] = {
    "assign a technician": frozenset({S.OPENED}) | WORKING,
    "record progress": WORKING,
    "propose an add-on": WORKING,
    "decide on an add-on": frozenset({S.AWAITING_APPROVAL}),
    "record a quality check": frozenset({S.IN_PROGRESS}),
    "settle": frozenset({S.QUALITY_PASSED}),
    "complete": frozenset({S.SETTLED}),
    "void": frozenset(WorkOrderState) - {S.VOIDED},
}


@dataclass
class AddOn:
    add_on_id: str
    item: str
    category: LineCategory
    price_fen: int
    reason: str
    photo_hashes: tuple[str, ...]
    estimate_revision: int
    decision: AddOnDecision | None = None


@dataclass(frozen=True)
class StateVisit:
    state: WorkOrderState
    entered_at: datetime
    left_at: datetime | None = None


@dataclass
class Progress:
    recorded_by: str
    text: str
    attachments: tuple[Attachment, ...]
    recorded_at: datetime


@dataclass
class WorkOrderFacts:
    """What the opening recorded; constant for the life of the order."""

    customer_id: str = ""
    vehicle_id: str = ""
    plate: str = ""
    mileage_km: int = 0
    complaint: str = ""
    advisor_id: str = ""
    appointment_id: str | None = None
    inspection: tuple[InspectionItem, ...] = ()
    photo_hashes: tuple[str, ...] = ()
    opened_at: datetime | None = None
    process: ProcessRef = BUILT_IN_PROCESS
    work_categories: tuple[LineCategory, ...] = ()


@dataclass
class Settlement:
    event: WorkOrderSettled
    settled_at: datetime


class WorkOrder(Aggregate):
    keeps_correlation = True  # its appointment's visit, or (a walk-in) its own from the check-in

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.state = S.OPENED
        self.facts = WorkOrderFacts()
        self.technician_ids: list[str] = []
        self.add_ons: dict[str, AddOn] = {}
        self.progress: list[Progress] = []
        self.estimate_revision = 1  # revision 1 is the estimate agreed at check-in; each add-on adds one
        self.settlement: Settlement | None = None
        self.visits: list[StateVisit] = []
        self.passages: list[StagePassage] = []
        # The definition of `facts.process`, given by whoever loads the order (versions never change).
        self.definition: ProcessDefinition | None = None

    # Commands ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, event: WorkOrderOpened, at: datetime, definition: ProcessDefinition) -> WorkOrder:
        if definition.ref != event.process:
            raise ValueError(f"the order opens under {event.process}, not {definition.ref}")
        definition.check_check_in(event.photo_hashes, [item.photo_hashes for item in event.inspection])
        order = cls(event.work_order_id)
        order.definition = definition
        order.record(event, at)
        return order

    def assign_technician(
        self,
        technician_id: str,
        bay_id: str | None,
        at: datetime,
        *,
        suggestion: DispatchSuggestion | None = None,
    ) -> None:
        self._require("assign a technician")
        self.record(
            TechnicianAssigned(
                work_order_id=self.id, technician_id=technician_id, bay_id=bay_id, suggestion=suggestion
            ),
            at,
        )

    def record_progress(
        self,
        recorded_by: str,
        text: str,
        attachments: Sequence[Attachment],
        at: datetime,
        *,
        work_done: bool = False,
    ) -> None:
        self._require("record progress")
        self.process.check_progress(attachments)
        self.record(
            ProgressRecorded(
                work_order_id=self.id,
                recorded_by=recorded_by,
                text=text,
                attachments=tuple(attachments),
                work_done=work_done,
            ),
            at,
        )

    def propose_add_on(self, proposal: AddOnProposed, at: datetime) -> None:
        self._require("propose an add-on")
        self.process.check_add_on(proposal.photo_hashes)
        if proposal.add_on_id in self.add_ons:
            raise ConflictError(f"add-on {proposal.add_on_id} was already proposed on work order {self.id}")
        self.record(
            proposal.model_copy(
                update={"work_order_id": self.id, "estimate_revision": self.estimate_revision + 1}
            ),
            at,
        )

    def decide_add_on(
        self,
        add_on_id: str,
        *,
        approve: bool,
        estimate_revision_seen: int,
        decided_by: DecidedBy,
        method: DecisionMethod,
        at: datetime,
        reason: str | None = None,
    ) -> bool:
        """Record the customer's decision; False (and nothing recorded) when the same decision is already on
        record, so a link or a button used twice changes nothing."""
        add_on = self.add_ons.get(add_on_id)
        if add_on is None:
            raise NotFoundError(f"work order {self.id} has no add-on {add_on_id}")
        decision = AddOnDecision.APPROVED if approve else AddOnDecision.DECLINED
        if add_on.decision == decision:
            return False
        if add_on.decision is not None:
            raise ConflictError(f"add-on {add_on_id} was already {add_on.decision}; the decision stands")
        self._require("decide on an add-on")
        if (decided_by is DecidedBy.ADVISOR) == (method is DecisionMethod.SIGNED_LINK):
            raise InvalidInputError(
                "body.method",
                "the customer decides through the signed link; an advisor records a call or visit",
            )
        if not add_on.estimate_revision <= estimate_revision_seen <= self.estimate_revision:
            raise ConflictError(
                f"add-on {add_on_id} is in estimate revision {add_on.estimate_revision} and the estimate is now "
                f"at revision {self.estimate_revision}; revision {estimate_revision_seen} was seen: reload it"
            )
        decided = AddOnApproved if approve else AddOnDeclined
        extra = {} if approve else {"reason": reason}
        self.record(
            decided(
                work_order_id=self.id,
                add_on_id=add_on_id,
                item=add_on.item,
                category=add_on.category,
                price_fen=add_on.price_fen,
                estimate_revision_seen=estimate_revision_seen,
                photo_hashes_seen=add_on.photo_hashes,
                decided_by=decided_by,
                method=method,
                decided_at=at,
                **extra,
            ),
            at,
        )
        return True

    def pass_quality_check(self, inspector_id: str, note: str | None, at: datetime) -> None:
        self._require("record a quality check")
        self.record(QualityCheckPassed(work_order_id=self.id, inspector_id=inspector_id, note=note), at)

    def fail_quality_check(self, inspector_id: str, reasons: Sequence[str], at: datetime) -> None:
        self._require("record a quality check")
        self.record(
            QualityCheckFailed(work_order_id=self.id, inspector_id=inspector_id, reasons=tuple(reasons)), at
        )

    def settle(
        self, bill: Bill, *, coupon_code: str | None, campaign_id: str | None, settled_by: str, at: datetime
    ) -> None:
        self._require("settle")
        self.record(
            WorkOrderSettled(
                work_order_id=self.id,
                customer_id=self.facts.customer_id,
                line_items=bill.line_items,
                discounts=bill.discounts,
                coupon_code=coupon_code,
                campaign_id=campaign_id,
                subtotal_fen=bill.subtotal_fen,
                discount_fen=bill.discount_fen,
                total_fen=bill.total_fen,
                paid_fen=bill.paid_fen,
                payments=bill.payments,
                settled_by=settled_by,
            ),
            at,
        )

    def complete(self, branch_id: str, at: datetime) -> None:
        self._require("complete")
        assert self.settlement is not None and self.facts.opened_at is not None
        bill = self.settlement.event
        self.record(
            WorkOrderCompleted(
                work_order_id=self.id,
                customer_id=self.facts.customer_id,
                line_items=bill.line_items,
                discounts=bill.discounts,
                coupon_code=bill.coupon_code,
                campaign_id=bill.campaign_id,
                subtotal_fen=bill.subtotal_fen,
                discount_fen=bill.discount_fen,
                total_fen=bill.total_fen,
                paid_fen=bill.paid_fen,
                payments=bill.payments,
                vehicle_id=self.facts.vehicle_id,
                plate=self.facts.plate,
                mileage_km=self.facts.mileage_km,
                branch_id=branch_id,
                advisor_id=self.facts.advisor_id,
                technician_ids=tuple(self.technician_ids),
                appointment_id=self.facts.appointment_id,
                add_ons=tuple(
                    AddOnSummary(
                        add_on_id=add_on.add_on_id,
                        item=add_on.item,
                        category=add_on.category,
                        price_fen=add_on.price_fen,
                        decision=add_on.decision,
                    )
                    for add_on in self.add_ons.values()
                    if add_on.decision is not None
                ),
                opened_at=self.facts.opened_at,
                completed_at=at,
                # Handing the car back ends every stage still open (hand-over itself).
                stages=tuple(
                    (passage if passage.completed_at else replace(passage, completed_at=at)).record(
                        self.process
                    )
                    for passage in self.passages
                ),
            ),
            at,
        )

    def void(self, manager_id: str, reason: str, refunded_fen: int, at: datetime) -> None:
        self._require("void")
        if refunded_fen > self.paid_fen:
            raise InvalidInputError(
                "body.refunded_fen", f"only {self.paid_fen} fen were paid; {refunded_fen} cannot be refunded"
            )
        self.record(
            WorkOrderVoided(
                work_order_id=self.id,
                customer_id=self.facts.customer_id,
                reason=reason,
                manager_id=manager_id,
                refunded_fen=refunded_fen,
            ),
            at,
        )

    # Queries ----------------------------------------------------------------------------------------------

    @property
    def process(self) -> ProcessDefinition:
        """The definition the order runs on; loading an order gives it (an order never runs on another)."""
        if self.definition is None or self.definition.ref != self.facts.process:
            raise RuntimeError(f"work order {self.id} was loaded without its process definition")
        return self.definition

    @property
    def open_passages(self) -> list[StagePassage]:
        """The stages the order is in now (repair and an add-on's approval can run side by side); none once
        it is completed or voided."""
        if self.state in (S.COMPLETED, S.VOIDED):
            return []
        return [passage for passage in self.passages if passage.completed_at is None]

    @property
    def paid_fen(self) -> int:
        return self.settlement.event.paid_fen if self.settlement else 0

    @property
    def approved_add_on_ids(self) -> set[str]:
        return {a.add_on_id for a in self.add_ons.values() if a.decision is AddOnDecision.APPROVED}

    @property
    def pending_add_ons(self) -> list[AddOn]:
        return [add_on for add_on in self.add_ons.values() if add_on.decision is None]

    @property
    def media_hashes(self) -> set[str]:
        """Every file the order refers to: what its customer may see through the signed link."""
        hashes = set(self.facts.photo_hashes)
        for item in self.facts.inspection:
            hashes.update(item.photo_hashes)
        for entry in self.progress:
            hashes.update(attachment.content_hash for attachment in entry.attachments)
        for add_on in self.add_ons.values():
            hashes.update(add_on.photo_hashes)
        return hashes

    def entered_at(self, state: WorkOrderState) -> datetime | None:
        """When the order last entered `state`; None if it never did."""
        return next((visit.entered_at for visit in reversed(self.visits) if visit.state is state), None)

    def time_in_states(self, now: datetime) -> dict[WorkOrderState, timedelta]:
        totals: dict[WorkOrderState, timedelta] = {}
        for visit in self.visits:
            spent = (visit.left_at or now) - visit.entered_at
            totals[visit.state] = totals.get(visit.state, timedelta()) + spent
        return totals

    def _require(self, command: str) -> None:
        allowed = ALLOWED_STATES[command]
        if self.state not in allowed:
            names = ", ".join(sorted(allowed))
            raise ConflictError(f"work order {self.id} is {self.state}; to {command} it must be {names}")

    # State ------------------------------------------------------------------------------------------------

    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        next_state = self.state
        match event:
            case WorkOrderOpened():
                self.facts = WorkOrderFacts(
                    customer_id=event.customer_id,
                    vehicle_id=event.vehicle_id,
                    plate=event.plate,
                    mileage_km=event.mileage_km,
                    complaint=event.complaint,
                    advisor_id=event.advisor_id,
                    appointment_id=event.appointment_id,
                    inspection=event.inspection,
                    photo_hashes=event.photo_hashes,
                    opened_at=occurred_at,
                    process=event.process,
                    work_categories=event.work_categories,
                )
                self.visits.append(StateVisit(S.OPENED, occurred_at))
                self._pass(Stage.CHECK_IN, occurred_at)
                if event.inspection:
                    self._pass(Stage.INSPECTION, occurred_at)
                self._begin(Stage.DISPATCH, occurred_at)
                return
            case TechnicianAssigned():
                if event.technician_id not in self.technician_ids:
                    self.technician_ids.append(event.technician_id)
                if self.state is S.OPENED:
                    next_state = S.DISPATCHED
                if self._end(Stage.DISPATCH, occurred_at):
                    self._begin(Stage.REPAIR, occurred_at)
            case ProgressRecorded():
                self.progress.append(Progress(event.recorded_by, event.text, event.attachments, occurred_at))
                if self.state is S.DISPATCHED:
                    next_state = S.IN_PROGRESS
                if event.work_done and self._end(Stage.REPAIR, occurred_at):
                    self._begin(Stage.QUALITY_CHECK, occurred_at)
            case AddOnProposed():
                self.estimate_revision = event.estimate_revision
                self.add_ons[event.add_on_id] = AddOn(
                    add_on_id=event.add_on_id,
                    item=event.item,
                    category=event.category,
                    price_fen=event.price_fen,
                    reason=event.reason,
                    photo_hashes=event.photo_hashes,
                    estimate_revision=event.estimate_revision,
                )
                self._begin(Stage.ADD_ON_APPROVAL, occurred_at, add_on_id=event.add_on_id)
                next_state = S.AWAITING_APPROVAL
            case AddOnApproved() | AddOnDeclined():
                approved = isinstance(event, AddOnApproved)
                self.add_ons[event.add_on_id].decision = (
                    AddOnDecision.APPROVED if approved else AddOnDecision.DECLINED
                )
                self._end(Stage.ADD_ON_APPROVAL, occurred_at, add_on_id=event.add_on_id)
                if not self.pending_add_ons:
                    next_state = S.IN_PROGRESS
            case QualityCheckPassed():
                self._quality_checked(occurred_at)
                self._begin(Stage.SETTLEMENT, occurred_at)
                next_state = S.QUALITY_PASSED
            case QualityCheckFailed():
                self._quality_checked(occurred_at)
                self._begin(Stage.REPAIR, occurred_at)
                next_state = S.IN_PROGRESS
            case WorkOrderSettled():
                self.settlement = Settlement(event, occurred_at)
                self._end(Stage.SETTLEMENT, occurred_at)
                self._begin(Stage.HAND_OVER, occurred_at)
                next_state = S.SETTLED
            case WorkOrderCompleted():
                self._end(Stage.HAND_OVER, occurred_at)
                next_state = S.COMPLETED
            case WorkOrderVoided():
                next_state = S.VOIDED
        if next_state is not self.state:
            self._enter(next_state, occurred_at)

    def _enter(self, state: WorkOrderState, at: datetime) -> None:
        last = self.visits[-1]
        self.visits[-1] = StateVisit(last.state, last.entered_at, at)
        self.visits.append(StateVisit(state, at))
        self.state = state

    def _begin(self, stage: Stage, at: datetime, *, add_on_id: str | None = None) -> None:
        occurrence = 1 + sum(1 for passage in self.passages if passage.stage is stage)
        self.passages.append(StagePassage(stage, occurrence, at, add_on_id=add_on_id))

    def _end(self, stage: Stage, at: datetime, *, add_on_id: str | None = None) -> bool:
        """End the open passage through `stage` (of that add-on); False if there is none."""
        for index, passage in enumerate(self.passages):
            if passage.stage is stage and passage.completed_at is None and passage.add_on_id == add_on_id:
                self.passages[index] = replace(passage, completed_at=at)
                return True
        return False

    def _pass(self, stage: Stage, at: datetime) -> None:
        self._begin(stage, at)
        self._end(stage, at)

    def _quality_checked(self, at: datetime) -> None:
        """A QC ends the repair; without a repair reported done first, the QC began when it was recorded."""
        if self._end(Stage.REPAIR, at) or not self._end(Stage.QUALITY_CHECK, at):
            self._pass(Stage.QUALITY_CHECK, at)
