"""One correlation id per visit (issue 17, docs/observability.md): the booking starts it; the arrival, every
command on the work order opened from it and the customer's decision through the order's link carry it; a
walk-in's visit starts its own at the check-in, and a later booking another."""

from __future__ import annotations

from workorder_harness import BRANCH, Harness, rows

APPOINTMENTS = f"/v1/branches/{BRANCH}/appointments"


async def correlations(h: Harness, *stream_ids: str) -> list[tuple[str, str]]:
    """(event type, correlation id) of every stored event of the streams, in append order."""
    found = await rows(
        h,
        "SELECT event_type, envelope->>'correlation_id' FROM events WHERE stream_id = ANY(%s) ORDER BY position",
        list(stream_ids),
    )
    return [(event_type, correlation) for event_type, correlation in found]


async def visit_through_the_link(h: Harness, order: str) -> None:
    """Dispatch, a progress note, and an add-on the customer approves through the order's link."""
    assigned = await h.command(order, "technicians", {"technician_id": "tom"})
    assert assigned.is_success, assigned.text
    noted = await h.command(order, "progress", {"text": "拆下空调滤芯"}, role="technician", sub="tom")
    assert noted.is_success, noted.text
    proposed = await h.command(
        order,
        "add-ons",
        {"item": "更换空调滤芯", "category": "parts", "price_fen": 12_000, "reason": "滤芯发黑"},
    )
    assert proposed.is_success, proposed.text
    page = (await h.post(h.order_path(order, "customer-link"))).json()["path"]
    approved = await h.client.post(
        f"{page}/add-ons/{proposed.json()['add_on_id']}/approve", data={"estimate_revision_seen": "2"}
    )
    assert approved.status_code == 303, approved.text


async def test_every_step_of_a_booked_visit_carries_the_correlation_its_booking_started(
    branch: Harness,
) -> None:
    booked = await branch.book(10)
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["appointment_id"]
    arrived = await branch.post(
        f"{APPOINTMENTS}/{appointment}/arrival",
        {"mileage_km": 42_000, "complaint": "保养", "brand": "丰田", "model": "卡罗拉"},
    )
    assert arrived.status_code == 201, arrived.text
    order = arrived.json()["work_order_id"]
    await visit_through_the_link(branch, order)

    steps = await correlations(branch, appointment, order)
    [(_, started)] = [step for step in steps if step[0] == "workorder.AppointmentBooked"]
    assert {event_type for event_type, _ in steps} >= {
        "workorder.AppointmentBooked",
        "workorder.AppointmentArrived",
        "workorder.WorkOrderOpened",
        "workorder.TechnicianAssigned",
        "workorder.AddOnProposed",
        "workorder.AddOnApproved",
        "workorder.ProgressRecorded",
    }
    assert {correlation for _, correlation in steps} == {started}, steps
    # The customer and car the booking introduced are of the same visit.
    introduced = await rows(
        branch,
        "SELECT envelope->>'correlation_id' FROM events WHERE event_type = 'workorder.CustomerIntroduced'",
    )
    assert introduced == [(started,)]


async def test_a_walk_in_starts_its_own_correlation_at_the_check_in_and_a_next_booking_another(
    branch: Harness,
) -> None:
    first = await branch.walk_in()
    await visit_through_the_link(branch, first)
    second = await branch.walk_in()
    booked = await branch.book(11)
    assert booked.status_code == 201, booked.text

    first_visit = {correlation for _, correlation in await correlations(branch, first)}
    second_visit = {correlation for _, correlation in await correlations(branch, second)}
    booking = {correlation for _, correlation in await correlations(branch, booked.json()["appointment_id"])}
    assert len(first_visit) == len(second_visit) == len(booking) == 1
    assert len(first_visit | second_visit | booking) == 3
