"""A campaign measured against its held-out control group, and the lapsed customers a win-back campaign is for.

**Incremental revenue.** A launch splits the audience: the control group (a fixed share, drawn by a hash) is
sent nothing; everyone else is treated — intention to treat: a treated customer whom no message reached (no
marketing consent, the contact-frequency limit, no address) stays treated, because the control group was drawn
from the same whole audience and holds such customers in the same proportion. Each customer's revenue is the
paid fen of their visits in the measurement window; then

    incremental revenue = (treated revenue ÷ treated customers − control revenue ÷ control customers)
                          × treated customers

computed exactly and rounded once to whole fen (half to even): what the treated group spent beyond what it
would have spent, had it behaved like the control group.

**The measurement window** starts at the launch (the instant the audience was drawn) and ends at the local
midnight (the chain's time zone) that begins the day `attribution_window_days` after the launch's local date:
launched on 1 March at 10:00 with a 30-day window, it runs to the end of 30 March. An answer counts the visits
before its `to` as well: until the window has closed, the figures are the campaign's so far.

**Lapsed 9–12 months**: the customers whose last visit before `to` falls in [`to` − 12 months, `to` −
9 months), calendar months of local dates (a day missing from the shorter month is its last day).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from pitlane_analytics.domain.periods import local_midnight

LAPSED_FROM_MONTHS = 9
LAPSED_TO_MONTHS = 12


def measurement_window(
    launched_at: datetime, attribution_window_days: int, timezone: ZoneInfo
) -> tuple[datetime, datetime]:
    """[launch, the local midnight after the window's last day), as UTC instants."""
    launch_day = launched_at.astimezone(timezone).date()
    return launched_at, local_midnight(launch_day + timedelta(days=attribution_window_days), timezone)


@dataclass(frozen=True)
class GroupRevenue:
    customers: int
    revenue_fen: int

    @property
    def per_customer(self) -> Fraction | None:
        return Fraction(self.revenue_fen, self.customers) if self.customers else None


def incremental_revenue(treated: GroupRevenue, control: GroupRevenue) -> Fraction | None:
    """(revenue per treated customer − revenue per control customer) × treated customers, exact; None without
    a control group or without a treated customer to compare."""
    per_treated, per_control = treated.per_customer, control.per_customer
    if per_treated is None or per_control is None:
        return None
    return (per_treated - per_control) * treated.customers


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` calendar months earlier; the month's last day where it is shorter."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def lapsed_window(to: date, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """[`to` − 12 months, `to` − 9 months) at local midnights, as UTC instants."""
    return (
        local_midnight(months_before(to, LAPSED_TO_MONTHS), timezone),
        local_midnight(months_before(to, LAPSED_FROM_MONTHS), timezone),
    )
