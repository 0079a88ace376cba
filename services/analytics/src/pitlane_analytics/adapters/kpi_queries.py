"""The reads behind the KPIs: fixed SQL over the facts, on the driver. Each returns the rows a KPI counts
(one per customer, answer, appointment, …) with the number of events behind each; the formulas are the
domain's (domain/kpis.py).

Common parameters: `start` and `end`, the period's bounds as UTC instants; `branch`, a branch id or None for
the whole chain. A merged customer's facts count as the survivor's (`customer_aliases`, resolved here).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

Rows = list[dict[str, Any]]

_VISITS_OF = """
    SELECT w.work_order_id, coalesce(alias.surviving_customer_id, w.customer_id) AS customer_id, w.vehicle_id,
           w.branch_id, w.advisor_id, w.technician_ids, w.appointment_id, w.coupon_codes, w.completed_at,
           w.paid_fen, cardinality(w.event_ids) AS events
    FROM work_orders w LEFT JOIN customer_aliases alias ON alias.merged_customer_id = w.customer_id
    WHERE w.completed_at IS NOT NULL AND w.voided_at IS NULL
"""
# Visits (completed, not voided) in the scope: the branch's, or the chain's when %(branch)s is null.
VISITS = f"visits AS ({_VISITS_OF} AND (%(branch)s::text IS NULL OR w.branch_id = %(branch)s))"
CHAIN_VISITS = f"chain_visits AS ({_VISITS_OF})"


async def _rows(unit: Unit, operation: str, sql: str, **parameters: Any) -> Rows:
    return await fetch_on_driver(unit, operation, sql, parameters, as_dicts=True)


async def snapshot(unit: Unit) -> None:
    """Every read of the transaction sees the same committed facts (one answer, one moment), and times come
    back in UTC whatever the server's time zone."""
    await execute_on_driver(
        unit, "snapshot", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", {}
    )
    await execute_on_driver(unit, "utc", "SET LOCAL TIME ZONE 'UTC'", {})


async def data_as_of(unit: Unit) -> datetime | None:
    rows = await _rows(unit, "data as of", "SELECT max(newest_event_at) AS at FROM source_watermarks")
    at: datetime | None = rows[0]["at"]
    return at


async def erased_among(unit: Unit, customer_ids: Collection[str]) -> set[str]:
    rows = await _rows(
        unit,
        "erased customers",
        "SELECT customer_id FROM erased_customers WHERE customer_id = ANY(%(ids)s::text[])",
        ids=sorted(customer_ids),
    )
    return {row["customer_id"] for row in rows}


