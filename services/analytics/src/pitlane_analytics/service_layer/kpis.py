"""Answering KPIs: read the facts of a scope (a period, the chain or one branch) in one snapshot, apply the
domain's formulas, and name what the answer covers.

"Events behind" an answer are the events that wrote the facts it counts: the visits, answers, surveys,
appointments, reminders or add-ons whose figures make it up (not the facts read only to classify them, such
as the booking that followed a reminder). The headline's are those of its figures' facts, each counted once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_analytics.adapters import kpi_projections as kp
from pitlane_analytics.adapters import kpi_queries as q
from pitlane_analytics.adapters import stage_queries
from pitlane_analytics.domain import kpis, stages
from pitlane_analytics.domain.control_group import (
    GroupRevenue,
    incremental_revenue,
    lapsed_window,
    measurement_window,
)
from pitlane_analytics.domain.kpis import ACTIVITY_WINDOWS_DAYS, Rate
from pitlane_analytics.domain.periods import Period
from pitlane_analytics.domain.stages import TimedPassage
from pitlane_analytics.service_layer.answers import (
    ActivityWindow,
    AdvisorNps,
    AppointmentConversion,
    AppointmentRow,
    AttributedOrder,
    CampaignRoi,
    CampaignRow,
    CategoryRow,
    CustomerActivity,
    CustomerActivityRow,
    CustomerLifetime,
    CustomerLifetimeRow,
    CustomerVisits,
    DeclinedRow,
    DeclinedWorkRecovery,
    DefinitionStageFigures,
    Gap,
    Headline,
    ItemRow,
    Ltv,
    Nps,
    NpsAnswerRow,
    PeriodView,
    PopularServices,
    RateView,
    ReminderEffectiveness,
    ReminderRow,
    ReturnRate,
    SpendPerYear,
    StaffLeaderboard,
    StaffRow,
    StageFiguresView,
    StageOnTime,
    StagePassageRow,
    TimeBetweenVisits,
)
from pitlane_events.workorder import ProcessStage
from pitlane_platform.db import DriverPool, Unit


@dataclass(frozen=True)
class Scope:
    period: Period
    branch_id: str | None  # None: the whole chain

    @property
    def bounds(self) -> dict[str, Any]:
        return {"start": self.period.utc_start, "end": self.period.utc_end, "branch": self.branch_id}


def _optional(value: Fraction | None, places: int) -> Decimal | None:
    return None if value is None else kpis.rounded(value, places)


class Kpis:
    def __init__(self, driver: DriverPool, *, chain_id: str, timezone: ZoneInfo) -> None:
        """`timezone`: the chain's, whose local months the headline's projections are kept in."""
        self.driver = driver
        self.chain_id = chain_id
        self.timezone = timezone

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Unit]:
        """A read-only transaction in which every read sees the same facts."""
        async with self.driver.transaction() as unit:
            await q.snapshot(unit)
            yield unit

    async def _frame(self, unit: Unit, kpi: str, scope: Scope, events: int) -> dict[str, Any]:
        return {
            "kpi": kpi,
            "chain_id": self.chain_id,
            "branch_id": scope.branch_id,
            "period": PeriodView.of(scope.period),
            "events": events,
            "data_as_of": await q.data_as_of(unit),
        }

    # ---- customers -------------------------------------------------------------------------------------------

    async def _customer_visits(self, unit: Unit, scope: Scope) -> tuple[list[CustomerVisits], int]:
        rows = await q.visits_by_customer(unit, **scope.bounds)
        erased = await q.erased_among(unit, [row["customer_id"] for row in rows])
        customers = [
            CustomerVisits(
                customer_id=row["customer_id"],
                visits=row["visits"],
                paid_fen=row["paid_fen"],
                erased=row["customer_id"] in erased,
            )
            for row in rows
        ]
        return customers, sum(row["events"] for row in rows)

    async def return_rate(self, unit: Unit, scope: Scope) -> ReturnRate:
        customers, events = await self._customer_visits(unit, scope)
        rate = Rate(sum(1 for customer in customers if customer.visits >= 2), len(customers))
        return ReturnRate(
            **await self._frame(unit, "return-rate", scope, events),
            return_rate=RateView.of(rate),
            customers=customers,
        )

    async def spend_per_year(self, unit: Unit, scope: Scope) -> SpendPerYear:
        customers, events = await self._customer_visits(unit, scope)
        paid = sum(customer.paid_fen for customer in customers)
        spend = kpis.spend_per_year(paid, len(customers), scope.period.days)
        return SpendPerYear(
            **await self._frame(unit, "spend-per-year", scope, events),
            spend_per_year_fen=None if spend is None else kpis.whole_fen(spend),
            paid_fen=paid,
            customers_with_visits=len(customers),
            period_days=scope.period.days,
            customers=customers,
        )

    async def customer_activity(
        self, unit: Unit, scope: Scope, *, only: str | None = None, window_days: int = 90
    ) -> CustomerActivity:
        """`only` (new, active or churned over `window_days`, or lapsed 9–12 months) narrows the drill-down
        list, not the figures."""
        rows = await q.customers_before(unit, end=scope.period.utc_end, branch=scope.branch_id)
        new = await q.new_customers(unit, **scope.bounds)
        erased = await q.erased_among(unit, [row["customer_id"] for row in rows])
        window_starts = {days: scope.period.days_before_end(days) for days in ACTIVITY_WINDOWS_DAYS}
        lapsed_from, lapsed_until = lapsed_window(scope.period.end, scope.period.timezone)
        customers = [
            CustomerActivityRow(
                customer_id=row["customer_id"],
                first_visit_at=row["first_visit_at"],
                last_visit_at=row["last_visit_at"],
                new=row["customer_id"] in new,
                active_30=kpis.is_active(row["last_visit_at"], window_starts[30]),
                active_90=kpis.is_active(row["last_visit_at"], window_starts[90]),
                active_365=kpis.is_active(row["last_visit_at"], window_starts[365]),
                lapsed_9_12_months=lapsed_from <= row["last_visit_at"] < lapsed_until,
                erased=row["customer_id"] in erased,
            )
            for row in rows
        ]
        windows = []
        for days, start in window_starts.items():
            active = sum(1 for row in rows if kpis.is_active(row["last_visit_at"], start))
            windows.append(ActivityWindow(days=days, active=active, churned=len(rows) - active))
        listed = [customer for customer in customers if _in_list(customer, only, window_days)]
        return CustomerActivity(
            **await self._frame(unit, "customer-activity", scope, sum(row["events"] for row in rows)),
            new=len(new),
            windows=windows,
            lapsed_9_12_months=sum(1 for customer in customers if customer.lapsed_9_12_months),
            customers=listed,
        )

    async def customer_lifetime(self, unit: Unit, scope: Scope) -> CustomerLifetime:
        rows = await q.customers_before(unit, end=scope.period.utc_end, branch=scope.branch_id)
        erased = await q.erased_among(unit, [row["customer_id"] for row in rows])
        lifetime = kpis.lifetime((row["first_visit_at"], row["last_visit_at"]) for row in rows)
        return CustomerLifetime(
            **await self._frame(unit, "customer-lifetime", scope, sum(row["events"] for row in rows)),
            mean_years=_optional(lifetime.mean_years, 2),
            median_years=_optional(lifetime.median_years, 2),
            customers_before_to=lifetime.customers,
            customers=[
                CustomerLifetimeRow(
                    customer_id=row["customer_id"],
                    first_visit_at=row["first_visit_at"],
                    last_visit_at=row["last_visit_at"],
                    years=kpis.rounded(
                        kpis.days(row["last_visit_at"] - row["first_visit_at"]) / kpis.DAYS_PER_YEAR, 2
                    ),
                    erased=row["customer_id"] in erased,
                )
                for row in rows
            ],
        )

    async def ltv(self, unit: Unit, scope: Scope) -> Ltv:
        in_period = await q.visits_by_customer(unit, **scope.bounds)
        before_end = await q.customers_before(unit, end=scope.period.utc_end, branch=scope.branch_id)
        spend = kpis.spend_per_year(
            sum(row["paid_fen"] for row in in_period), len(in_period), scope.period.days
        )
        lifetime = kpis.lifetime((row["first_visit_at"], row["last_visit_at"]) for row in before_end)
        # The visits of the period are among those before `to`: their events are counted there.
        return Ltv(
            **await self._frame(unit, "ltv", scope, sum(row["events"] for row in before_end)),
            ltv_fen=kpis.ltv(spend, lifetime.mean_years),
            spend_per_year_fen=None if spend is None else kpis.whole_fen(spend),
            mean_lifetime_years=_optional(lifetime.mean_years, 2),
        )

    async def time_between_visits(self, unit: Unit, scope: Scope) -> TimeBetweenVisits:
        rows = await q.gaps(unit, **scope.bounds)
        events = {row["work_order_id"]: row["events"] for row in rows} | {
            row["previous_work_order_id"]: row["previous_events"] for row in rows
        }
        mean = kpis.mean_days(row["completed_at"] - row["previous_visit_at"] for row in rows)
        return TimeBetweenVisits(
            **await self._frame(unit, "time-between-visits", scope, sum(events.values())),
            mean_days=_optional(mean, 1),
            gap_count=len(rows),
            gaps=[
                Gap(
                    customer_id=row["customer_id"],
                    previous_visit_at=row["previous_visit_at"],
                    visit_at=row["completed_at"],
                    days=kpis.rounded(kpis.days(row["completed_at"] - row["previous_visit_at"]), 2),
                )
                for row in rows
            ],
        )

    # ---- NPS, appointments -----------------------------------------------------------------------------------

    async def nps(self, unit: Unit, scope: Scope) -> Nps:
        answers = await q.nps_answers(unit, **scope.bounds)
        sent = await q.surveys_sent(unit, **scope.bounds)
        erased = await q.erased_among(unit, [row["customer_id"] for row in answers])
        overall = kpis.nps(row["score"] for row in answers)
        by_advisor: dict[str, list[int]] = defaultdict(list)
        for row in answers:
            by_advisor[row["advisor_id"]].append(row["score"])
        return Nps(
            **await self._frame(unit, "nps", scope, len(answers) + sent),
            **_nps_counts(overall),
            surveys_sent=sent,
            response_rate=RateView.of(Rate(len(answers), sent)),
            advisors=[
                AdvisorNps(advisor_id=advisor, **_nps_counts(kpis.nps(scores)))
                for advisor, scores in sorted(by_advisor.items())
            ],
            answer_list=[
                NpsAnswerRow.model_validate({**row, "erased": row["customer_id"] in erased})
                for row in answers
            ],
        )

    async def appointment_conversion(self, unit: Unit, scope: Scope) -> AppointmentConversion:
        rows = await q.appointments_booked(unit, **scope.bounds)
        booked = {row["customer_id"] for row in rows}
        arrived = {row["customer_id"] for row in rows if row["arrived"]}
        return AppointmentConversion(
            **await self._frame(unit, "appointment-conversion", scope, sum(row["events"] for row in rows)),
            conversion=RateView.of(Rate(len(arrived), len(booked))),
            appointments=len(rows),
            cancelled_appointments=sum(1 for row in rows if row["cancelled"]),
            cancelled_customers=len({row["customer_id"] for row in rows if row["cancelled"]}),
            no_shows=sum(1 for row in rows if row["no_show"]),
            appointment_list=[AppointmentRow.model_validate(row) for row in rows],
        )

    # ---- staff and services ----------------------------------------------------------------------------------

    async def staff_leaderboard(self, unit: Unit, scope: Scope) -> StaffLeaderboard:
        work = await q.staff_work(unit, **scope.bounds)
        answers = await q.nps_answers(unit, **scope.bounds)
        decisions = await q.add_on_decisions(unit, **scope.bounds)
        _, visit_events = await self._customer_visits(unit, scope)
        figures: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"work_orders": 0, "revenue_fen": 0, "scores": [], "decided": 0, "approved": 0}
        )
        for row in work:
            figures[row["role"], row["staff_id"]].update(
                work_orders=row["work_orders"], revenue_fen=row["revenue_fen"]
            )
        for row in answers:
            for key in _staff_of(row["advisor_id"], row["technician_ids"]):
                figures[key]["scores"].append(row["score"])
        for row in decisions:
            for key in _staff_of(row["advisor_id"], row["technician_ids"]):
                figures[key]["decided"] += 1
                figures[key]["approved"] += int(row["approved_first"])
        staff = [
            StaffRow(
                role=role,  # type: ignore[arg-type]  # "advisor" | "technician", from _staff_of and the query
                staff_id=staff_id,
                work_orders=figure["work_orders"],
                revenue_fen=figure["revenue_fen"],
                answers=len(figure["scores"]),
                nps=kpis.nps(figure["scores"]).score,
                add_ons_decided=figure["decided"],
                add_ons_approved=figure["approved"],
                add_on_approval_rate=Rate(figure["approved"], figure["decided"]).value,
            )
            for (role, staff_id), figure in figures.items()
        ]
        staff.sort(key=lambda row: (row.role, -row.revenue_fen, row.staff_id))
        events = visit_events + len(answers) + sum(row["events"] for row in decisions)
        return StaffLeaderboard(**await self._frame(unit, "staff-leaderboard", scope, events), staff=staff)

    async def popular_services(self, unit: Unit, scope: Scope) -> PopularServices:
        rows = await q.popular_items(unit, **scope.bounds)
        _, events = await self._customer_visits(unit, scope)
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        categories: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            items[row["item_code"]].append(row)
            categories[row["category"]].append(row)
        item_rows = [
            ItemRow(
                item_code=code,
                name=group[0]["name"],
                category=group[0]["category"],
                **_service_figures(group),
            )
            for code, group in items.items()
        ]
        category_rows = [
            CategoryRow(category=name, **_service_figures(group)) for name, group in categories.items()
        ]
        item_rows.sort(key=lambda row: (-row.count, row.item_code))
        category_rows.sort(key=lambda row: (-row.count, row.category))
        return PopularServices(
            **await self._frame(unit, "popular-services", scope, events),
            items=item_rows,
            categories=category_rows,
        )

    # ---- campaigns, reminders, declined work -----------------------------------------------------------------

    async def campaign_roi(self, unit: Unit, scope: Scope, *, campaign_id: str | None = None) -> CampaignRoi:
        """Campaigns running in the period, with the visits attributed to them until `to` (the ROI so far).
        `campaign_id` narrows the list of orders, not the figures."""
        campaigns = await q.campaigns_running(
            unit, first_day=scope.period.start, day_after=scope.period.end, branch=scope.branch_id
        )
        orders = await q.attributed_orders(
            unit,
            campaign_ids=[row["campaign_id"] for row in campaigns],
            end=scope.period.utc_end,
            branch=scope.branch_id,
        )
        erased = await q.erased_among(unit, [row["customer_id"] for row in orders])
        against_control, control_events = await self._against_control_groups(unit, scope, campaigns)
        rows = []
        for campaign in campaigns:
            own = [order for order in orders if order["campaign_id"] == campaign["campaign_id"]]
            revenue = sum(order["paid_fen"] for order in own)
            # A branch's figures carry a campaign's cost only when the campaign is that branch's alone.
            cost_is_the_scopes = scope.branch_id is None or campaign["branch_ids"] == [scope.branch_id]
            measured = against_control.get(campaign["campaign_id"], {})
            incremental = measured.get("incremental_revenue_fen")
            rows.append(
                CampaignRow(
                    campaign_id=campaign["campaign_id"],
                    name=campaign["name"],
                    starts_on=campaign["starts_on"],
                    ends_on=campaign["ends_on"],
                    cost_fen=campaign["cost_fen"],
                    recipients=campaign["recipients"],
                    orders=len(own),
                    revenue_fen=revenue,
                    roi=RateView.of(kpis.roi(revenue, campaign["cost_fen"])) if cost_is_the_scopes else None,
                    **{name: None for name in CONTROL_GROUP_FIGURES} | measured,
                    incremental_roi=RateView.of(kpis.roi(incremental, campaign["cost_fen"]))
                    if cost_is_the_scopes and incremental is not None
                    else None,
                )
            )
        order_events = {order["work_order_id"]: order["events"] for order in orders}
        events = (
            sum(1 + campaign["sends"] for campaign in campaigns) + sum(order_events.values()) + control_events
        )
        return CampaignRoi(
            **await self._frame(unit, "campaign-roi", scope, events),
            campaigns=rows,
            orders=[
                AttributedOrder.model_validate({**order, "erased": order["customer_id"] in erased})
                for order in orders
                if campaign_id is None or order["campaign_id"] == campaign_id
            ],
        )

    async def _against_control_groups(
        self, unit: Unit, scope: Scope, campaigns: list[dict[str, Any]]
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """Per campaign whose audience arrived (CampaignAudienceDrawn), its figures against its control group
        (domain/control_group.py), and the events behind them: the audience's batches and the visits in the
        windows."""
        windows = {campaign["campaign_id"]: campaign["attribution_window_days"] for campaign in campaigns}
        audiences = await q.campaign_audiences(unit, campaign_ids=sorted(windows))
        measured: dict[str, dict[str, Any]] = {}
        bounds: dict[str, tuple[datetime, datetime]] = {}
        for audience in audiences:
            campaign_id = audience["campaign_id"]
            complete = audience["batches_arrived"] >= audience["batch_count"]
            measured[campaign_id] = {"audience_complete": complete}
            if not complete:
                continue
            start, window_end = measurement_window(
                audience["launched_at"], windows[campaign_id], scope.period.timezone
            )
            until = max(start, min(window_end, scope.period.utc_end))
            bounds[campaign_id] = (start, until)
            measured[campaign_id] |= {
                "measured_from": start,
                "measured_until": until,
                "window_closed": window_end <= scope.period.utc_end,
            }
        revenue_rows = await q.audience_revenue(
            unit,
            campaign_ids=list(bounds),
            starts=[start for start, _ in bounds.values()],
            ends=[until for _, until in bounds.values()],
            branch=scope.branch_id,
        )
        groups: dict[tuple[str, bool], GroupRevenue] = {
            (row["campaign_id"], row["in_control_group"]): GroupRevenue(row["customers"], row["paid_fen"])
            for row in revenue_rows
        }
        for campaign_id in bounds:
            treated = groups.get((campaign_id, False), GroupRevenue(0, 0))
            control = groups.get((campaign_id, True), GroupRevenue(0, 0))
            incremental = incremental_revenue(treated, control)
            measured[campaign_id] |= {
                "treated_customers": treated.customers,
                "control_customers": control.customers,
                "treated_revenue_fen": treated.revenue_fen,
                "control_revenue_fen": control.revenue_fen,
                "revenue_per_treated_fen": _optional_fen(treated.per_customer),
                "revenue_per_control_fen": _optional_fen(control.per_customer),
                "incremental_revenue_fen": _optional_fen(incremental),
            }
        events = sum(audience["batches_arrived"] for audience in audiences) + sum(
            row["events"] for row in revenue_rows
        )
        return measured, events

    async def reminder_effectiveness(self, unit: Unit, scope: Scope) -> ReminderEffectiveness:
        rows = await q.reminders_sent(unit, **scope.bounds)
        followed = sum(1 for row in rows if row["followed_by"] is not None)
        return ReminderEffectiveness(
            **await self._frame(unit, "reminder-effectiveness", scope, len(rows)),
            effectiveness=RateView.of(Rate(followed, len(rows))),
            reminders=[ReminderRow.model_validate(row) for row in rows],
        )

    async def stage_on_time(self, unit: Unit, scope: Scope) -> StageOnTime:
        rows = await stage_queries.timed_passages(unit, **scope.bounds)
        passages = [
            (
                row,
                TimedPassage(
                    ProcessStage(row["stage"]), row["entered_at"], row["completed_at"], row["due_at"]
                ),
            )
            for row in rows
        ]
        order = {stage: index for index, stage in enumerate(ProcessStage)}
        per_stage = stages.figures((passage.stage, passage) for _, passage in passages)
        per_definition = stages.figures(
            ((row["process_scope"], row["process_version"], passage.stage), passage)
            for row, passage in passages
        )

        def view(stage: ProcessStage, figures: stages.StageFigures) -> dict[str, Any]:
            return {
                "stage": stage,
                "on_time": RateView.of(figures.on_time),
                "median_seconds_in_stage": _optional(figures.median_seconds, 1),
            }

        return StageOnTime(
            **await self._frame(unit, "stage-on-time", scope, len({row["event_id"] for row in rows})),
            stages=[
                StageFiguresView.model_validate(view(stage, figures))
                for stage, figures in sorted(per_stage.items(), key=lambda item: order[item[0]])
            ],
            by_definition=[
                DefinitionStageFigures.model_validate(
                    {**view(stage, figures), "process_scope": scope_name, "process_version": version}
                )
                for (scope_name, version, stage), figures in sorted(
                    per_definition.items(), key=lambda item: (item[0][0], item[0][1], order[item[0][2]])
                )
            ],
            passages=[
                StagePassageRow.model_validate(
                    {
                        **row,
                        "seconds_in_stage": kpis.rounded(passage.seconds, 1),
                        "on_time": passage.on_time,
                    }
                )
                for row, passage in passages
            ],
        )

    async def declined_work_recovery(self, unit: Unit, scope: Scope) -> DeclinedWorkRecovery:
        rows = await q.declined_add_ons(unit, **scope.bounds)
        recovered = [row for row in rows if row["recovered_by"] is not None]
        return DeclinedWorkRecovery(
            **await self._frame(unit, "declined-work-recovery", scope, sum(row["events"] for row in rows)),
            by_count=RateView.of(Rate(len(recovered), len(rows))),
            by_fen=RateView.of(
                Rate(sum(row["price_fen"] for row in recovered), sum(row["price_fen"] for row in rows))
            ),
            add_ons=[DeclinedRow.model_validate(row) for row in rows],
        )

    # ---- the headline ----------------------------------------------------------------------------------------

    async def headline(self, unit: Unit, scope: Scope) -> Headline:
        """A period of whole local months is answered from the projections (adapters/kpi_projections.py), any
        other from the facts; both give the same figures."""
        if self._projected(scope.period):
            figures, events = await self._headline_from_projections(unit, scope)
        else:
            figures, events = await self.headline_from_facts(unit, scope)
        return Headline(**await self._frame(unit, "headline", scope, events), **figures)

    def _projected(self, period: Period) -> bool:
        """The projections hold whole local months of the chain's time zone."""
        return period.timezone == self.timezone and period.start.day == 1 and period.end.day == 1

    async def headline_from_facts(self, unit: Unit, scope: Scope) -> tuple[dict[str, Any], int]:
        """The headline's figures and events from the facts, whatever the period: what the projections'
        answer for a period of whole months equals."""
        return_rate = await self.return_rate(unit, scope)
        activity = await self.customer_activity(unit, scope)
        spend = await self.spend_per_year(unit, scope)
        lifetime = await self.customer_lifetime(unit, scope)
        ltv = await self.ltv(unit, scope)
        gaps = await self.time_between_visits(unit, scope)
        nps = await self.nps(unit, scope)
        conversion = await self.appointment_conversion(unit, scope)
        reminders = await self.reminder_effectiveness(unit, scope)
        recovery = await self.declined_work_recovery(unit, scope)
        figures = {
            "return_rate": return_rate.return_rate,
            "new_customers": activity.new,
            "activity": activity.windows,
            "spend_per_year_fen": spend.spend_per_year_fen,
            "mean_lifetime_years": lifetime.mean_years,
            "median_lifetime_years": lifetime.median_years,
            "ltv_fen": ltv.ltv_fen,
            "nps": nps.nps,
            "nps_answers": nps.answers,
            "nps_response_rate": nps.response_rate,
            "appointment_conversion": conversion.conversion,
            "mean_days_between_visits": gaps.mean_days,
            "reminder_effectiveness": reminders.effectiveness,
            "declined_work_recovery_by_count": recovery.by_count,
            "declined_work_recovery_by_fen": recovery.by_fen,
        }
        # Every visit-based figure counts visits before `to` in the scope: the lifetime's are all of them.
        events = lifetime.events + nps.events + conversion.events + reminders.events + recovery.events
        return figures, events

    async def _headline_from_projections(self, unit: Unit, scope: Scope) -> tuple[dict[str, Any], int]:
        period, key = scope.period, kp.scope_key(scope.branch_id)
        visits = await kp.visit_figures(unit, scope=key, start=period.start, end=period.end)
        others = await kp.other_figures(unit, scope=key, start=period.start, end=period.end)
        customers = visits.customers_before_end
        middle = customers // 2
        ranks = [middle] if customers % 2 else [middle - 1, middle]
        lifetimes = await kp.lifetimes_at(unit, scope=key, end=period.end, ranks=ranks) if customers else {}
        spend = kpis.spend_per_year(visits.paid_fen, visits.customers_with_visits, period.days)
        mean_years = (
            _days(visits.lifetime_us_before_end) / customers / kpis.DAYS_PER_YEAR if customers else None
        )
        median_years = (
            kpis.median([_days(lifetimes[rank]) / kpis.DAYS_PER_YEAR for rank in ranks])
            if customers
            else None
        )
        counts = others.counts
        nps = kpis.Nps(
            answers=counts["promoters"] + counts["passives"] + counts["detractors"],
            promoters=counts["promoters"],
            passives=counts["passives"],
            detractors=counts["detractors"],
        )
        figures = {
            "return_rate": RateView.of(Rate(visits.returning_customers, visits.customers_with_visits)),
            "new_customers": visits.new_customers,
            "activity": [
                ActivityWindow(days=days, active=active, churned=customers - active)
                for days, active in visits.active.items()
            ],
            "spend_per_year_fen": None if spend is None else kpis.whole_fen(spend),
            "mean_lifetime_years": _optional(mean_years, 2),
            "median_lifetime_years": _optional(median_years, 2),
            "ltv_fen": kpis.ltv(spend, mean_years),
            "nps": nps.score,
            "nps_answers": nps.answers,
            "nps_response_rate": RateView.of(Rate(nps.answers, counts["surveys"])),
            "appointment_conversion": RateView.of(Rate(others.arrived_customers, others.booked_customers)),
            "mean_days_between_visits": _optional(
                _days(visits.gap_us) / visits.gaps if visits.gaps else None, 1
            ),
            "reminder_effectiveness": RateView.of(Rate(counts["reminders_followed"], counts["reminders"])),
            "declined_work_recovery_by_count": RateView.of(
                Rate(counts["declined_recovered"], counts["declined"])
            ),
            "declined_work_recovery_by_fen": RateView.of(
                Rate(counts["recovered_fen"], counts["declined_fen"])
            ),
        }
        events = (
            visits.events_before_end
            + nps.answers
            + counts["surveys"]
            + counts["booking_events"]
            + counts["reminders"]
            + counts["declined_events"]
        )
        return figures, events


