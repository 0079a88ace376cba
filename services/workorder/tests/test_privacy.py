"""Security I (ADR 13) over HTTP, against real PostgreSQL and NATS: what an upload is, is read from its
bytes; the customer's links come from the configured base URL, can be revoked and close with a voided order;
the customer's pages and files carry their security headers; an online booking names no ids and is
attributed only through a signed token; analysts see no names or phones; files stay in their branch."""

from __future__ import annotations

import pytest
from workorder_harness import BRANCH, Harness

from pitlane_events.workorder import AppointmentBooked

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"brake disc" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HTML = b"<!doctype html><html><body><script>fetch('/v1/branches')</script></body></html>"
OTHER_BRANCH = "b2"


async def linked_order(h: Harness) -> tuple[str, str]:
    """A walk-in's order and the path of its customer page."""
    order = await h.walk_in()
    link = await h.post(h.order_path(order, "customer-link"))
    assert link.status_code == 201, link.text
    return order, link.json()["path"]


@pytest.mark.parametrize("content", [SVG, HTML], ids=["svg", "html"])
async def test_a_page_disguised_as_a_jpeg_is_a_422_naming_the_file(branch: Harness, content: bytes) -> None:
    response = await branch.post(
        f"/v1/branches/{BRANCH}/media", files={"file": ("pads.jpg", content, "image/jpeg")}, role="technician"
    )
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["body.file"]