async def visits_by_customer(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Per customer with a visit in the period: visits, paid fen, events."""
    return await _rows(
        unit,
        "visits by customer",
        f"""
        WITH {VISITS}
        SELECT customer_id, count(*) AS visits, sum(paid_fen)::bigint AS paid_fen, sum(events)::bigint AS events
        FROM visits WHERE completed_at >= %(start)s AND completed_at < %(end)s
        GROUP BY customer_id ORDER BY customer_id
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def customers_before(unit: Unit, *, end: datetime, branch: str | None) -> Rows:
    """Per customer with a visit before `end`: first and last visit, events."""
    return await _rows(
        unit,
        "customers before",
        f"""
        WITH {VISITS}
        SELECT customer_id, min(completed_at) AS first_visit_at, max(completed_at) AS last_visit_at,
               sum(events)::bigint AS events
        FROM visits WHERE completed_at < %(end)s
        GROUP BY customer_id ORDER BY customer_id
        """,
        end=end,
        branch=branch,
    )


async def new_customers(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> set[str]:
    """Customers whose first visit anywhere in the chain is in the period (and, for a branch, at it)."""
    rows = await _rows(
        unit,
        "new customers",
        f"""
        WITH {CHAIN_VISITS}, firsts AS (
            SELECT DISTINCT ON (customer_id) customer_id, branch_id, completed_at
            FROM chain_visits ORDER BY customer_id, completed_at, work_order_id
        )
        SELECT customer_id FROM firsts
        WHERE completed_at >= %(start)s AND completed_at < %(end)s
          AND (%(branch)s::text IS NULL OR branch_id = %(branch)s)
        """,
        start=start,
        end=end,
        branch=branch,
    )
    return {row["customer_id"] for row in rows}


async def gaps(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Each visit in the period with the same customer's visit before it (in scope), and their events."""
    return await _rows(
        unit,
        "gaps between visits",
        f"""
        WITH {VISITS}, ordered AS (
            SELECT customer_id, work_order_id, completed_at, events,
                   lag(work_order_id) OVER by_customer AS previous_work_order_id,
                   lag(completed_at) OVER by_customer AS previous_visit_at,
                   lag(events) OVER by_customer AS previous_events
            FROM visits WHERE completed_at < %(end)s
            WINDOW by_customer AS (PARTITION BY customer_id ORDER BY completed_at, work_order_id)
        )
        SELECT * FROM ordered
        WHERE previous_visit_at IS NOT NULL AND completed_at >= %(start)s
        ORDER BY customer_id, completed_at
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def nps_answers(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    return await _rows(
        unit,
        "nps answers",
        """
        SELECT a.survey_id, a.work_order_id, coalesce(alias.surviving_customer_id, a.customer_id) AS customer_id,
               a.branch_id, a.advisor_id, a.technician_ids, a.score, a.answered_at
        FROM nps_answers a LEFT JOIN customer_aliases alias ON alias.merged_customer_id = a.customer_id
        WHERE a.answered_at >= %(start)s AND a.answered_at < %(end)s
          AND (%(branch)s::text IS NULL OR a.branch_id = %(branch)s)
        ORDER BY a.answered_at, a.survey_id
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def surveys_sent(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> int:
    rows = await _rows(
        unit,
        "surveys sent",
        """
        SELECT count(*) AS sent FROM surveys
        WHERE sent_at >= %(start)s AND sent_at < %(end)s AND (%(branch)s::text IS NULL OR branch_id = %(branch)s)
        """,
        start=start,
        end=end,
        branch=branch,
    )
    sent: int = rows[0]["sent"]
    return sent


async def appointments_booked(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    return await _rows(
        unit,
        "appointments booked",
        """
        SELECT ap.appointment_id, coalesce(alias.surviving_customer_id, ap.customer_id) AS customer_id,
               ap.branch_id, ap.channel, ap.campaign_id, ap.booked_at, ap.arrived_at IS NOT NULL AS arrived,
               ap.cancelled_at IS NOT NULL AS cancelled, ap.no_show_at IS NOT NULL AS no_show,
               cardinality(ap.event_ids) AS events
        FROM appointments ap LEFT JOIN customer_aliases alias ON alias.merged_customer_id = ap.customer_id
        WHERE ap.booked_at >= %(start)s AND ap.booked_at < %(end)s
          AND (%(branch)s::text IS NULL OR ap.branch_id = %(branch)s)
        ORDER BY ap.booked_at, ap.appointment_id
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def staff_work(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Per advisor and per technician: visits completed in the period and their paid fen."""
    return await _rows(
        unit,
        "staff work",
        f"""
        WITH {VISITS}, in_period AS (
            SELECT * FROM visits WHERE completed_at >= %(start)s AND completed_at < %(end)s
        )
        SELECT 'advisor' AS role, advisor_id AS staff_id, count(*) AS work_orders, sum(paid_fen)::bigint AS revenue_fen
        FROM in_period WHERE advisor_id IS NOT NULL GROUP BY advisor_id
        UNION ALL
        SELECT 'technician', technician_id, count(*), sum(paid_fen)::bigint
        FROM in_period, unnest(technician_ids) AS technician_id GROUP BY technician_id
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def add_on_decisions(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Add-ons whose first decision fell in the period, with the order's advisor and technicians, and
    whether that first decision was an approval."""
    return await _rows(
        unit,
        "add-on decisions",
        """
        SELECT ao.add_on_id, w.advisor_id, w.technician_ids, cardinality(ao.event_ids) AS events,
               ao.approved_at IS NOT NULL AND (ao.declined_at IS NULL OR ao.approved_at < ao.declined_at)
                   AS approved_first
        FROM add_ons ao JOIN work_orders w ON w.work_order_id = ao.work_order_id
        WHERE least(ao.approved_at, ao.declined_at) >= %(start)s AND least(ao.approved_at, ao.declined_at) < %(end)s
          AND (%(branch)s::text IS NULL OR w.branch_id = %(branch)s)
        ORDER BY ao.add_on_id
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def popular_items(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Per item and category of the lines of visits in the period: lines, quantity, revenue, and revenue and
    cost of the lines whose cost is known. An item's name is the one its latest line printed."""
    return await _rows(
        unit,
        "popular items",
        f"""
        WITH {VISITS}
        SELECT l.item_code, l.category, (array_agg(l.name ORDER BY v.completed_at DESC, l.work_order_id))[1] AS name,
               count(*) AS lines, sum(l.quantity) AS quantity, sum(l.revenue_fen)::bigint AS revenue_fen,
               coalesce(sum(l.revenue_fen) FILTER (WHERE l.cost_fen IS NOT NULL), 0)::bigint AS costed_revenue_fen,
               coalesce(sum(l.cost_fen), 0)::bigint AS cost_fen,
               count(*) FILTER (WHERE l.cost_fen IS NOT NULL) AS costed_lines
        FROM visit_lines l JOIN visits v ON v.work_order_id = l.work_order_id
        WHERE v.completed_at >= %(start)s AND v.completed_at < %(end)s
        GROUP BY l.item_code, l.category
        ORDER BY l.item_code, l.category
        """,
        start=start,
        end=end,
        branch=branch,
    )


async def campaigns_running(unit: Unit, *, first_day: date, day_after: date, branch: str | None) -> Rows:
    """Campaigns whose days overlap the period's, and that include the branch (or every branch); with the
    recipients their sends reached."""
    return await _rows(
        unit,
        "campaigns running",
        """
        SELECT c.campaign_id, c.name, c.cost_fen, c.attribution_window_days, c.starts_on, c.ends_on,
               c.branch_ids, coalesce(sum(s.recipients), 0)::bigint AS recipients, count(s.event_id) AS sends
        FROM campaigns c LEFT JOIN campaign_sends s ON s.campaign_id = c.campaign_id
        WHERE c.starts_on < %(day_after)s AND c.ends_on >= %(first_day)s
          AND (%(branch)s::text IS NULL OR cardinality(c.branch_ids) = 0 OR %(branch)s = ANY(c.branch_ids))
        GROUP BY c.campaign_id ORDER BY c.starts_on, c.campaign_id
        """,
        first_day=first_day,
        day_after=day_after,
        branch=branch,
    )


async def attributed_orders(
    unit: Unit, *, campaign_ids: list[str], end: datetime, branch: str | None
) -> Rows:
    """Visits before `end` attributed to each campaign: a coupon of the campaign redeemed on the order, or the
    order's appointment booked through the campaign's link and the visit completed within the attribution
    window (N × 24 hours) of the booking. A visit can count for several campaigns, once for each."""
    return await _rows(
        unit,
        "attributed orders",
        f"""
        WITH {VISITS}, campaign AS (SELECT * FROM campaigns WHERE campaign_id = ANY(%(ids)s::text[])),
        attributed AS (
            SELECT c.campaign_id, v.work_order_id, 'coupon' AS attributed_by
            FROM campaign c JOIN visits v ON v.coupon_codes && c.coupon_codes
            WHERE v.completed_at < %(end)s
            UNION
            SELECT c.campaign_id, v.work_order_id, 'booking'
            FROM campaign c
            JOIN appointments ap ON ap.campaign_id = c.campaign_id
            JOIN visits v ON v.appointment_id = ap.appointment_id OR v.work_order_id = ap.work_order_id
            WHERE v.completed_at < %(end)s AND v.completed_at >= ap.booked_at
              AND v.completed_at < ap.booked_at + c.attribution_window_days * interval '24 hours'
        )
        SELECT a.campaign_id, v.work_order_id, v.customer_id, v.branch_id, v.completed_at, v.paid_fen, v.events,
               string_agg(a.attributed_by, '+' ORDER BY a.attributed_by) AS attributed_by
        FROM attributed a JOIN visits v ON v.work_order_id = a.work_order_id
        GROUP BY a.campaign_id, v.work_order_id, v.customer_id, v.branch_id, v.completed_at, v.paid_fen, v.events
        ORDER BY a.campaign_id, v.completed_at, v.work_order_id
        """,
        ids=campaign_ids,
        end=end,
        branch=branch,
    )


async def campaign_audiences(unit: Unit, *, campaign_ids: list[str]) -> Rows:
    """Per campaign whose audience has begun to arrive (CampaignAudienceDrawn): when it was drawn (the
    launch), how many batches there are and how many have arrived."""
    return await _rows(
        unit,
        "campaign audiences",
        """
        SELECT campaign_id, min(drawn_at) AS launched_at, max(batch_count) AS batch_count,
               count(*) AS batches_arrived
        FROM campaign_audience_batches WHERE campaign_id = ANY(%(ids)s::text[])
        GROUP BY campaign_id ORDER BY campaign_id
        """,
        ids=campaign_ids,
    )


async def audience_revenue(
    unit: Unit,
    *,
    campaign_ids: list[str],
    starts: list[datetime],
    ends: list[datetime],
    branch: str | None,
) -> Rows:
    """Per campaign and group (treated, control): its customers, and the paid fen and visits (in scope) of
    their visits completed in [start, end) of the campaign. Audience members count as their survivors; a
    survivor whose merged records were drawn into both groups is treated (one of them may have been
    messaged), and counts once."""
    return await _rows(
        unit,
        "audience revenue",
        f"""
        WITH {VISITS},
        measured AS (
            SELECT * FROM unnest(%(ids)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
                AS m(campaign_id, measured_from, measured_until)
        ),
        members AS (
            SELECT m.campaign_id, coalesce(alias.surviving_customer_id, m.customer_id) AS customer_id,
                   bool_and(m.in_control_group) AS in_control_group
            FROM campaign_audience_members m JOIN measured ON measured.campaign_id = m.campaign_id
            LEFT JOIN customer_aliases alias ON alias.merged_customer_id = m.customer_id
            GROUP BY m.campaign_id, 2
        ),
        per_customer AS (
            SELECT mem.campaign_id, mem.customer_id, mem.in_control_group,
                   coalesce(sum(v.paid_fen), 0) AS paid_fen, count(v.work_order_id) AS visits,
                   coalesce(sum(v.events), 0) AS events
            FROM members mem JOIN measured ms ON ms.campaign_id = mem.campaign_id
            LEFT JOIN visits v ON v.customer_id = mem.customer_id
                 AND v.completed_at >= ms.measured_from AND v.completed_at < ms.measured_until
            GROUP BY mem.campaign_id, mem.customer_id, mem.in_control_group
        )
        SELECT campaign_id, in_control_group, count(*) AS customers, sum(paid_fen)::bigint AS paid_fen,
               sum(visits)::bigint AS visits, sum(events)::bigint AS events
        FROM per_customer GROUP BY campaign_id, in_control_group ORDER BY campaign_id, in_control_group
        """,
        ids=campaign_ids,
        starts=starts,
        ends=ends,
        branch=branch,
    )


def reminders_followed(where: str) -> str:
    """Reminders sent (those `where` picks, over `r`), each with the first booking or visit of the same vehicle
    (anywhere in the chain) within 30 days (720 hours) of it; a booking that answers the reminder counts as
    the vehicle's."""
    return f"""
        WITH {CHAIN_VISITS}
        SELECT r.event_id, r.reminder_id, r.vehicle_id, r.branch_id, r.sent_at, follow.followed_by, follow.followed_at
        FROM reminders_sent r
        LEFT JOIN LATERAL (
            SELECT * FROM (
                SELECT 'booking' AS followed_by, ap.booked_at AS followed_at
                FROM appointments ap
                WHERE ap.vehicle_id = r.vehicle_id
                  AND ap.booked_at >= r.sent_at AND ap.booked_at < r.sent_at + interval '720 hours'
                UNION ALL
                -- Apart from the vehicle's: one index each (an OR of the two reads every booking).
                SELECT 'booking', ap.booked_at FROM appointments ap
                WHERE ap.reminder_id = r.reminder_id
                  AND ap.booked_at >= r.sent_at AND ap.booked_at < r.sent_at + interval '720 hours'
                UNION ALL
                SELECT 'visit', v.completed_at FROM chain_visits v
                WHERE v.vehicle_id = r.vehicle_id
                  AND v.completed_at >= r.sent_at AND v.completed_at < r.sent_at + interval '720 hours'
            ) followed ORDER BY followed_at, followed_by LIMIT 1
        ) follow ON true
        WHERE {where}
    """


async def reminders_sent(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Reminders sent in the period, each with what followed it (`reminders_followed`)."""
    return await _rows(
        unit,
        "reminders sent",
        reminders_followed(
            "r.sent_at >= %(start)s AND r.sent_at < %(end)s AND (%(branch)s::text IS NULL OR r.branch_id = %(branch)s)"
        )
        + " ORDER BY r.sent_at, r.event_id",
        start=start,
        end=end,
        branch=branch,
    )


def declined_recovered(where: str) -> str:
    """Add-ons declined (those `where` picks, over `d` and its order `w`), each with what recovered it within
    90 days: the same add-on approved after all, an add-on of the same item approved for the same vehicle, or
    a visit of the vehicle with a line of the item (by catalogue code; by name when the add-on had none). 90
    days are 2,160 hours: a day is 24 hours here whatever the time zone's clock changes."""
    return f"""
        WITH {CHAIN_VISITS}
        SELECT d.add_on_id, d.work_order_id, coalesce(alias.surviving_customer_id, w.customer_id) AS customer_id,
               w.branch_id, d.item, d.item_code, d.price_fen, d.declined_at,
               cardinality(d.event_ids) AS events, recovery.recovered_by, recovery.recovered_at
        FROM add_ons d JOIN work_orders w ON w.work_order_id = d.work_order_id
        LEFT JOIN customer_aliases alias ON alias.merged_customer_id = w.customer_id
        LEFT JOIN LATERAL (
            SELECT * FROM (
                SELECT 'approved' AS recovered_by, d.approved_at AS recovered_at WHERE d.approved_at > d.declined_at
                UNION ALL
                SELECT 'approved', other.approved_at
                FROM add_ons other JOIN work_orders ow ON ow.work_order_id = other.work_order_id
                WHERE other.add_on_id <> d.add_on_id AND ow.vehicle_id = w.vehicle_id
                  AND other.approved_at > d.declined_at
                  AND (other.item_code = d.item_code OR (d.item_code IS NULL AND other.item = d.item))
                UNION ALL
                SELECT 'performed', v.completed_at
                FROM chain_visits v JOIN visit_lines l ON l.work_order_id = v.work_order_id
                WHERE v.vehicle_id = w.vehicle_id AND v.completed_at > d.declined_at
                  AND (l.add_on_id = d.add_on_id OR l.item_code = d.item_code
                       OR (d.item_code IS NULL AND l.name = d.item))
            ) recovered
            WHERE recovered_at < d.declined_at + interval '2160 hours'
            ORDER BY recovered_at, recovered_by LIMIT 1
        ) recovery ON true
        WHERE {where}
    """


async def declined_add_ons(unit: Unit, *, start: datetime, end: datetime, branch: str | None) -> Rows:
    """Add-ons declined in the period (at the branch), each with what recovered it (`declined_recovered`)."""
    return await _rows(
        unit,
        "declined add-ons",
        declined_recovered(
            "d.declined_at >= %(start)s AND d.declined_at < %(end)s "
            "AND (%(branch)s::text IS NULL OR w.branch_id = %(branch)s)"
        )
        + " ORDER BY d.declined_at, d.add_on_id",
        start=start,
        end=end,
        branch=branch,
    )
