"""The per-client limit on every route that demands no token: public booking and the customer's pages."""

from __future__ import annotations

import httpx
from workorder_harness import Harness

from pitlane_workorder.bootstrap import build

DAY = "2026-03-02"


def client_at(app: object, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),  # type: ignore[arg-type]
        base_url="http://workorder",
    )


async def test_public_routes_are_limited_per_client_address_and_route(harness: Harness) -> None:
    service = build(
        harness.settings.model_copy(update={"public_rate_limit": "3/minute"}), clock=harness.clock
    )
    async with (
        service.app.router.lifespan_context(service.app),
        client_at(service.app, "203.0.113.7") as abuser,
        client_at(service.app, "198.51.100.2") as neighbour,
    ):
        slots = "/v1/public/branches/b1/slots"
        statuses = [(await abuser.get(slots, params={"on": DAY})).status_code for _ in range(4)]
        refused = await abuser.get(slots, params={"on": DAY})
        other_client = await neighbour.get(slots, params={"on": DAY})
        other_route = await abuser.get("/c/not-a-signed-link")
        pages = [(await abuser.get("/c/not-a-signed-link")).status_code for _ in range(3)]

    assert 429 not in statuses[:3] and statuses[3] == 429
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert other_client.status_code != 429
    assert other_route.status_code == 403  # the customer's pages count on their own
    assert pages == [403, 403, 429]  # a page in the customer's language, with the status


async def test_staff_routes_are_not_limited_per_client(harness: Harness) -> None:
    service = build(
        harness.settings.model_copy(update={"public_rate_limit": "1/minute"}), clock=harness.clock
    )
    async with (
        service.app.router.lifespan_context(service.app),
        client_at(service.app, "203.0.113.7") as desk,
    ):
        statuses = [
            (await desk.get("/v1/branches", headers=harness.auth("owner", branches=("*",)))).status_code
            for _ in range(3)
        ]

    assert 429 not in statuses
