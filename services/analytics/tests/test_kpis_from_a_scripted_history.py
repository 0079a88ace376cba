"""Every KPI of ../shared/KPI.md from a scripted history (scripted_history.py) published as its producers
would, against the figures worked out from the facts in plain Python: for the chain and for one branch, with
the events delivered in order, and again delivered twice each, in a shuffled order across aggregates."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from analytics_harness import Harness
from scripted_history import FROM, PERIOD_DAYS, TO, Expected, events, to_places

PERIOD = {"from": FROM.isoformat(), "to": TO.isoformat()}
DELIVERIES = {"in order, once": (1, None), "twice, shuffled across aggregates": (2, random.Random(20261206))}


def rate(answer: dict[str, Any] | None) -> dict[str, Any] | None:
    """A rate as the API sends it, with its value read back as a decimal."""
    if answer is None:
        return None
    value = answer["value"]
    return {**answer, "value": None if value is None else Decimal(value)}


def decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_every_kpi_matches_the_figures_worked_out_from_the_facts(
    harness: Harness, delivery: str
) -> None:
    copies, shuffle = DELIVERIES[delivery]
    history = events(harness)
    await harness.deliver(history, copies=copies, shuffle=shuffle)

    for branch in (None, "b1"):
        expected = Expected(branch)
        scope = {**PERIOD, **({"branch_id": branch} if branch else {})}
        await _customers(harness, expected, scope)
        await _nps_and_appointments(harness, expected, scope)
        await _staff_and_services(harness, expected, scope)
        await _campaigns_reminders_and_declined_work(harness, expected, scope)

    headline = await harness.kpi("/v1/kpis", **PERIOD)
    expected = Expected(None)
    assert headline["period"] == {
        "from": "2026-03-01",
        "to": "2026-04-01",
        "timezone": "Asia/Shanghai",
        "utc_from": "2026-02-28T16:00:00Z",
        "utc_to": "2026-03-31T16:00:00Z",
    }
    assert headline["branch_id"] is None and headline["chain_id"] == harness.settings.chain_id
    assert headline["data_as_of"] == max(e.occurred_at for e in history).isoformat().replace("+00:00", "Z")
    assert rate(headline["return_rate"]) == expected.return_rate()
    assert headline["new_customers"] == expected.activity()["new"]
    assert decimal(headline["nps"]) == expected.nps()["nps"]
    assert rate(headline["declined_work_recovery_by_fen"]) == expected.recovery()["by_fen"]
    # Opened + Completed of the 10 visits before `to`, 5 answers and 6 surveys, the period's 6 bookings' 12
    # events, 5 reminders and the 3 declined add-ons' 7 events: each once, however often it was delivered.
    assert headline["events"] == 20 + 11 + 12 + 5 + 7


async def _customers(harness: Harness, expected: Expected, scope: dict[str, str]) -> None:
    return_rate = await harness.kpi("/v1/kpis/return-rate", **scope)
    assert rate(return_rate["return_rate"]) == expected.return_rate()
    assert {c["customer_id"]: c["visits"] for c in return_rate["customers"]} == expected.counts()
    # Each visit of the period was written by its WorkOrderOpened and WorkOrderCompleted.
    assert return_rate["events"] == 2 * sum(expected.counts().values())

    spend = await harness.kpi("/v1/kpis/spend-per-year", **scope)
    exact_spend = expected.spend_exact()
    assert exact_spend is not None
    assert spend["spend_per_year_fen"] == round(exact_spend)
    assert spend["period_days"] == PERIOD_DAYS

    activity = await harness.kpi("/v1/kpis/customer-activity", **scope)
    assert {"new": activity["new"], "windows": activity["windows"]} == expected.activity()
    churned = await harness.kpi("/v1/kpis/customer-activity", **scope, status="churned", days=90)
    assert len(churned["customers"]) == expected.activity()["windows"][1]["churned"]

    lifetime = await harness.kpi("/v1/kpis/customer-lifetime", **scope)
    assert decimal(lifetime["mean_years"]) == to_places(expected.mean_lifetime(), 2)
    assert decimal(lifetime["median_years"]) == to_places(expected.median_lifetime(), 2)

    ltv = await harness.kpi("/v1/kpis/ltv", **scope)
    assert ltv["ltv_fen"] == round(exact_spend * expected.mean_lifetime())
    assert ltv["spend_per_year_fen"] == round(exact_spend)

    gaps = await harness.kpi("/v1/kpis/time-between-visits", **scope)
    expected_gaps = expected.gaps()
    assert gaps["gap_count"] == len(expected_gaps)
    assert decimal(gaps["mean_days"]) == to_places(sum(expected_gaps, Fraction(0)) / len(expected_gaps), 1)


async def _nps_and_appointments(harness: Harness, expected: Expected, scope: dict[str, str]) -> None:
    nps = await harness.kpi("/v1/kpis/nps", **scope)
    want = expected.nps()
    assert decimal(nps["nps"]) == want["nps"]
    assert (nps["answers"], nps["promoters"], nps["detractors"]) == (
        want["answers"],
        want["promoters"],
        want["detractors"],
    )
    assert nps["surveys_sent"] == want["surveys_sent"]
    assert rate(nps["response_rate"]) == want["response_rate"]
    assert nps["events"] == want["events"]
    assert len(nps["answer_list"]) == want["answers"]
    assert all("comment" not in answer for answer in nps["answer_list"])

    conversion = await harness.kpi("/v1/kpis/appointment-conversion", **scope)
    want = expected.conversion()
    assert rate(conversion["conversion"]) == want.pop("conversion")
    assert {key: conversion[key] for key in want} == want


async def _staff_and_services(harness: Harness, expected: Expected, scope: dict[str, str]) -> None:
    board = await harness.kpi("/v1/kpis/staff-leaderboard", **scope)
    assert [
        {**row, "nps": decimal(row["nps"]), "add_on_approval_rate": decimal(row["add_on_approval_rate"])}
        for row in board["staff"]
    ] == expected.staff()

    services = await harness.kpi("/v1/kpis/popular-services", **scope)
    assert {
        item["item_code"]: {key: item[key] for key in ("count", "revenue_fen", "gross_margin_fen")}
        for item in services["items"]
    } == expected.popular()


async def _campaigns_reminders_and_declined_work(
    harness: Harness, expected: Expected, scope: dict[str, str]
) -> None:
    roi = await harness.kpi("/v1/kpis/campaign-roi", **scope)
    orders: dict[str, list[str]] = {}
    for order in roi["orders"]:
        orders.setdefault(order["campaign_id"], []).append(order["work_order_id"])
    assert {
        campaign["campaign_id"]: {
            "orders": sorted(orders.get(campaign["campaign_id"], [])),
            "revenue_fen": campaign["revenue_fen"],
            "recipients": campaign["recipients"],
            "roi": rate(campaign["roi"]),
        }
        for campaign in roi["campaigns"]
    } == expected.campaigns()

    reminders = await harness.kpi("/v1/kpis/reminder-effectiveness", **scope)
    assert rate(reminders["effectiveness"]) == expected.reminders()

    recovery = await harness.kpi("/v1/kpis/declined-work-recovery", **scope)
    want = expected.recovery()
    assert rate(recovery["by_count"]) == want["by_count"]
    assert rate(recovery["by_fen"]) == want["by_fen"]


async def test_a_merged_customers_visits_count_as_the_survivors_and_an_erased_one_is_marked(
    harness: Harness,
) -> None:
    await harness.deliver(events(harness))

    activity = await harness.kpi("/v1/kpis/customer-activity", **PERIOD)
    customers = {row["customer_id"]: row for row in activity["customers"]}

    assert "c7" not in customers  # merged into c1: w9 is c1's visit
    assert customers["c1"]["last_visit_at"].startswith("2026-03-25")
    assert customers["c4"]["erased"] is True and customers["c1"]["erased"] is False
