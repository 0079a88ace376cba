"""This service's tables, on the platform's MetaData (one Alembic history creates both).

The profile tables are the read model of the 360° view. Those fed by our own aggregates are written in the
command's transaction (so a lookup right after a registration finds it, and unique plates, VINs and phones
are enforced by the database); those fed by other services' events are written by the consumers.
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
    LargeBinary,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from pitlane_platform.schema import service_metadata

metadata = service_metadata()

# One row per customer ever registered. After erasure the personal columns are NULL and `erased_at` is set;
# the figures (visits, spend) stay for KPIs under the now anonymous id.
customers = Table(
    "customers",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("full_name", Text),
    Column("primary_phone", Text),
    Column("wechat_id", Text),
    Column("gender", Text),
    Column("birthday", Date),
    Column("source", Text, nullable=False),
    Column("registered_at_branch_id", Text),
    Column("referrer_customer_id", Text),
    Column("membership_tier", Text),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("preferred_services", ARRAY(Text), nullable=False, server_default="{}"),
    Column("notes", Text),
    Column("custom_fields", JSONB, nullable=False, server_default="{}"),
    Column("consents", JSONB, nullable=False, server_default="{}"),  # {"sms:marketing": true, ...}
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("merged_into", Text),
    Column("erased_at", DateTime(timezone=True)),
    # Figures from workorder and notification events.
    Column("visit_count", Integer, nullable=False, server_default="0"),
    Column("total_spend_fen", BigInteger, nullable=False, server_default="0"),
    Column("last_service_at", DateTime(timezone=True)),
    Column("last_service_mileage_km", Integer),
    Column("latest_nps_score", Integer),
    Column("latest_nps_comment", Text),
    Column("latest_nps_at", DateTime(timezone=True)),
    Index("ix_customers_tags", "tags", postgresql_using="gin"),
    Index("ix_customers_full_name", "full_name"),
)

# Every phone of every live customer: the front desk's lookup key, unique chain-wide.
customer_phones = Table(
    "customer_phones",
    metadata,
    Column("phone", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, index=True),
    Column("is_primary", Boolean, nullable=False),
    Index("ix_customer_phones_prefix", "phone", postgresql_ops={"phone": "text_pattern_ops"}),
)

vehicles = Table(
    "vehicles",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("owner_customer_id", Text, index=True),
    Column("plate", Text, nullable=False, unique=True),
    Column("vin", Text, unique=True),
    Column("brand", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("model_year", Integer),
    Column("energy_type", Text),
    Column("purchase_date", Date),
    Column("registration_date", Date),
    Column("mileage_km", Integer),
    Column("mileage_recorded_at", DateTime(timezone=True)),
    Column("insurance", JSONB, nullable=False, server_default="{}"),  # coverage → {insurer, expires_on, ...}
    Column("version", Integer, nullable=False),
    Column("visit_count", Integer, nullable=False, server_default="0"),
    Column("total_spend_fen", BigInteger, nullable=False, server_default="0"),
    Column("last_service_at", DateTime(timezone=True)),
    Column("last_service_mileage_km", Integer),
    Index("ix_vehicles_plate_fragment", "plate", postgresql_ops={"plate": "text_pattern_ops"}),
)

vehicle_mileage = Table(
    "vehicle_mileage",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("vehicle_id", Text, nullable=False, index=True),
    Column("mileage_km", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("work_order_id", Text),
)

# Visits, from WorkOrderCompleted: one row per work order, so a redelivered completion cannot add a second.
visits = Table(
    "visits",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, index=True),
    Column("vehicle_id", Text, nullable=False, index=True),
    Column("branch_id", Text, nullable=False),
    Column("plate", Text, nullable=False),
    Column("mileage_km", Integer, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("line_items", JSONB, nullable=False),
    Column("voided", Boolean, nullable=False, server_default="false"),
)

# Which customer and vehicle a work order is about, from WorkOrderOpened: AddOnDeclined names only the order.
work_order_refs = Table(
    "work_order_refs",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("vehicle_id", Text, nullable=False),
)

declined_add_ons = Table(
    "declined_add_ons",
    metadata,
    Column("add_on_id", Text, primary_key=True),
    Column("work_order_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False, index=True),
    Column("vehicle_id", Text, nullable=False, index=True),
    Column("item", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    Column("declined_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),
    Column("done_in_work_order_id", Text),  # set when a later visit did the work: no longer open
)

reminders = Table(
    "reminders",
    metadata,
    Column("reminder_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, index=True),
    Column("vehicle_id", Text, nullable=False, index=True),
    Column("kind", Text, nullable=False),
    Column("due_on", Date),
    Column("due_mileage_km", Integer),
    Column("status", Text, nullable=False),  # scheduled | due | cancelled
)

# Who read whose full profile, when and how; owners query it. Ids only, no personal data.
profile_reads = Table(
    "profile_reads",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("read_at", DateTime(timezone=True), nullable=False),
    Column("reader_user_id", Text, nullable=False),
    Column("reader_role", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("via", Text, nullable=False),  # id | plate | phone | vin
    Index("ix_profile_reads_customer", "customer_id", "read_at"),
    Index("ix_profile_reads_reader", "reader_user_id", "read_at"),
)

# The crypto-shredding vault (ADR 0006): one AES-256 data key per customer, wrapped with the master key.
# Deleting the row makes every encrypted field of that customer's stored events unreadable.
customer_data_keys = Table(
    "customer_data_keys",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The audit trail of erasure requests: ids and times only.
erasures = Table(
    "erasures",
    metadata,
    Column("erasure_request_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, unique=True),
    Column("requested_by", Text, nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("stream_messages_scrubbed_at", DateTime(timezone=True)),
)

# The chain's custom-field schema: one row, replaced as a whole by an owner.
custom_field_schema = Table(
    "custom_field_schema",
    metadata,
    Column("id", Integer, primary_key=True, server_default=text("1")),
    Column("fields", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
