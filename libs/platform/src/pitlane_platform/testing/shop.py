"""A shop's everyday events, as workorder publishes them, for the tests of the services that consume them:
a car checked in, and a visit completed and paid (a small service, 小保养)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from pitlane_events.types import LineCategory, LineItem, Payment, PaymentMethod
from pitlane_events.workorder import BUILT_IN_PROCESS, WorkOrderCompleted, WorkOrderOpened


def work_order_opened(
    work_order_id: str, customer_id: str, vehicle_id: str, *, km: int = 40_000, advisor_id: str = "amy"
) -> WorkOrderOpened:
    return WorkOrderOpened(
        work_order_id=work_order_id,
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        plate="沪A12345",
        mileage_km=km,
        complaint="小保养",
        advisor_id=advisor_id,
        process=BUILT_IN_PROCESS,
    )


def work_order_completed(
    work_order_id: str,
    customer_id: str,
    vehicle_id: str,
    *,
    branch_id: str,
    completed_at: datetime,
    km: int = 40_000,
    total_fen: int = 68_000,
    advisor_id: str = "amy",
    technician_ids: Sequence[str] = ("tom", "lee"),
) -> WorkOrderCompleted:
    """The visit, paid in full by WeChat Pay: one line, the small service."""
    return WorkOrderCompleted(
        work_order_id=work_order_id,
        customer_id=customer_id,
        line_items=(
            LineItem(
                item_code="MAINT-S",
                name="小保养",
                category=LineCategory.PACKAGE,
                quantity=Decimal(1),
                unit_price_fen=total_fen,
                line_total_fen=total_fen,
            ),
        ),
        subtotal_fen=total_fen,
        discount_fen=0,
        total_fen=total_fen,
        paid_fen=total_fen,
        payments=(Payment(method=PaymentMethod.WECHAT_PAY, amount_fen=total_fen, paid_at=completed_at),),
        vehicle_id=vehicle_id,
        plate="沪A12345",
        mileage_km=km,
        branch_id=branch_id,
        advisor_id=advisor_id,
        technician_ids=tuple(technician_ids),
        opened_at=completed_at - timedelta(hours=2),
        completed_at=completed_at,
    )