# The campaign-roi figures measured against a control group; None where a campaign has none measured.
CONTROL_GROUP_FIGURES = (
    "audience_complete",
    "treated_customers",
    "control_customers",
    "measured_from",
    "measured_until",
    "window_closed",
    "treated_revenue_fen",
    "control_revenue_fen",
    "revenue_per_treated_fen",
    "revenue_per_control_fen",
    "incremental_revenue_fen",
)


def _days(microseconds: int) -> Fraction:
    return kpis.days(timedelta(microseconds=microseconds))


def _optional_fen(value: Fraction | None) -> int | None:
    return None if value is None else kpis.whole_fen(value)


def _in_list(customer: CustomerActivityRow, only: str | None, window_days: int) -> bool:
    if only is None:
        return True
    if only == "new":
        return customer.new
    if only == "lapsed":
        return customer.lapsed_9_12_months
    active: bool = getattr(customer, f"active_{window_days}")
    return active if only == "active" else not active


def _nps_counts(counts: kpis.Nps) -> dict[str, Any]:
    return {
        "nps": counts.score,
        "answers": counts.answers,
        "promoters": counts.promoters,
        "passives": counts.passives,
        "detractors": counts.detractors,
    }


def _staff_of(advisor_id: str | None, technician_ids: Collection[str]) -> list[tuple[str, str]]:
    advisor = [("advisor", advisor_id)] if advisor_id is not None else []
    return advisor + [("technician", technician) for technician in technician_ids]


def _service_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    costed_revenue = sum(row["costed_revenue_fen"] for row in rows)
    cost = sum(row["cost_fen"] for row in rows)
    margin = costed_revenue - cost if any(row["costed_lines"] for row in rows) else None
    return {
        "count": sum(row["lines"] for row in rows),
        "quantity": sum((row["quantity"] for row in rows), Decimal(0)),
        "revenue_fen": sum(row["revenue_fen"] for row in rows),
        "costed_revenue_fen": costed_revenue,
        "cost_fen": cost,
        "gross_margin_fen": margin,
        "gross_margin_rate": None
        if margin is None or not costed_revenue
        else Rate(margin, costed_revenue).value,
    }
