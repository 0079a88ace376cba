"""What a KPI answer says: the figures, the period, branch and time zone they cover, how many events they
were computed from, how fresh the facts are, and the drill-down rows behind them (`rows()`, also the CSV).

Rounded figures are decimals (JSON strings, exact); ratios come as numerator, denominator and value.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from pitlane_analytics.domain.kpis import Rate
from pitlane_analytics.domain.periods import Period
from pitlane_events.workorder import ProcessScope, ProcessStage


class PeriodView(BaseModel):
    from_: date = Field(serialization_alias="from", description="first local day in the period")
    to: date = Field(description="first local day after the period (half-open: [from, to))")
    timezone: str = Field(description="the chain's time zone the days are in")
    utc_from: datetime
    utc_to: datetime

    @classmethod
    def of(cls, period: Period) -> PeriodView:
        return cls(
            from_=period.start,
            to=period.end,
            timezone=period.timezone.key,
            utc_from=period.utc_start,
            utc_to=period.utc_end,
        )


class RateView(BaseModel):
    numerator: int
    denominator: int
    value: Decimal | None = Field(description="numerator ÷ denominator to 4 decimals; null when 0 ÷ 0")

    @classmethod
    def of(cls, rate: Rate) -> RateView:
        return cls(numerator=rate.numerator, denominator=rate.denominator, value=rate.value)


class Answer(BaseModel):
    kpi: str
    chain_id: str
    branch_id: str | None = Field(description="the branch the figures are for; null: the whole chain")
    period: PeriodView
    events: int = Field(description="events that wrote the facts the figures count")
    data_as_of: datetime | None = Field(description="the newest event time the facts hold")


class DrillDown(Answer):
    """An answer with the rows behind its figures (the customers, answers, orders…): JSON or CSV."""

    ROW: ClassVar[type[BaseModel]]
    """The model of a drill-down row."""

    @abstractmethod
    def rows(self) -> Sequence[BaseModel]:
        """The drill-down, one model per row (the CSV export)."""


# ---- customers -----------------------------------------------------------------------------------------------


class CustomerVisits(BaseModel):
    customer_id: str
    visits: int
    paid_fen: int
    erased: bool = Field(description="the customer's profile was erased: count them, do not contact them")


class ReturnRate(DrillDown):
    ROW = CustomerVisits
    return_rate: RateView = Field(description="customers with ≥ 2 visits ÷ customers with ≥ 1, in the period")
    customers: list[CustomerVisits]

    def rows(self) -> Sequence[BaseModel]:
        return self.customers


class ActivityWindow(BaseModel):
    days: int
    active: int = Field(description="customers with a visit in the `days` days before `to`")
    churned: int = Field(description="customers with a visit before those days and none in them")


class CustomerActivityRow(BaseModel):
    customer_id: str
    first_visit_at: datetime
    last_visit_at: datetime
    new: bool
    active_30: bool
    active_90: bool
    active_365: bool
    lapsed_9_12_months: bool = Field(description="the last visit before `to` was 9 to 12 months before it")
    erased: bool


class CustomerActivity(DrillDown):
    ROW = CustomerActivityRow
    new: int = Field(description="customers whose first visit in the chain is in the period")
    windows: list[ActivityWindow]
    lapsed_9_12_months: int = Field(
        description="customers whose last visit before `to` was in [`to` − 12 months, `to` − 9 months)"
    )
    customers: list[CustomerActivityRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.customers


class SpendPerYear(DrillDown):
    ROW = CustomerVisits
    spend_per_year_fen: int | None = Field(
        description="paid fen ÷ customers, scaled to 365 days; half-even fen"
    )
    paid_fen: int
    customers_with_visits: int
    period_days: int
    customers: list[CustomerVisits]

    def rows(self) -> Sequence[BaseModel]:
        return self.customers


class CustomerLifetimeRow(BaseModel):
    customer_id: str
    first_visit_at: datetime
    last_visit_at: datetime
    years: Decimal
    erased: bool


class CustomerLifetime(DrillDown):
    ROW = CustomerLifetimeRow
    mean_years: Decimal | None = Field(
        description="mean of (last − first visit) over customers, to 2 decimals"
    )
    median_years: Decimal | None
    customers_before_to: int
    customers: list[CustomerLifetimeRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.customers


class LtvFigures(BaseModel):
    ltv_fen: int | None
    spend_per_year_fen: int | None
    mean_lifetime_years: Decimal | None


class Ltv(DrillDown, LtvFigures):
    ROW = LtvFigures

    def rows(self) -> Sequence[BaseModel]:
        return [LtvFigures.model_validate(self, from_attributes=True)]


class Gap(BaseModel):
    customer_id: str
    previous_visit_at: datetime
    visit_at: datetime
    days: Decimal


class TimeBetweenVisits(DrillDown):
    ROW = Gap
    mean_days: Decimal | None = Field(
        description="mean gap to 1 decimal, over gaps whose later visit is in the period"
    )
    gap_count: int
    gaps: list[Gap]

    def rows(self) -> Sequence[BaseModel]:
        return self.gaps


# ---- NPS, appointments ---------------------------------------------------------------------------------------


class NpsCounts(BaseModel):
    nps: Decimal | None = Field(description="% promoters − % detractors, to 1 decimal")
    answers: int
    promoters: int
    passives: int
    detractors: int


class AdvisorNps(NpsCounts):
    advisor_id: str


class NpsAnswerRow(BaseModel):
    survey_id: str
    work_order_id: str
    customer_id: str
    branch_id: str
    advisor_id: str
    score: int
    answered_at: datetime
    erased: bool


class Nps(DrillDown, NpsCounts):
    ROW = NpsAnswerRow
    surveys_sent: int
    response_rate: RateView = Field(description="answers received ÷ surveys sent, both in the period")
    advisors: list[AdvisorNps]
    answer_list: list[NpsAnswerRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.answer_list


class AppointmentRow(BaseModel):
    appointment_id: str
    customer_id: str
    branch_id: str | None
    channel: str | None
    campaign_id: str | None
    booked_at: datetime
    arrived: bool
    cancelled: bool
    no_show: bool


class AppointmentConversion(DrillDown):
    ROW = AppointmentRow
    conversion: RateView = Field(description="distinct customers arrived ÷ distinct customers who booked")
    appointments: int
    cancelled_appointments: int
    cancelled_customers: int = Field(
        description="distinct customers with a cancelled booking (in the denominator)"
    )
    no_shows: int
    appointment_list: list[AppointmentRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.appointment_list


# ---- staff and services --------------------------------------------------------------------------------------


class StaffRow(BaseModel):
    role: Literal["advisor", "technician"]
    staff_id: str
    work_orders: int
    revenue_fen: int
    answers: int
    nps: Decimal | None
    add_ons_decided: int
    add_ons_approved: int
    add_on_approval_rate: Decimal | None


class StaffLeaderboard(DrillDown):
    ROW = StaffRow
    staff: list[StaffRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.staff


class ServiceFigures(BaseModel):
    count: int = Field(description="lines on visits in the period")
    quantity: Decimal
    revenue_fen: int
    costed_revenue_fen: int = Field(description="revenue of the lines whose cost is known")
    cost_fen: int
    gross_margin_fen: int | None = Field(description="costed revenue − cost; null when no line has a cost")
    gross_margin_rate: Decimal | None = Field(description="gross margin ÷ costed revenue, to 4 decimals")


class ItemRow(ServiceFigures):
    item_code: str
    name: str
    category: str


class CategoryRow(ServiceFigures):
    category: str


class PopularServices(DrillDown):
    ROW = ItemRow
    items: list[ItemRow]
    categories: list[CategoryRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.items


# ---- campaigns, reminders, declined work ---------------------------------------------------------------------


class CampaignRow(BaseModel):
    campaign_id: str
    name: str
    starts_on: date
    ends_on: date
    cost_fen: int
    recipients: int
    orders: int
    revenue_fen: int
    roi: RateView | None = Field(
        description="(revenue − cost) ÷ cost; null in a branch view of a campaign that is not the branch's alone"
    )
    # Against the control group (domain/control_group.py): null where the campaign's audience has not
    # arrived whole (`audience_complete`), or it had no control group.
    audience_complete: bool | None = Field(
        description="the audience as the control-group draw split it has arrived whole; null: none was "
        "published (a campaign launched before control groups were measured)"
    )
    treated_customers: int | None = Field(
        description="audience members not held out, messaged or not (intention to treat)"
    )
    control_customers: int | None = Field(description="audience members held out and sent nothing")
    measured_from: datetime | None = Field(description="the launch: the measurement window's start")
    measured_until: datetime | None = Field(
        description="the window's end (the local midnight after its last day), or `to` if earlier"
    )
    window_closed: bool | None = Field(description="the whole window is before `to`: the figures are final")
    treated_revenue_fen: int | None = Field(
        description="paid fen of the treated customers' visits in the window"
    )
    control_revenue_fen: int | None = Field(
        description="paid fen of the control customers' visits in the window"
    )
    revenue_per_treated_fen: int | None = Field(description="treated revenue ÷ treated customers, whole fen")
    revenue_per_control_fen: int | None = Field(description="control revenue ÷ control customers, whole fen")
    incremental_revenue_fen: int | None = Field(
        description="(revenue per treated − revenue per control customer) × treated customers, from the exact "
        "fractions, rounded once to whole fen (half to even); null without a control group"
    )
    incremental_roi: RateView | None = Field(
        description="(incremental revenue − cost) ÷ cost; null where `roi` is, or without incremental revenue"
    )


class AttributedOrder(BaseModel):
    campaign_id: str
    work_order_id: str
    customer_id: str
    branch_id: str | None
    completed_at: datetime
    paid_fen: int
    attributed_by: str = Field(description="coupon, booking, or booking+coupon")
    erased: bool


class CampaignRoi(DrillDown):
    ROW = AttributedOrder
    campaigns: list[CampaignRow]
    orders: list[AttributedOrder]

    def rows(self) -> Sequence[BaseModel]:
        return self.orders


class ReminderRow(BaseModel):
    reminder_id: str
    vehicle_id: str
    branch_id: str | None
    sent_at: datetime
    followed_by: Literal["booking", "visit"] | None
    followed_at: datetime | None


class ReminderEffectiveness(DrillDown):
    ROW = ReminderRow
    effectiveness: RateView = Field(description="reminders followed within 30 days ÷ reminders sent")
    reminders: list[ReminderRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.reminders


class DeclinedRow(BaseModel):
    add_on_id: str
    work_order_id: str
    customer_id: str
    item: str | None
    item_code: str | None
    price_fen: int
    declined_at: datetime
    recovered_by: Literal["approved", "performed"] | None
    recovered_at: datetime | None


class DeclinedWorkRecovery(DrillDown):
    ROW = DeclinedRow
    by_count: RateView
    by_fen: RateView
    add_ons: list[DeclinedRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.add_ons


class StagePassageRow(BaseModel):
    work_order_id: str
    branch_id: str | None
    stage: ProcessStage
    occurrence: int = Field(description="the how-manieth passage of the order through the stage")
    add_on_id: str | None
    process_scope: ProcessScope
    process_version: int
    entered_at: datetime
    completed_at: datetime
    due_at: datetime
    seconds_in_stage: Decimal
    on_time: bool = Field(description="completed before due_at")


class StageFiguresView(BaseModel):
    stage: ProcessStage
    on_time: RateView = Field(description="completed within the time limit ÷ completed, in the period")
    median_seconds_in_stage: Decimal | None = Field(description="to 1 decimal")


class DefinitionStageFigures(StageFiguresView):
    process_scope: ProcessScope
    process_version: int


class StageOnTime(DrillDown):
    ROW = StagePassageRow
    stages: list[StageFiguresView] = Field(
        description="per stage with a time limit, in the order of the process"
    )
    by_definition: list[DefinitionStageFigures] = Field(
        description="the same, per process definition version the orders ran under"
    )
    passages: list[StagePassageRow]

    def rows(self) -> Sequence[BaseModel]:
        return self.passages


# ---- the headline --------------------------------------------------------------------------------------------


class Headline(Answer):
    return_rate: RateView
    new_customers: int
    activity: list[ActivityWindow]
    spend_per_year_fen: int | None
    mean_lifetime_years: Decimal | None
    median_lifetime_years: Decimal | None
    ltv_fen: int | None
    nps: Decimal | None
    nps_answers: int
    nps_response_rate: RateView
    appointment_conversion: RateView
    mean_days_between_visits: Decimal | None
    reminder_effectiveness: RateView
    declined_work_recovery_by_count: RateView
    declined_work_recovery_by_fen: RateView
