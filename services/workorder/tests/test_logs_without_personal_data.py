"""A whole work order, from walk-in to completion and the customer's link, leaves no personal data and no
link token in any log line: neither what pytest captures from the loggers nor the JSON on stderr."""

from __future__ import annotations

import logging

import pytest
from workorder_harness import BRANCH, Harness

NAME = "欧阳秘密"
PHONE = "13977771234"
PLATE = "沪B99X77"


async def test_a_whole_work_order_logs_no_name_phone_plate_or_link_token(
    branch: Harness, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    h = branch
    with caplog.at_level(logging.DEBUG):
        opened = await h.post(
            f"/v1/branches/{BRANCH}/work-orders",
            {
                "customer_name": NAME,
                "phone": PHONE,
                "plate": PLATE,
                "brand": "大众",
                "model": "朗逸",
                "mileage_km": 51_000,
                "complaint": "异响",
            },
        )
        assert opened.status_code == 201, opened.text
        order = opened.json()["work_order_id"]
        await h.command(order, "technicians", {"technician_id": "tom"})
        await h.command(order, "progress", {"text": "检查完毕"}, role="technician", sub="tom")
        await h.command(order, "quality-check", {"passed": True}, role="manager")
        settled = await h.command(
            order,
            "settlement",
            {
                "line_items": [
                    {
                        "item_code": "LAB",
                        "name": "工时",
                        "category": "labour",
                        "quantity": "1",
                        "unit_price_fen": 10_000,
                        "line_total_fen": 10_000,
                    }
                ],
                "payments": [{"method": "cash", "amount_fen": 10_000}],
                "total_fen": 10_000,
            },
            role="finance",
        )
        assert settled.status_code == 200, settled.text
        link = await h.post(h.order_path(order, "customer-link"))
        page_path = link.json()["path"]
        token = page_path.removeprefix("/c/").split("/")[0]
        assert (await h.client.get(page_path, params={"lang": "en"})).status_code == 200
        assert (await h.client.get(page_path + "/media/sha256:" + "0" * 64)).status_code == 404
        assert (await h.command(order, "completion")).status_code == 200
        board = await h.get(f"/v1/branches/{BRANCH}/board")
        assert board.status_code == 200

    logged = caplog.text + "".join(capfd.readouterr())
    assert "/c/…" in logged, "the link's requests were logged, redacted"
    for secret in (NAME, PHONE, PLATE, token):
        assert secret not in logged, f"{secret!r} reached a log line"
