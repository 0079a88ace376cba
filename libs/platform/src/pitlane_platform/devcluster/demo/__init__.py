"""The demo chain (`pitlane demo`; `make up` plays it on an empty data directory): five branches, thousands of
customers and two years of visits, bookings, campaigns, reminders and NPS answers, made through the running
services' own HTTP APIs on a steered clock, then waited for until every projection has caught up (ADR 27).

It speaks to the services as their frontends do — over HTTP, by their published routes — and imports none of
them: the platform still knows no service's code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.devcluster.demo.drive import DemoReport, run_demo
from pitlane_platform.devcluster.demo.plan import FULL, SMALL, DemoSize
from pitlane_platform.settings import DEV_JWT_SECRET, ServiceSettings

SIZES: dict[str, DemoSize] = {"full": FULL, "small": SMALL}
# Where `pitlane up --demo` tells every service to read its clock's offset (<PREFIX>CLOCK_OFFSET_FILE).
CLOCK_OFFSET_FILE = "clock-offset"
SETTLE_TIMEOUT_S = 180.0

__all__ = ["CLOCK_OFFSET_FILE", "SIZES", "DemoReport", "play_demo"]


def play_demo(state: dict[str, Any], size: DemoSize, say: Callable[[str], None]) -> DemoReport:
    """Play the demo against the `pitlane up` of `state` (started with --demo), wait until every relay,
    consumer and due timer has caught up, and say where to look."""
    offset_file = state.get("clock_offset_file")
    if not offset_file:
        raise RuntimeError(
            "the services of this `pitlane up` do not follow a steered clock: start it with --demo on an empty "
            "data directory"
        )
    urls = {
        name: child["http_url"]
        for name, child in state["services"].items()
        if child.get("http_url") and " " not in name
    }
    timezone = ZoneInfo(ServiceSettings.model_fields["chain_timezone"].default)
    say(
        f"demo: playing {size.days} days of a chain of {size.customers} customers through the services' APIs "
        "(PITLANE_DEMO=0 or --no-demo skips it)"
    )
    report = asyncio.run(run_demo(urls, Path(offset_file), size=size, timezone=timezone, say=say))
    say(
        f"demo: {report.visits_completed} visits, {report.bookings} bookings ({report.no_shows} no-shows), "
        f"{report.add_ons} add-ons, {report.campaigns} campaigns, {report.nps_answers} NPS answers, "
        f"¥{report.revenue_fen / 100:,.2f} revenue, in {report.seconds:.0f}s; waiting for the projections…"
    )
    settled_in = asyncio.run(_until_settled(state))
    say(f"demo: every relay, consumer and due timer caught up ({settled_in:.0f}s)")
    say(_where_to_look(state, urls, report))
    return report


async def _until_settled(state: dict[str, Any]) -> float:
    """Wait until two looks in a row find every service settled (a consumer's reaction may write an event)."""
    from pitlane_platform.devcluster import messaging_backlogs, operator_nats

    started = time.monotonic()
    in_a_row = 0
    async with operator_nats(state) as client:  # one connection for every look
        while in_a_row < 2:
            if time.monotonic() - started > SETTLE_TIMEOUT_S:
                raise TimeoutError(
                    f"the services did not catch up within {SETTLE_TIMEOUT_S:.0f}s: see pitlane status"
                )
            settled = all(backlog.settled for backlog in await messaging_backlogs(state, client))
            in_a_row = in_a_row + 1 if settled else 0
            await asyncio.sleep(1.0)
    return time.monotonic() - started


def _where_to_look(state: dict[str, Any], urls: dict[str, str], report: DemoReport) -> str:
    gateway = (state.get("gateway") or {}).get("url", "")
    lines = [
        "",
        "The demo chain is ready. Where to look (README, 'The demo chain'):",
        f"  dashboard      {gateway}/dashboard   (token: .venv/bin/pitlane token --role owner --branch '*')",
    ]
    if report.showcase is not None:
        branch, order, phone = report.showcase
        token = mint_dev_token(
            DEV_JWT_SECRET, role="owner", branches=["*"], sub="demo-owner", ttl=timedelta(minutes=5)
        )
        link = httpx.post(
            f"{urls['workorder']}/v1/branches/{branch}/work-orders/{order}/customer-link",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if link.status_code == 201:
            lines.append(f"  customer page  {link.json()['url']}   (work order {order}: photos, bill, QC)")
        lines.append(
            f"  the customer   {gateway}/api/customer-profile/v1/lookup?phone={phone[-11:]}   (360°, with the token)"
        )
    return "\n".join(lines)
