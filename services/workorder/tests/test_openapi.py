"""The OpenAPI document tells the truth: schemathesis drives every operation of workorder and holds each
answer to it — staff routes, the public booking, the customer's pages and media downloads."""

from __future__ import annotations

from workorder_harness import BRANCH, Harness

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.testing.openapi_check import assert_answers_as_documented


async def test_every_operation_answers_as_its_document_says(branch: Harness) -> None:
    # An owner reaches every route (and may open branches); a manager the branch's; a technician meets the
    # 403s and the masked phones.
    owner = mint_dev_token(branch.settings, role="owner", branches=["*"], sub="openapi-owner")
    manager = mint_dev_token(branch.settings, role="manager", branches=[BRANCH], sub="openapi-manager")
    technician = mint_dev_token(branch.settings, role="technician", branches=[BRANCH], sub="openapi-tech")

    # The sweep of hostile inputs (sent with the first token) runs on the branch and a work order that exist.
    work_order_id = await branch.walk_in()

    await assert_answers_as_documented(
        branch.service.app,
        tokens=[owner, manager, technician],
        known_path_parameters={"branch_id": BRANCH, "work_order_id": work_order_id},
    )
