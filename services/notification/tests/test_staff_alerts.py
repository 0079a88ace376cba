"""A stage of a work order past its limit (workorder's WorkOrderStageOverdue) alerts the branch's managers
through the message pipeline, once, at the address the chain gave them; against real PostgreSQL and NATS."""

from __future__ import annotations

from datetime import timedelta

from notification_harness import BRANCH, Harness

from pitlane_events import Envelope, new_event_id
from pitlane_events.types import StaffRole
from pitlane_events.workorder import (
    ProcessRef,
    ProcessScope,
    ProcessStage,
    StaffMemberAdded,
    WorkOrderStageOverdue,
)


async def staff(harness: Harness, staff_id: str, role: StaffRole, name: str) -> None:
    added = StaffMemberAdded(staff_id=staff_id, display_name=name, role=role)
    await harness.emit_and_wait("workorder", added, f"staff-{BRANCH}", branch_id=BRANCH)


def late_dispatch(harness: Harness, work_order_id: str) -> WorkOrderStageOverdue:
    entered_at = harness.clock.now() - timedelta(minutes=15)  # 08:45 in Shanghai
    return WorkOrderStageOverdue(
        work_order_id=work_order_id,
        stage=ProcessStage.DISPATCH,
        occurrence=1,
        entered_at=entered_at,
        due_at=entered_at + timedelta(minutes=15),
        time_limit_minutes=15,
        responsible_role=StaffRole.ADVISOR,
        responsible_staff_id="amy",
        customer_id="c1",
        vehicle_id="v-c1",
        process=ProcessRef(scope=ProcessScope.CHAIN, version=1),
    )


async def test_a_late_stage_alerts_each_manager_once_at_the_address_the_chain_gave(harness: Harness) -> None:
    await harness.open_branch()
    await staff(harness, "max", StaffRole.MANAGER, "陈经理")
    await staff(harness, "mia", StaffRole.MANAGER, "林经理")
    await staff(harness, "amy", StaffRole.ADVISOR, "王芳")
    contact = await harness.put(
        f"/v1/branches/{BRANCH}/staff/max/contact", {"phone": "139 0000 1111"}, role="manager", sub="max"
    )
    assert contact.status_code == 200, contact.text
    assert (contact.json()["phone"], contact.json()["role"]) == ("+8613900001111", "manager")
    opened = harness.opened("wo-1", "c1")
    await harness.emit_and_wait("workorder", opened, "wo-1", branch_id=BRANCH)

    late = harness.envelope("workorder", late_dispatch(harness, "wo-1"), "passage-1", branch_id=BRANCH)
    # Delivered twice, and reported again under another event id: one alert per manager all the same.
    await harness.publish(late, msg_id="first delivery")
    await harness.publish(late, msg_id="second delivery")
    again = Envelope.model_validate({**late.model_dump(), "event_id": new_event_id()})
    await harness.consumed("workorder", await harness.publish(again))

    alerts = await harness.messages(trigger="stage_overdue")
    assert sorted(
        (m["customer_id"], m["status"] if m["customer_id"] == "staff:mia" else "") for m in alerts
    ) == [
        ("staff:max", ""),
        ("staff:mia", "suppressed"),  # no address given: logged with the reason, never sent
    ]
    [to_max] = [m for m in alerts if m["customer_id"] == "staff:max"]
    assert (to_max["channel"], to_max["work_order_id"], to_max["branch_id"]) == ("sms", "wo-1", BRANCH)
    assert to_max["body"] == "浦东张江店：沪A12345的派工已超过15分钟时限（应于09:00前完成），请跟进。"
    sent = await harness.until_message(message_id=to_max["message_id"], status="sent")
    assert sent["address"] == "+8613900001111"
    [recorded] = [r for r in await harness.recorded() if r["message_id"] == to_max["message_id"]]
    assert recorded["body"] == to_max["body"]
    # The events about messages tell about customers: none for the managers' alerts.
    assert await harness.published("notification.NotificationSent") == []
    assert await harness.published("notification.NotificationFailed") == []


async def test_a_managers_contact_is_theirs_to_set_for_their_branch(harness: Harness) -> None:
    await staff(harness, "max", StaffRole.MANAGER, "陈经理")
    path = f"/v1/branches/{BRANCH}/staff/max/contact"
    assert (await harness.put(path, {"phone": "13900001111"}, role="advisor", sub="amy")).status_code == 403
    other_branch = await harness.put(
        path, {"phone": "13900001111"}, role="manager", sub="max", branches=["b2"]
    )
    assert other_branch.status_code == 403
    empty = await harness.put(path, {"locale": "en"}, role="manager", sub="max")
    assert empty.status_code == 422, empty.text
    unknown = await harness.put(
        f"/v1/branches/{BRANCH}/staff/zed/contact", {"phone": "13900001111"}, role="manager"
    )
    assert unknown.status_code == 404
    assert (await harness.get(path, role="manager", sub="max")).json()["phone"] is None
