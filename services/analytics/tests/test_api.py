"""The API's edges: periods follow the chain's time zone, who may read which branch, bad input named, CSV
for Excel."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from analytics_harness import Harness, shanghai

from pitlane_platform.testing.shop import work_order_completed, work_order_opened

DECEMBER = {"from": "2026-12-01", "to": "2027-01-01"}
JANUARY = {"from": "2027-01-01", "to": "2027-02-01"}


async def _visit(
    harness: Harness, work_order_id: str, customer_id: str, completed_at: datetime, branch: str = "b1"
) -> None:
    """A visit as workorder publishes it: the order opened and completed (paid 680 yuan, 小保养)."""
    opened = work_order_opened(work_order_id, customer_id, f"v-{customer_id}")
    completed = work_order_completed(
        work_order_id,
        customer_id,
        f"v-{customer_id}",
        branch_id=branch,
        completed_at=completed_at,
        total_fen=68_000,
    )
    await harness.deliver(
        [
            harness.event_at(completed_at, opened, work_order_id, branch_id=branch),
            harness.event_at(completed_at, completed, work_order_id, branch_id=branch),
        ]
    )


async def test_a_visit_at_half_past_eleven_on_new_years_eve_in_shanghai_counts_in_december(
    harness: Harness,
) -> None:
    await _visit(harness, "w-eve", "c-eve", shanghai(2026, 12, 31, 23, 30))  # 15:30 UTC
    await _visit(harness, "w-day", "c-day", shanghai(2027, 1, 1, 0, 30))  # 16:30 UTC, 31 Dec

    december = await harness.kpi("/v1/kpis/return-rate", **DECEMBER)
    january = await harness.kpi("/v1/kpis/return-rate", **JANUARY)

    assert [c["customer_id"] for c in december["customers"]] == ["c-eve"]
    assert [c["customer_id"] for c in january["customers"]] == ["c-day"]
    assert december["period"]["utc_to"] == "2026-12-31T16:00:00Z"


async def test_a_manager_reads_their_own_branch_only(harness: Harness) -> None:
    await _visit(harness, "w1", "c1", shanghai(2026, 12, 5), "b1")
    await _visit(harness, "w2", "c2", shanghai(2026, 12, 6), "b2")

    own = await harness.get(
        "/v1/kpis/return-rate", role="manager", branches=("b1",), params={**DECEMBER, "branch_id": "b1"}
    )
    other = await harness.get(
        "/v1/kpis/return-rate", role="manager", branches=("b1",), params={**DECEMBER, "branch_id": "b2"}
    )
    chain = await harness.get("/v1/kpis", role="manager", branches=("b1",), params=DECEMBER)
    advisor = await harness.get("/v1/kpis", role="advisor", params={**DECEMBER, "branch_id": "b1"})
    analyst = await harness.get("/v1/kpis/return-rate", role="analyst", params=DECEMBER)

    assert own.status_code == 200, own.text
    assert [c["customer_id"] for c in own.json()["customers"]] == ["c1"]
    assert other.status_code == 403 and other.headers["content-type"] == "application/problem+json"
    refusal = other.json()
    refusal.pop("trace_id", None)  # hexadecimal, request's own: it may hold "c2" by chance
    assert "b2" in refusal["detail"] and "c2" not in json.dumps(refusal, ensure_ascii=False)
    assert chain.status_code == 403
    assert advisor.status_code == 403
    assert analyst.status_code == 200 and len(analyst.json()["customers"]) == 2


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/kpis", {"from": "2027-01-01", "to": "2027-01-01"}, "query.to"),
        ("/v1/kpis/nps", {"from": "2027-02-01", "to": "2027-01-01"}, "query.to"),
        ("/v1/kpis/nps", {"from": "2027-02-30", "to": "2027-03-01"}, "query.from"),
        ("/v1/kpis/nps", {"to": "2027-03-01"}, "query.from"),
        ("/v1/kpis/nps", {**JANUARY, "branch_id": "b.1"}, "query.branch_id"),
        ("/v1/kpis/nps", {**JANUARY, "format": "xlsx"}, "query.format"),
        ("/v1/kpis/happiness", JANUARY, "path.kpi"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    harness: Harness, path: str, params: dict[str, str], field: str
) -> None:
    response = await harness.get(path, params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_drill_down_exports_as_csv_with_a_byte_order_mark_for_excel(harness: Harness) -> None:
    await _visit(harness, "w1", "c1", shanghai(2026, 12, 5))

    response = await harness.get("/v1/kpis/popular-services", params={**DECEMBER, "format": "csv"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        'filename="popular-services_chain_2026-12-01_2027-01-01.csv"'
        in response.headers["content-disposition"]
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(row["item_code"], row["name"], row["revenue_fen"]) for row in rows] == [
        ("MAINT-S", "小保养", "68000")
    ]
