"""Alerts to a branch's managers: a stage of a work order past its time limit (workorder's
WorkOrderStageOverdue). Staff are reached through the customers' pipeline — channels and their order,
templates, quiet hours, retries, the message log — under the recipient id `staff:<staff id>`. Their addresses
are the chain's to set (`PUT /v1/branches/{b}/staff/{s}/contact`), never customer-profile's; their messages
publish no NotificationSent or NotificationFailed, which tell about customers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pitlane_events.types import Purpose, StaffRole
from pitlane_events.workorder import ProcessStage, WorkOrderStageOverdue
from pitlane_notification.adapters import queries
from pitlane_notification.service_layer.delivery import Delivery
from pitlane_notification.service_layer.requests import MessageRequest, Related, Trigger, staff_recipient
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

# What a late stage is called, in the manager's language (the `stage` variable).
STAGE_NAMES: dict[tuple[ProcessStage, str], str] = {
    **{
        (stage, "zh-CN"): name
        for stage, name in zip(
            ProcessStage,
            ("接车", "环车检查", "派工", "维修", "增项确认", "质检", "结算", "交车"),
            strict=True,
        )
    },
    **{(stage, "en"): stage.value.replace("_", " ") for stage in ProcessStage},
}


async def staff_member_added(unit: Unit, branch_id: str, staff_id: str, role: StaffRole, name: str) -> None:
    """Who works where, and a contact row to reach them (no address until the chain sets one: an alert to
    them is logged as suppressed, `no_address`, until then)."""
    await execute_on_driver(
        unit,
        "branch staff",
        """
        INSERT INTO branch_staff (branch_id, staff_id, role) VALUES (%(b)s, %(s)s, %(r)s)
        ON CONFLICT (branch_id, staff_id) DO UPDATE SET role = excluded.role
        """,
        {"b": branch_id, "s": staff_id, "r": role.value},
    )
    await queries.upsert_contact(unit, staff_recipient(staff_id), full_name=name, phone=None)


async def staff_member(unit: Unit, branch_id: str, staff_id: str) -> dict[str, str] | None:
    rows = await fetch_on_driver(
        unit,
        "staff member",
        "SELECT staff_id, role FROM branch_staff WHERE branch_id = %(b)s AND staff_id = %(s)s",
        {"b": branch_id, "s": staff_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def set_contact(
    unit: Unit,
    staff_id: str,
    *,
    phone: str | None,
    email: str | None,
    wechat_open_id: str | None,
    locale: str,
) -> None:
    await execute_on_driver(
        unit,
        "staff contact",
        """
        UPDATE contacts SET phone = %(phone)s, email = %(email)s, wechat_open_id = %(wechat)s, locale = %(locale)s
        WHERE customer_id = %(id)s
        """,
        {
            "id": staff_recipient(staff_id),
            "phone": phone,
            "email": email,
            "wechat": wechat_open_id,
            "locale": locale,
        },
    )


async def alert_managers(
    delivery: Delivery,
    unit: Unit,
    event: WorkOrderStageOverdue,
    *,
    passage_id: str,
    branch_id: str,
    now: datetime,
) -> None:
    """One message to each manager of the order's branch per late passage through a stage (`passage_id`, the
    event's aggregate): a redelivered or repeated report queues nothing new."""
    managers = await fetch_on_driver(
        unit,
        "branch managers",
        "SELECT staff_id FROM branch_staff WHERE branch_id = %(b)s AND role = 'manager' ORDER BY staff_id",
        {"b": branch_id},
    )
    order = await queries.work_order(unit, event.work_order_id)
    branch = await queries.branch(unit, branch_id)
    zone = ZoneInfo(branch["timezone"]) if branch and branch["timezone"] else delivery.chain_timezone
    for (manager,) in managers:
        contact = await queries.contact(unit, staff_recipient(manager))
        locale = (contact or {}).get("locale") or "zh-CN"
        await delivery.queue(
            unit,
            MessageRequest(
                trigger=Trigger.STAGE_OVERDUE,
                purpose=Purpose.SERVICE,
                customer_id=staff_recipient(manager),
                cause=passage_id,
                due_at=now,
                branch_id=branch_id,
                context={
                    "plate": (order or {}).get("plate") or "",
                    "stage": STAGE_NAMES.get((event.stage, locale)) or STAGE_NAMES[(event.stage, "zh-CN")],
                    "limit_minutes": str(event.time_limit_minutes),
                    "due_time": event.due_at.astimezone(zone).strftime("%H:%M"),
                },
                related=Related(work_order_id=event.work_order_id),
            ),
        )
