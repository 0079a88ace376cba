"""The headline KPI query over the rebuilt facts, beside the same figures computed by one raw SQL over the raw
visits: a month of the history (June 2026 in Shanghai), the whole chain.

- The service: `Kpis.headline` — what `GET /v1/kpis` answers (every headline figure, NPS, bookings, reminders
  and declined work included), in its read-only snapshot.
- The baseline: one SQL statement over the visits (completed, not voided work orders, merged customers
  resolved) giving the visit-based figures of the headline: customers with visits and returning, paid,
  new, active and churned over 30/90/365 days, mean and median lifetime, mean days between visits.

Both run `RUNS` times after a warm-up; the medians are compared. The figures both give must agree.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from pitlane_analytics.domain import kpis
from pitlane_analytics.domain.periods import Period
from pitlane_analytics.service_layer.kpis import Kpis, Scope
from pitlane_platform.db import DriverPool, libpq_url

RUNS = 15
PERIOD = Period(date(2026, 6, 1), date(2026, 7, 1), ZoneInfo("Asia/Shanghai"))

RAW_HEADLINE = """
WITH visits AS (
    SELECT coalesce(alias.surviving_customer_id, w.customer_id) AS customer_id, w.work_order_id, w.completed_at,
           w.paid_fen
    FROM work_orders w LEFT JOIN customer_aliases alias ON alias.merged_customer_id = w.customer_id
    WHERE w.completed_at IS NOT NULL AND w.voided_at IS NULL AND w.completed_at < %(end)s
), ordered AS (
    SELECT customer_id, completed_at,
           lag(completed_at) OVER (PARTITION BY customer_id ORDER BY completed_at, work_order_id) AS previous_at
    FROM visits
), customers AS (
    SELECT customer_id, min(completed_at) AS first_at, max(completed_at) AS last_at,
           count(*) FILTER (WHERE completed_at >= %(start)s) AS in_period,
           coalesce(sum(paid_fen) FILTER (WHERE completed_at >= %(start)s), 0) AS paid
    FROM visits GROUP BY customer_id
)
SELECT
    count(*) FILTER (WHERE in_period >= 1) AS with_visits,
    count(*) FILTER (WHERE in_period >= 2) AS returning,
    sum(paid)::bigint AS paid_fen,
    count(*) FILTER (WHERE first_at >= %(start)s) AS new,
    count(*) AS customers_before,
    count(*) FILTER (WHERE last_at >= %(active_30)s) AS active_30,
    count(*) FILTER (WHERE last_at >= %(active_90)s) AS active_90,
    count(*) FILTER (WHERE last_at >= %(active_365)s) AS active_365,
    sum((extract(epoch FROM last_at - first_at) * 1000000)::bigint)::bigint AS lifetime_us,
    percentile_disc(0.5) WITHIN GROUP (ORDER BY last_at - first_at) AS median_low,
    percentile_disc(0.5000001) WITHIN GROUP (ORDER BY last_at - first_at) AS median_high,
    (SELECT sum((extract(epoch FROM completed_at - previous_at) * 1000000)::bigint)::bigint
     FROM ordered WHERE completed_at >= %(start)s AND previous_at IS NOT NULL) AS gaps_us,
    (SELECT count(*) FROM ordered WHERE completed_at >= %(start)s AND previous_at IS NOT NULL) AS gaps
FROM customers
"""


@dataclass(frozen=True)
class Answered:
    service_seconds: float
    raw_seconds: float
    runs: int
    figures: dict[str, Any]


async def measure(database_url: str) -> Answered:
    parameters = {
        "start": PERIOD.utc_start,
        "end": PERIOD.utc_end,
        **{f"active_{days}": PERIOD.days_before_end(days) for days in kpis.ACTIVITY_WINDOWS_DAYS},
    }
    driver = DriverPool(database_url, max_size=1)
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), row_factory=dict_row) as raw:
        await driver.open()
        try:
            answers = Kpis(driver, chain_id="bench-chain", timezone=PERIOD.timezone)
            scope = Scope(PERIOD, None)

            async def service() -> Any:
                async with answers.snapshot() as unit:
                    return await answers.headline(unit, scope)

            async def by_hand() -> dict[str, Any]:
                cursor = await raw.execute(RAW_HEADLINE, parameters)
                row = await cursor.fetchone()
                assert row is not None
                return row

            headline, figures = await service(), await by_hand()  # warm-up, and the figures to compare
            service_times, raw_times = [], []
            for _ in range(RUNS):
                started = time.perf_counter()
                await service()
                service_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                await by_hand()
                raw_times.append(time.perf_counter() - started)
        finally:
            await driver.close()
    agreed = _agree(headline, figures)
    return Answered(statistics.median(service_times), statistics.median(raw_times), RUNS, agreed)


def _agree(headline: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The figures both give, checked equal; raises naming the first that differs."""
    customers = raw["customers_before"]
    lifetime = Fraction(raw["lifetime_us"], customers * 86_400_000_000) / kpis.DAYS_PER_YEAR
    median_days = (
        kpis.days((raw["median_low"] + raw["median_high"]) / 2)
        if customers % 2 == 0
        else kpis.days(raw["median_low"])
    )
    spend = kpis.spend_per_year(raw["paid_fen"], raw["with_visits"], PERIOD.days)
    pairs = {
        "customers with visits": (headline.return_rate.denominator, raw["with_visits"]),
        "returning customers": (headline.return_rate.numerator, raw["returning"]),
        "new customers": (headline.new_customers, raw["new"]),
        **{
            f"active {window.days} days": (window.active, raw[f"active_{window.days}"])
            for window in headline.activity
        },
        **{
            f"churned {window.days} days": (window.churned, customers - raw[f"active_{window.days}"])
            for window in headline.activity
        },
        "spend per year (fen)": (
            headline.spend_per_year_fen,
            None if spend is None else kpis.whole_fen(spend),
        ),
        "mean lifetime (years)": (headline.mean_lifetime_years, kpis.rounded(lifetime, 2)),
        "median lifetime (years)": (
            headline.median_lifetime_years,
            kpis.rounded(median_days / kpis.DAYS_PER_YEAR, 2),
        ),
        "mean days between visits": (
            headline.mean_days_between_visits,
            kpis.rounded(Fraction(raw["gaps_us"], raw["gaps"] * 86_400_000_000), 1),
        ),
    }
    for name, (service, by_hand) in pairs.items():
        if service != by_hand:
            raise RuntimeError(f"the headline says {name} = {service}, the raw SQL {by_hand}")
    return {name: str(service) for name, (service, _) in pairs.items()}
