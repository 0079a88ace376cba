"""notification's own tables, beside the platform's (events, outbox, inbox, timers) in the same MetaData.

Read models fed by other services' events: `contacts`, `consents`, `customer_tags`, `branches`,
`work_orders`. What notification owns: `templates` (the chain's overrides of the built-in texts),
`branch_quiet_hours`, `messages` (the message log: one row per message to one customer on one channel),
`recorded_messages` (what the recording provider "sent"), `wechat_allowances`, `surveys` and
`survey_answers`, `segments` (and the `segment_batches` analytics' segments arrive in), `campaigns` and
`campaign_recipients`.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from pitlane_platform.schema import service_metadata

metadata = service_metadata()

# Whom to reach and how: one row per customer id ever met. A merged customer points at the survivor; an
# erased one keeps only its id and `erased_at` (ADR 13). Phones are E.164 (+86…).
contacts = Table(
    "contacts",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("full_name", Text),
    Column("phone", Text),
    Column("wechat_open_id", Text),
    Column("email", Text),
    Column("locale", Text, nullable=False, server_default="zh-CN"),
    Column("merged_into", Text),
    Column("erased_at", DateTime(timezone=True)),
    Index("ix_contacts_phone", "phone"),
)

# Consent per (customer, channel, purpose), as customer-profile last said or the customer last told us
# (an unsubscribe link, a "TD" reply). No row: service messages allowed, marketing not (opt-in only).
consents = Table(
    "consents",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("purpose", Text, primary_key=True),
    Column("granted", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

customer_tags = Table(
    "customer_tags",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("tag", Text, primary_key=True),
    Index("ix_customer_tags_tag", "tag"),
)

branches = Table(
    "branches",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("timezone", Text, nullable=False),
)

branch_quiet_hours = Table(
    "branch_quiet_hours",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("starts", Time, nullable=False),
    Column("ends", Time, nullable=False),
)

# What a message about a work order needs: whose it is, where, and who served the customer.
work_orders = Table(
    "work_orders",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("plate", Text),
    Column("advisor_id", Text),
    Column("technician_ids", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("completed_at", DateTime(timezone=True)),
    Column("voided_at", DateTime(timezone=True)),
)

# What the booking confirmation and the day-before reminder say, and whether the appointment still stands.
appointments = Table(
    "appointments",
    metadata,
    Column("appointment_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("plate", Text),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("service_requested", Text, nullable=False),
    Column("status", Text, nullable=False),  # booked | cancelled | arrived | no_show
)

vehicles = Table(
    "vehicles",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("plate", Text),
    Column("owner_customer_id", Text),
)

templates = Table(
    "templates",
    metadata,
    Column("trigger", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("locale", Text, primary_key=True),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("provider_template", Text),
    Column("provider_parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

# The message log. One row per message to one customer on one channel; `dedupe_key` (trigger event,
# trigger, channel, recipient) makes a redelivered trigger a no-op. Messages due to one customer on one
# channel at the same instant share a `batch_key` and go out as one. The address and the rendered text are
# personal data: erasure empties them (`content_erased_at`).
messages = Table(
    "messages",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("batch_key", Text),
    Column("customer_id", Text, nullable=False),
    Column("branch_id", Text),
    Column("channel", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("locale", Text, nullable=False),
    Column("address", Text),
    Column("subject", Text),
    Column("body", Text),
    Column("provider_template", Text),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("link", Text),
    Column("context", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # queued → sent → delivered, or failed; suppressed: never sent (no consent, limit, no contact…).
    Column("status", Text, nullable=False),
    Column("status_reason", Text),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("provider", Text),
    Column("provider_message_id", Text),
    Column("work_order_id", Text),
    Column("appointment_id", Text),
    Column("reminder_id", Text),
    Column("campaign_id", Text),
    Column("survey_id", Text),
    # The business flow that caused it (a visit's correlation id): its NotificationSent/Failed carry it.
    Column("correlation_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("content_erased_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('queued', 'sent', 'delivered', 'failed', 'suppressed')", name="known_status"),
    Index("ix_messages_customer", "customer_id", "created_at"),
    Index("ix_messages_batch", "batch_key", postgresql_where=text("status = 'queued'")),
    Index("ix_messages_provider_id", "provider", "provider_message_id"),
)

# The recording provider's "handset": every message it was given, for `GET /v1/recorded-messages` and
# `pitlane messages` in development. `message_id` is unique as a real provider dedupes on its OutId.
recorded_messages = Table(
    "recorded_messages",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("channel", Text, nullable=False),
    Column("address", Text),
    Column("subject", Text),
    Column("body", Text),
    Column("provider_template", Text),
    Column("parameters", JSONB, nullable=False),
    Column("link", Text),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# WeChat one-time subscriptions (一次性订阅消息): each acceptance by the customer allows exactly one send
# of that template; a send spends one, a refusal from WeChat zeroes them.
wechat_allowances = Table(
    "wechat_allowances",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("template_id", Text, primary_key=True),
    Column("remaining", Integer, nullable=False),
    CheckConstraint("remaining >= 0", name="not_negative"),
)

# One survey per completed work order (the unique key is the rule). Funnel timestamps are the survey's
# own; `channel` is where it went out.
surveys = Table(
    "surveys",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("work_order_id", Text, nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("advisor_id", Text, nullable=False),
    Column("technician_ids", JSONB, nullable=False),
    Column("correlation_id", Uuid),  # the visit's: the answer the customer gives days later carries it
    # scheduled → sent → answered; cancelled (voided, erased, not sendable); expired.
    Column("status", Text, nullable=False),
    Column("status_reason", Text),
    Column("channel", Text),
    Column("reminder_channel", Text),
    Column("scheduled_for", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("reminded_at", DateTime(timezone=True)),
    Column("opened_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("draft_score", SmallInteger),
    Column("draft_comment", Text),
    Column("detractor", Boolean, nullable=False, server_default=text("false")),
    Column("locale", Text, nullable=False, server_default="zh-CN"),
    # The version of the survey's last published event (NpsSurveySent, …, NpsAnswered): one aggregate.
    Column("version", Integer, nullable=False, server_default="0"),
    Index("ix_surveys_branch_sent", "branch_id", "sent_at"),
)

# The answer: its primary key is the survey, so a double submit or a retried request stores one answer.
survey_answers = Table(
    "survey_answers",
    metadata,
    Column("survey_id", Text, ForeignKey("surveys.survey_id"), primary_key=True),
    Column("score", SmallInteger, nullable=False),
    Column("comment", Text),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    # The NpsAnswered event that published it: erasure scrubs its copies from the streams (the comment).
    Column("event_id", Text),
    CheckConstraint("score BETWEEN 0 AND 10", name="score_range"),
)

# Saved audiences: a list of customers, saved here or exported from one of analytics' KPI drill-downs (e.g.
# "lapsed 9–12 months"), which arrives as SegmentSaved batches and is written here once all have come.
segments = Table(
    "segments",
    metadata,
    Column("segment_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("customer_ids", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    # "notification" (POST /v1/segments here) or "analytics" (a drill-down, `drill_down` says which).
    Column("source", Text, nullable=False, server_default=text("'notification'")),
    Column("drill_down", JSONB),
)

# The batches of analytics' segments that have arrived (SegmentSaved): a segment is usable once it holds
# batches 1 to batch_count, when they are joined in order into `segments`.
segment_batches = Table(
    "segment_batches",
    metadata,
    Column("segment_id", Text, primary_key=True),
    Column("batch_number", Integer, primary_key=True),
    Column("batch_count", Integer, nullable=False),
    Column("customer_ids", JSONB, nullable=False),
    Column("event_id", Text, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("audience", JSONB, nullable=False),  # {"tags": [...]} or {"segment_id": ...}
    Column("cost_fen", Integer, nullable=False),
    Column("attribution_window_days", Integer, nullable=False),
    Column("control_share_pct", SmallInteger, nullable=False),
    Column("coupon_prefix", Text),
    Column("starts_on", Text, nullable=False),
    Column("ends_on", Text, nullable=False),
    Column("branch_ids", JSONB, nullable=False),
    Column("status", Text, nullable=False),  # draft → launched
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("launched_at", DateTime(timezone=True)),
    Column("recipients", Integer),
    Column("control_group", Integer),
    Column("skipped_without_consent", Integer),
)

# Who a launched campaign reached or held out: one row per audience member, with their unique coupon.
campaign_recipients = Table(
    "campaign_recipients",
    metadata,
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("customer_id", Text, primary_key=True),
    Column("in_control_group", Boolean, nullable=False),
    Column("coupon_code", Text),
    Column("outcome", Text, nullable=False),  # sent | control | no_consent | limited | no_contact
    Column("message_id", Text),
    UniqueConstraint("coupon_code", name="uq_campaign_recipients_coupon_code"),
)

# Who works at which branch in which role (workorder's StaffMemberAdded): a branch's managers get its alerts.
# A staff member's addresses are in `contacts` under `staff:<staff id>`, set by the chain.
branch_staff = Table(
    "branch_staff",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("staff_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
)
