"""The OpenAPI document tells the truth: schemathesis drives every operation and holds each answer to it."""

from __future__ import annotations

from profile_testing import Service

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.testing.openapi_check import assert_answers_as_documented


async def test_every_operation_answers_as_its_document_says(service: Service) -> None:
    # An owner reaches every operation; a technician meets the masked views and the 403s.
    owner = mint_dev_token(service.settings, role="owner", branches=["*"], sub="openapi-owner")
    technician = mint_dev_token(service.settings, role="technician", branches=["b1"], sub="openapi-tech")

    await assert_answers_as_documented(service.app, tokens=[owner, technician])