async def test_a_photo_is_kept_as_what_its_bytes_are_and_served_nosniff(branch: Harness) -> None:
    stored = await branch.post(
        f"/v1/branches/{BRANCH}/media", files={"file": ("x.bin", PNG, "application/octet-stream")}
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["media_type"] == "image/png"
    served = await branch.get(f"/v1/media/{stored.json()['content_hash']}")
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline; filename=")


async def test_the_link_of_a_voided_order_is_a_403(branch: Harness) -> None:
    order, page = await linked_order(branch)
    assert (await branch.client.get(page)).status_code == 200
    voided = await branch.command(order, "void", {"reason": "客户取消"}, role="manager", sub="max")
    assert voided.status_code == 200, voided.text
    refused = await branch.client.get(page)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert (await branch.post(branch.order_path(order, "customer-link"))).status_code == 409


async def test_a_forged_host_header_does_not_change_the_link(branch: Harness) -> None:
    order = await branch.walk_in()
    link = await branch.post(
        branch.order_path(order, "customer-link"),
        headers={"Host": "phishing.example", "X-Forwarded-Host": "phishing.example"},
    )
    assert link.status_code == 201, link.text
    answer = link.json()
    assert answer["url"] == "https://shop.example.cn" + answer["path"]
    assert "phishing" not in link.text


async def test_revoked_links_stop_working_and_a_new_one_works(branch: Harness) -> None:
    order, page = await linked_order(branch)
    revoked = await branch.post(branch.order_path(order, "customer-link/revocation"))
    assert revoked.status_code == 204, revoked.text
    assert (await branch.client.get(page)).status_code == 403
    fresh = (await branch.post(branch.order_path(order, "customer-link"))).json()["path"]
    assert (await branch.client.get(fresh)).status_code == 200
    assert (
        await branch.post(branch.order_path(order, "customer-link/revocation"), role="technician")
    ).status_code == 403


async def test_customer_pages_and_their_errors_send_the_security_headers(branch: Harness) -> None:
    _, page = await linked_order(branch)
    for response in (await branch.client.get(page), await branch.client.get("/c/forged.token")):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


async def test_an_online_booking_names_no_ids_and_is_attributed_only_through_a_signed_token(
    branch: Harness,
) -> None:
    for field in ("customer_id", "vehicle_id", "campaign_id", "reminder_id"):
        typed = await branch.book(10, online=True, **{field: "someone-else"})
        assert typed.status_code == 422, typed.text
        assert [error["field"] for error in typed.json()["errors"]] == [f"body.{field}"]
    campaign = await branch.attribution("campaign", "double11")
    forged = campaign[:-2] + ("AA" if not campaign.endswith("AA") else "BB")
    for token in (forged, await branch.attribution("reminder", "r-1") + "x", "not.a-token-we-signed"):
        refused = await branch.book(10, online=True, attribution=token)
        assert refused.status_code == 422, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == ["body.attribution"]

    by_campaign = await branch.book(10, online=True, attribution=campaign)
    assert by_campaign.status_code == 201, by_campaign.text
    assert set(by_campaign.json()) == {"appointment_id", "slot"}
    reminded = await branch.book(11, online=True, attribution=await branch.attribution("reminder", "r-1"))
    assert reminded.status_code == 201, reminded.text
    published = await branch.published(at_least=7)  # branch, 3 staff, 1 introduction, 2 bookings
    bookings = [e.data for e in published if isinstance(e.data, AppointmentBooked)]
    assert [(b.campaign_id, b.reminder_id) for b in bookings] == [("double11", None), (None, "r-1")]
    assert (
        await branch.post("/v1/attribution-tokens", {"kind": "campaign", "source_id": "x"})
    ).status_code == 403


async def test_analysts_see_no_names_or_phones(branch: Harness) -> None:
    booked = await branch.book(10, online=True)
    assert booked.status_code == 201, booked.text
    order = await branch.walk_in()
    analyst = branch.auth("analyst", sub="ana", branches=("*",))
    answers = [
        await branch.client.get(f"/v1/branches/{BRANCH}/appointments?on=2026-11-16", headers=analyst),
        await branch.client.get(f"/v1/branches/{BRANCH}/board", headers=analyst),
        await branch.client.get(branch.order_path(order), headers=analyst),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    for answer in answers:
        for personal in ("陈先生", "刘女士", "13812345678", "5678"):
            assert personal not in answer.text, (answer.url, personal)
    [appointment] = answers[0].json()
    assert (appointment["customer_name"], appointment["phone"]) == (None, None)
    [card] = answers[1].json()["columns"]["opened"]
    assert card["customer_name"] is None
    # The front desk still sees them.
    [desk] = (await branch.get(f"/v1/branches/{BRANCH}/appointments?on=2026-11-16")).json()
    assert (desk["customer_name"], desk["phone"]) == ("陈先生", "+8613812345678")


async def test_a_file_is_readable_only_by_staff_of_its_branch_or_through_its_orders_link(
    branch: Harness,
) -> None:
    opened = await branch.post(
        "/v1/branches",
        {
            "branch_id": OTHER_BRANCH,
            "name": "徐汇店",
            "address": "上海市徐汇区",
            "bays": [{"bay_id": "x", "name": "1"}],
        },
        role="owner",
        headers=branch.auth("owner", branches=("*",)),
    )
    assert opened.status_code == 201, opened.text
    photo = await branch.upload(JPEG)
    path = f"/v1/media/{photo}"
    assert (await branch.get(path, role="technician")).status_code == 200
    assert (await branch.client.get(path, headers=branch.auth("owner", branches=("*",)))).status_code == 200
    other = branch.auth("advisor", sub="bob", branches=(OTHER_BRANCH,))
    assert (await branch.client.get(path, headers=other)).status_code == 404
    analyst = branch.auth("analyst", sub="ana", branches=("*",))
    assert (await branch.client.get(path, headers=analyst)).status_code == 403
    # Another branch cannot show this branch's file on its orders either.
    walk_in = {
        "plate": "沪C11111",
        "phone": "13700001111",
        "customer_name": "周先生",
        "brand": "本田",
        "model": "思域",
        "mileage_km": 1,
        "complaint": "异响",
        "photo_hashes": [photo],
    }
    refused = await branch.post(f"/v1/branches/{OTHER_BRANCH}/work-orders", walk_in, headers=other)
    assert refused.status_code == 422, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == ["body.photo_hashes.0"]
    # The order's customer sees it through the order's link.
    order = await branch.walk_in()
    progress = await branch.command(order, "technicians", {"technician_id": "tom"})
    assert progress.status_code == 200, progress.text
    recorded = await branch.command(
        order, "progress", {"text": "检查", "attachments": [photo]}, role="technician", sub="tom"
    )
    assert recorded.status_code == 200, recorded.text
    page = (await branch.post(branch.order_path(order, "customer-link"))).json()["path"]
    served = await branch.client.get(f"{page}/media/{photo}")
    assert served.status_code == 200 and served.content == JPEG
    assert (
        served.headers["x-content-type-options"] == "nosniff"
        and served.headers["referrer-policy"] == "no-referrer"
    )
