"""`POST /v1/segments` over the scripted history (scripted_history.py): a segment holds exactly the customers
its drill-down lists — detractors, declined work not recovered, lapsed, churned — without the erased ones,
and is published as SegmentSaved; what lists no customers, an unknown filter or value, an empty list and a
manager's chain-wide request are refused, naming the field, and publish nothing."""

from __future__ import annotations

from typing import Any

from analytics_harness import Harness
from scripted_history import FROM, TO, events

PERIOD = {"from": FROM.isoformat(), "to": TO.isoformat()}


async def save(harness: Harness, kpi: str, role: str = "owner", **fields: Any) -> Any:
    return await harness.post(
        "/v1/segments", {"name": f"{kpi} segment", "kpi": kpi, **PERIOD, **fields}, role=role
    )


async def test_a_segment_holds_exactly_the_living_customers_its_drill_down_lists(harness: Harness) -> None:
    await harness.deliver(events(harness))
    nps = await harness.kpi("/v1/kpis/nps", **PERIOD)
    declined = await harness.kpi("/v1/kpis/declined-work-recovery", **PERIOD)
    churned = await harness.kpi("/v1/kpis/customer-activity", **PERIOD, status="churned", days=30)
    cases = [
        ("nps", {"group": "detractor"}, [row for row in nps["answer_list"] if row["score"] <= 6]),
        (
            "declined-work-recovery",
            {"recovered": "false"},
            [r for r in declined["add_ons"] if not r["recovered_by"]],
        ),
        ("customer-activity", {"status": "churned", "days": "30"}, churned["customers"]),
    ]
    saved_ids = []
    for kpi, filters, rows in cases:
        erased = {row["customer_id"] for row in rows if row.get("erased")}
        listed = {row["customer_id"] for row in rows} - erased
        assert listed, f"the scripted history gives {kpi} {filters} customers to save"
        response = await save(harness, kpi, filters=filters)
        assert response.status_code == 201, response.text
        segment = response.json()
        assert set(segment["customer_ids"]) == listed and segment["customer_count"] == len(listed)
        assert (segment["drill_down"]["kpi"], segment["drill_down"]["filters"]) == (kpi, filters)
        again = await harness.get(f"/v1/segments/{segment['segment_id']}")
        assert again.json() == segment
        saved_ids.append(segment["segment_id"])

    # c4 was erased: counted in the figures, marked in the drill-down, never in a segment.
    everyone = (await save(harness, "customer-lifetime")).json()
    assert "c4" not in everyone["customer_ids"]
    published = await harness.published("analytics.SegmentSaved")
    assert [e.data.segment_id for e in published] == [*saved_ids, everyone["segment_id"]]
    assert all(
        e.data.batch_count == 1 and e.data.customer_count == len(e.data.customer_ids) for e in published
    )


async def test_what_lists_no_customers_or_asks_wrongly_is_refused_naming_the_field(harness: Harness) -> None:
    await harness.deliver(events(harness))
    refusals = [
        (await save(harness, "ltv"), 422, "body.kpi"),
        (await save(harness, "nps", filters={"group": "fans"}), 422, "body.filters.group"),
        (await save(harness, "nps", filters={"colour": "red"}), 422, "body.filters.colour"),
        (await save(harness, "spend-per-year", to=FROM.isoformat()), 422, "body.to"),
        (
            await save(
                harness, "nps", filters={"group": "detractor"}, **{"from": "2020-01-01", "to": "2020-02-01"}
            ),
            422,
            "body",
        ),
        (await save(harness, "nps", role="manager"), 403, None),
        (await save(harness, "nps", role="manager", branch_id="b2"), 403, None),
    ]
    for response, status, field in refusals:
        assert response.status_code == status, response.text
        if field is not None:
            assert response.json()["errors"][0]["field"] == field
    assert await harness.rows("SELECT * FROM saved_segments") == []
    assert await harness.rows("SELECT * FROM outbox") == []  # nothing queued for publishing either
    own_branch = await save(harness, "customer-lifetime", role="manager", branch_id="b1")
    assert own_branch.status_code == 201, own_branch.text
    assert (await harness.get("/v1/segments/no-such-segment")).status_code == 404
