"""analytics' own tables, beside the platform's (events, outbox, inbox, timers) in one MetaData.

Facts, fed by every stream; ids and amounts only (no names, phones, plates or comments: what identifies a
person stays with the service that owns it). Each row is written column by column by the events that know
each column (`adapters/facts.py`), so it ends the same whatever order its events arrive in, and keeps the
ids of the events that wrote it (`event_ids` / `event_id`): an answer counts the events behind it.

- `work_orders`: every opened work order; a visit is one with `completed_at` and no `voided_at`.
- `visit_lines`: a completed order's lines (revenue and, where known, cost).
- `stage_passages`: each stage a completed order passed, with its deadline under the order's definition.
- `appointments`, `add_ons`, `surveys`, `nps_answers`, `campaigns`, `campaign_sends`, `reminders_sent`.
- `campaign_audience_batches`, `campaign_audience_members`: a launched campaign's audience as its control-group
  draw split it (treated or held out), for incremental revenue.
- `customer_aliases`: merged customer → surviving customer, resolved when a KPI is asked.
- `erased_customers`: whose profile was erased (drill-downs say so; the figures keep counting them).
- `source_watermarks`: the newest event time read from each producer (an answer's `data_as_of`).

Not a fact: `saved_segments`, the drill-down lists saved as segments (`POST /v1/segments`), which analytics
publishes (SegmentSaved). It is written by the API, not by events, so a rebuild leaves it as it is.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from pitlane_platform.schema import service_metadata

metadata = service_metadata()

EMPTY_TEXT_ARRAY = text("'{}'::text[]")

work_orders = Table(
    "work_orders",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("vehicle_id", Text),
    Column("branch_id", Text),
    Column("advisor_id", Text),
    Column("technician_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Column("appointment_id", Text),
    # The coupons redeemed on the order (its own and its discounts'): campaign attribution.
    Column("coupon_codes", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Column("completed_at", DateTime(timezone=True)),
    Column("paid_fen", BigInteger),
    Column("voided_at", DateTime(timezone=True)),
    # The process definition version the order ran on (WorkOrderOpened v2; orders before it: built_in 0).
    Column("process_scope", Text),
    Column("process_version", Integer),
    Column("event_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Index("ix_work_orders_completed_at", "completed_at"),
    Index("ix_work_orders_customer", "customer_id"),
    Index("ix_work_orders_vehicle", "vehicle_id"),
    Index("ix_work_orders_appointment", "appointment_id"),
)

visit_lines = Table(
    "visit_lines",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("item_code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("quantity", Numeric(12, 3), nullable=False),
    Column("revenue_fen", BigInteger, nullable=False),
    Column("cost_fen", BigInteger),
    Column("add_on_id", Text),
    Column("event_id", Text, nullable=False),
    Index("ix_visit_lines_item", "item_code"),
)

appointments = Table(
    "appointments",
    metadata,
    Column("appointment_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("branch_id", Text),
    Column("vehicle_id", Text),
    Column("channel", Text),
    Column("campaign_id", Text),
    Column("reminder_id", Text),
    Column("booked_at", DateTime(timezone=True)),  # the booking event's occurred_at
    Column("arrived_at", DateTime(timezone=True)),
    Column("work_order_id", Text),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("no_show_at", DateTime(timezone=True)),
    Column("event_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Index("ix_appointments_booked_at", "booked_at"),
    Index("ix_appointments_vehicle", "vehicle_id"),
    Index("ix_appointments_campaign", "campaign_id"),
    Index("ix_appointments_customer", "customer_id"),
    # The bookings a reminder's link made (reminders_followed).
    Index("ix_appointments_reminder", "reminder_id"),
)

# An add-on's first approval and first decline are kept apart: its first decision is whichever came first
# (the approval rate), and a decline followed by an approval is a recovery.
add_ons = Table(
    "add_ons",
    metadata,
    Column("add_on_id", Text, primary_key=True),
    Column("work_order_id", Text, nullable=False),
    Column("item", Text),
    Column("item_code", Text),
    Column("category", Text),
    Column("price_fen", BigInteger),
    Column("proposed_at", DateTime(timezone=True)),
    Column("approved_at", DateTime(timezone=True)),
    Column("declined_at", DateTime(timezone=True)),
    Column("event_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Index("ix_add_ons_work_order", "work_order_id"),
    Index("ix_add_ons_declined_at", "declined_at"),
)

surveys = Table(
    "surveys",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("work_order_id", Text, nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("event_id", Text, nullable=False),
    Index("ix_surveys_sent_at", "sent_at"),
)

nps_answers = Table(
    "nps_answers",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("work_order_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("advisor_id", Text, nullable=False),
    Column("technician_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Column("score", SmallInteger, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),  # the answer event's occurred_at
    Column("event_id", Text, nullable=False),
    Index("ix_nps_answers_answered_at", "answered_at"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("cost_fen", BigInteger, nullable=False),
    Column("attribution_window_days", SmallInteger, nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("coupon_codes", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    # Empty: the whole chain takes part.
    Column("branch_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
    Column("event_id", Text, nullable=False),
)

campaign_sends = Table(
    "campaign_sends",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipients", Integer, nullable=False),
    Index("ix_campaign_sends_campaign", "campaign_id"),
)

# One row per CampaignAudienceDrawn batch: when the audience was drawn (the launch, where the measurement of
# incremental revenue starts) and how many batches make it whole.
campaign_audience_batches = Table(
    "campaign_audience_batches",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("batch_number", Integer, primary_key=True),
    Column("batch_count", Integer, nullable=False),
    Column("audience_group", Text, nullable=False),  # treated | control
    Column("customers", Integer, nullable=False),
    Column("drawn_at", DateTime(timezone=True), nullable=False),  # the event's occurred_at: the launch
    Column("event_id", Text, nullable=False),
)

# One row per audience member as drawn (merged ids are resolved when a KPI is asked).
campaign_audience_members = Table(
    "campaign_audience_members",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("in_control_group", Boolean, nullable=False),
    Column("event_id", Text, nullable=False),
)

# One row per ReminderDue: each rung of a reminder's ladder is a reminder sent.
# One row per passage of a completed order through a stage (WorkOrderCompleted's `stages`), for the stage
# on-time rate.
stage_passages = Table(
    "stage_passages",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("stage", Text, primary_key=True),
    Column("occurrence", SmallInteger, primary_key=True),
    Column("add_on_id", Text),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("event_id", Text, nullable=False),
    Index("ix_stage_passages_completed_at", "completed_at"),
)

reminders_sent = Table(
    "reminders_sent",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("reminder_id", Text, nullable=False),
    Column("vehicle_id", Text, nullable=False),
    Column("branch_id", Text),  # the branch the vehicle last visited (ReminderDue's preferred branch)
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Index("ix_reminders_sent_sent_at", "sent_at"),
    Index("ix_reminders_sent_vehicle", "vehicle_id"),
    Index("ix_reminders_sent_reminder", "reminder_id"),
)

customer_aliases = Table(
    "customer_aliases",
    metadata,
    Column("merged_customer_id", Text, primary_key=True),
    Column("surviving_customer_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Index("ix_customer_aliases_surviving", "surviving_customer_id"),
)

erased_customers = Table(
    "erased_customers",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("event_id", Text, nullable=False),
)

# The branches workorder opened: their names (for pickers) and time zones (a digest goes out at its branch's
# local time).
branches = Table(
    "branches",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("name", Text),
    Column("timezone", Text),
    Column("event_ids", ARRAY(Text), nullable=False, server_default=EMPTY_TEXT_ARRAY),
)

source_watermarks = Table(
    "source_watermarks",
    metadata,
    Column("source_service", Text, primary_key=True),
    Column("newest_event_at", DateTime(timezone=True), nullable=False),
)

# The headline's projections (ADR 0026, adapters/kpi_projections.py): the visits' figures pre-aggregated per
# scope ('*' the chain, else a branch id) and local month of the chain's time zone, kept in step with the facts
# by the writers. `customer_visits` is each visit as its customer's history places it (recomputed whole for a
# customer whenever one of their visits changes); the others are sums of its rows, changed by the difference
# between a customer's old rows and new ones. Months are first days of local months; '-infinity' stands for
# "no such visit" and 'infinity' for "never".
customer_visits = Table(
    "customer_visits",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),  # the survivor of merges
    Column("month", Date, nullable=False),
    Column("previous_month", Date, nullable=False),  # of the customer's visit before it in the scope
    Column("previous2_month", Date, nullable=False),  # of the one before that
    Column("chain_first", Boolean, nullable=False),  # the customer's first visit anywhere in the chain
    Column("paid_fen", BigInteger, nullable=False),
    Column("gap_us", BigInteger),  # since the visit before it in the scope, µs; null for the first
    # The month boundaries at which this visit is the customer's last before the boundary: [owns_from,
    # owns_until); and until which of them it keeps the customer active over 30, 90 and 365 days.
    Column("owns_from", Date, nullable=False),
    Column("owns_until", Date, nullable=False),
    Column("active_30_until", Date, nullable=False),
    Column("active_90_until", Date, nullable=False),
    Column("active_365_until", Date, nullable=False),
    Column("lifetime_us", BigInteger, nullable=False),  # since the customer's first visit in the scope
    Column("lifetime_bucket", Integer, nullable=False),  # 0: no lifetime; else 1 + whole weeks of it
    Index("ix_customer_visits_customer", "customer_id"),
    Index("ix_customer_visits_lifetime", "scope", "lifetime_bucket"),
)

# Per scope, month of visit and months of the customer's two visits before it: visits, paid fen, the visits
# that were the customer's first in the chain, the gaps since the visit before (count, µs). Customers with ≥ 1
# (≥ 2) visits in [a, b) are the visits in it whose previous (second previous) visit is before a.
visit_months = Table(
    "visit_months",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("month", Date, primary_key=True),
    Column("previous_month", Date, primary_key=True),
    Column("previous2_month", Date, primary_key=True),
    Column("visits", BigInteger, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("chain_firsts", BigInteger, nullable=False),
    Column("gaps", BigInteger, nullable=False),
    Column("gap_us", BigInteger, nullable=False),
)

# Differences at month boundaries: the sum over boundaries ≤ `to` is the state at `to` — customers with a
# visit before it, their lifetimes' sum (µs), and how many are active over 30/90/365 days.
month_boundaries = Table(
    "month_boundaries",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("boundary", Date, primary_key=True),
    Column("customers", BigInteger, nullable=False),
    Column("lifetime_us", BigInteger, nullable=False),
    Column("active_30", BigInteger, nullable=False),
    Column("active_90", BigInteger, nullable=False),
    Column("active_365", BigInteger, nullable=False),
)

# Differences at month boundaries of the customers per lifetime bucket: the histogram at `to` finds the
# bucket of the median, whose exact lifetimes `customer_visits` gives.
lifetime_histogram = Table(
    "lifetime_histogram",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("boundary", Date, primary_key=True),
    Column("lifetime_bucket", Integer, primary_key=True),
    Column("customers", BigInteger, nullable=False),
)

# The headline's counts. `counted_facts`: what each visit, booking, NPS answer, survey, reminder and declined
# add-on counts for (recounted whole when a fact it depends on may have changed: a reminder when a booking or
# visit of its vehicle near it does); `month_counts`: their sums per scope and local month.
COUNTS = (
    "visit_events",
    "booking_events",
    "promoters",
    "passives",
    "detractors",
    "surveys",
    "reminders",
    "reminders_followed",
    "declined",
    "declined_recovered",
    "declined_fen",
    "recovered_fen",
    "declined_events",
)

counted_facts = Table(
    "counted_facts",
    metadata,
    # visit | booking | answer | survey | reminder | declined; work order, appointment, survey, survey,
    # reminder's event, add-on id
    Column("kind", Text, primary_key=True),
    Column("fact_id", Text, primary_key=True),
    Column("branch_id", Text),
    Column("month", Date, nullable=False),
    Column("customer_id", Text),  # an answer's (as the answer names it): its erasure takes the answer off
    *(Column(name, BigInteger, nullable=False) for name in COUNTS),
    Index("ix_counted_facts_customer", "customer_id"),
)

month_counts = Table(
    "month_counts",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("month", Date, primary_key=True),
    *(Column(name, BigInteger, nullable=False) for name in COUNTS),
)

# Each booked appointment as its customer's bookings place it (recomputed whole for a customer when one of
# their appointments changes or they merge), and the sums per scope, month of booking and months of the
# customer's booking before it and arrived booking before it: customers who booked (arrived) in [a, b) are
# the bookings (arrived ones) in it whose previous one is before a.
customer_appointments = Table(
    "customer_appointments",
    metadata,
    Column("appointment_id", Text, primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("month", Date, nullable=False),
    Column("previous_month", Date, nullable=False),
    Column("previous_arrived_month", Date, nullable=False),  # of arrived bookings, for an arrived one
    Column("arrived", Boolean, nullable=False),
    Index("ix_customer_appointments_customer", "customer_id"),
)

appointment_months = Table(
    "appointment_months",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("month", Date, primary_key=True),
    Column("previous_month", Date, primary_key=True),
    Column("previous_arrived_month", Date, primary_key=True),
    Column("bookings", BigInteger, nullable=False),
    Column("arrived", BigInteger, nullable=False),
)

# A KPI drill-down's customers saved as a segment (not a fact: the API writes it, a rebuild leaves it alone).
saved_segments = Table(
    "saved_segments",
    metadata,
    Column("segment_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("drill_down", JSONB, nullable=False),  # kpi, period, branch and filters, as SegmentSaved says
    Column("customer_ids", ARRAY(Text), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# KPI digests by e-mail (`/v1/digests`): subscriptions, each attempt to send one, and (development) the
# e-mails the recording mailer kept. Written by the API and the digest timers, not by events: they are not
# read models, and a rebuild leaves them as they are.
digest_subscriptions = Table(
    "digest_subscriptions",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    Column("email", Text, nullable=False),  # staff data: never logged, never in a timer key
    Column("branch_id", Text),  # null: the whole chain
    Column("cadence", Text, nullable=False),  # daily | weekly | monthly
    Column("weekday", SmallInteger),  # weekly: ISO 1 = Monday … 7
    Column("month_day", SmallInteger),  # monthly: 1–28
    Column("send_time", Time, nullable=False),  # local wall-clock time in `timezone`
    Column("timezone", Text, nullable=False),
    Column("language", Text, nullable=False),  # zh-CN | en
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

digest_deliveries = Table(
    "digest_deliveries",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("attempt", SmallInteger, primary_key=True),
    Column("period_end", Date, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False),  # sent | retried | failed
    Column("reason", Text),  # the SMTP step and code of a refusal, never the server's text
    Column("message_id", Text),  # the Message-ID of a sent one
    # One period is sent once: the idempotency key is the subscription and the period's first day.
    Index(
        "uq_digest_deliveries_sent_once",
        "subscription_id",
        "period_start",
        unique=True,
        postgresql_where=text("outcome = 'sent'"),
    ),
)

recorded_digest_emails = Table(
    "recorded_digest_emails",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
