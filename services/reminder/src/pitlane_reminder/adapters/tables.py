"""reminder's own tables, beside the platform's (events, outbox, inbox, timers) in one MetaData.

Read models fed by events: `vehicles` (owner, plate, the last service and the mileage estimate made from
`mileage_readings`, open bookings and work orders, sold or erased), `insurance_policies`, `consents`,
`staff`. What reminder owns: `rules` (the chain's and branches' settings of each rule), `reminders` (one
per vehicle, rule and due cycle), `reminder_steps` (each rung of a cycle's ladder, sent once) and
`tasks` (advisors' follow-ups).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from pitlane_platform.schema import service_metadata

metadata = service_metadata()

# One row per vehicle: who owns it, where it was last serviced, and the mileage estimate (materialised on
# every reading, so re-evaluating a million vehicles' schedules is one statement, not a million projections).
vehicles = Table(
    "vehicles",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("customer_id", Text),
    Column("plate", Text),
    Column("registration_date", Date),
    Column("purchase_date", Date),
    Column("last_branch_id", Text),
    Column("last_advisor_id", Text),
    Column("last_service_on", Date),
    Column("last_service_km", Integer),
    Column("first_service_on", Date),
    Column("last_visit_at", DateTime(timezone=True)),
    # The mileage estimate (domain/mileage.py's Projection): the last accepted reading, km per day and the
    # odometer correction the readings count from, with the line explaining it.
    Column("last_reading_at", DateTime(timezone=True)),
    Column("last_reading_km", Integer),
    Column("km_per_day", Float),
    Column("odometer_replaced_at", DateTime(timezone=True)),
    Column("estimate_basis", Text),
    Column("open_bookings", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("open_work_orders", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("sold_at", DateTime(timezone=True)),
    Column("erased_at", DateTime(timezone=True)),
    Index("ix_vehicles_customer", "customer_id"),
)

mileage_readings = Table(
    "mileage_readings",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("vehicle_id", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("km", Integer, nullable=False),
    Column("correction", Boolean, nullable=False, server_default=text("false")),
    Column("event_id", Text, nullable=False, unique=True),
    # Set aside by the estimate (backwards, or an implausible jump): kept, shown, not used.
    Column("set_aside_reason", Text),
    Index("ix_mileage_readings_vehicle", "vehicle_id", "recorded_at"),
)

insurance_policies = Table(
    "insurance_policies",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("coverage", Text, primary_key=True),  # compulsory (交强险) | commercial (商业险)
    Column("insurer", Text, nullable=False),
    Column("expires_on", Date, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("purpose", Text, primary_key=True),
    Column("granted", Boolean, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

staff = Table(
    "staff",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("staff_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
)

# A rule's settings for the chain (branch_id '') or one branch (its override), as JSON of the rule's
# parameters; no row: the built-in defaults (service_layer/rules.py).
rules = Table(
    "rules",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("branch_id", Text, primary_key=True),
    Column("settings", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

# One reminder per vehicle, rule kind and subject (the policy's coverage, the declined add-on; '' for the
# others). It moves from due cycle to due cycle (`cycle` names what the current one is due after: the last
# service, the policy's expiry): a completion reschedules it, never duplicates it. A cycle ends closed (the
# work was done, here or elsewhere) or the reminder is cancelled (sold, erased, consent withdrawn).
reminders = Table(
    "reminders",
    metadata,
    Column("reminder_id", Text, primary_key=True),
    Column("vehicle_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("cycle", Text, nullable=False),
    Column("branch_id", Text),
    Column("due_on", Date, nullable=False),
    Column("due_mileage_km", Integer),
    Column("due_by", Text, nullable=False),  # mileage | time: which came first
    Column("basis", Text, nullable=False),
    Column("ladder", Text, nullable=False),  # the rule's rungs this cycle was laid out with, e.g. -30,-7,0
    Column("status", Text, nullable=False),  # scheduled | closed | cancelled
    Column("status_reason", Text),
    Column("snoozed_until", Date),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    UniqueConstraint("vehicle_id", "kind", "subject", name="uq_reminders_vehicle_kind_subject"),
    Index("ix_reminders_open", "vehicle_id", postgresql_where=text("status = 'scheduled'")),
    Index("ix_reminders_customer", "customer_id"),
)

# Each rung of a cycle's ladder: its day, and when it was sent or why it was skipped. Sent once per cycle:
# the row is marked in the transaction of the timer that fires it, and a due date that moves within the
# cycle moves only the rungs not sent yet.
reminder_steps = Table(
    "reminder_steps",
    metadata,
    Column("reminder_id", Text, primary_key=True),
    Column("cycle", Text, primary_key=True),
    Column("offset_days", SmallInteger, primary_key=True),
    Column("vehicle_id", Text, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("skipped_at", DateTime(timezone=True)),
    Column("skip_reason", Text),
    Index("ix_reminder_steps_vehicle_day", "vehicle_id", "due_on"),
)

# What workorder said about its orders, as far as reminders need: whose car, where, who served.
work_orders = Table(
    "work_orders",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("vehicle_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("advisor_id", Text, nullable=False),
    Column("completed_on", Date),
    Column("mileage_km", Integer),
    Column("voided", Boolean, nullable=False, server_default=text("false")),
)

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("advisor_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("vehicle_id", Text),
    Column("source", Text, nullable=False, unique=True),  # what made it: one task per source
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),  # open | done
    Column("outcome", Text),
    Column("auto_closed_reason", Text),
    Column("note", Text),
    Column("work_order_id", Text),
    Column("survey_id", Text),
    Column("reminder_id", Text),
    Column("add_on_id", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    # A late stage of a work order (stage_overdue): which, and the role at the branch that answers for it.
    Column("stage", Text),
    Column("responsible_role", Text),
    CheckConstraint("status IN ('open', 'done')", name="known_status"),
    Index("ix_tasks_branch_status", "branch_id", "status", "due_at"),
)
