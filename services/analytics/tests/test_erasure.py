"""An erased customer's NPS answers leave the figures: notification securely deletes those events from its
stream, so analytics keeps no copy of them — whichever arrives first, the erasure or the answer — and a
rebuild from the streams gives the same NPS as the live figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from analytics_harness import Harness, shanghai

from pitlane_events import Envelope
from pitlane_events.customer_profile import CustomerErased, CustomersMerged
from pitlane_events.notification import NpsAnswered

PERIOD = {"from": "2026-03-01", "to": "2026-04-01"}


def answer(harness: Harness, survey: str, customer: str, score: int, day: int) -> Envelope[Any]:
    event = NpsAnswered(
        survey_id=survey,
        work_order_id=f"wo-{survey}",
        customer_id=customer,
        advisor_id="amy",
        technician_ids=("tom",),
        branch_id="b1",
        score=score,
        comment="很好",
    )
    return harness.event_at(shanghai(2026, 3, day), event, survey, branch_id="b1")


def erased(harness: Harness, customer: str, day: int) -> Envelope[Any]:
    event = CustomerErased(customer_id=customer, erasure_request_id=f"erase-{customer}")
    return harness.event_at(shanghai(2026, 3, day), event, customer)


async def test_an_erased_customers_answers_leave_the_nps_whichever_comes_first(harness: Harness) -> None:
    await harness.deliver(
        [
            answer(harness, "s1", "c1", 10, 2),
            answer(harness, "s2", "c2", 0, 3),
            answer(harness, "s3", "c3", 9, 4),
            answer(harness, "s4", "c4-old", 10, 5),  # c4-old is merged into c4 below
        ]
    )
    before = await harness.kpi("/v1/kpis/nps", **PERIOD)
    assert (before["answers"], before["promoters"], before["detractors"]) == (4, 3, 1)

    merged = CustomersMerged(surviving_customer_id="c4", merged_customer_ids=("c4-old",))
    await harness.deliver([harness.event_at(shanghai(2026, 3, 6), merged, "c4")])
    await harness.deliver([erased(harness, "c1", 10), erased(harness, "c4", 11), erased(harness, "c5", 12)])
    # The erasure of c5 was seen before c5's answer (another stream, another order): it never counts.
    await harness.deliver([answer(harness, "s5", "c5", 10, 13)])

    after = await harness.kpi("/v1/kpis/nps", **PERIOD)
    assert (after["answers"], after["promoters"], after["detractors"]) == (2, 1, 1)  # c2's 0 and c3's 9
    assert Decimal(after["nps"]) == Decimal("0.0")
    assert {row["customer_id"] for row in after["answer_list"]} == {"c2", "c3"}
