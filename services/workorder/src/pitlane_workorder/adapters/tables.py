"""The workorder service's own tables, beside the platform's event store and outbox in the same MetaData.

Appointments and work orders are event-sourced (their truth is the event store); `appointments` and
`work_orders` here are read models of them, written in the same transaction as the events, so capacity checks
and the board never lag behind a command.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    Time,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from pitlane_platform.schema import service_metadata

metadata = service_metadata()

branches = Table(
    "branches",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("opening_hours", JSONB, nullable=False),
    Column("bays", JSONB, nullable=False),
    Column("slot_minutes", Integer, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)

staff = Table(
    "staff",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("staff_id", Text, primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("role", Text, nullable=False),
)

# One row per appointment: its current slot and status. Live bookings per slot are counted here.
appointments = Table(
    "appointments",
    metadata,
    Column("appointment_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("slot_end", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("campaign_id", Text),
    Column("customer_id", Text, nullable=False),
    # NULL once the customer is erased (ADR 13).
    Column("customer_name", Text),
    Column("phone", Text),
    Column("plate", Text, nullable=False),
    Column("service_requested", Text, nullable=False),
    Column("work_order_id", Text),
    Column("version", Integer, nullable=False),
    # Null on bookings from before visit types were asked (they count under neither type's cap).
    Column("visit_type", Text),
    Column("confirmation_required", Boolean, nullable=False, server_default=false()),
    Column("confirmed_at", DateTime(timezone=True)),
    Index("ix_appointments_branch_slot", "branch_id", "slot_start"),
    Index("ix_appointments_status_slot", "status", "slot_start"),
)

# The board: one row per work order, its state, since when, and the time spent in every earlier state.
work_orders = Table(
    "work_orders",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("plate", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text),
    Column("advisor_id", Text, nullable=False),
    Column("technician_ids", JSONB, nullable=False),
    Column("appointment_id", Text),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("state_entered_at", DateTime(timezone=True), nullable=False),
    Column("seconds_in_states", JSONB, nullable=False),
    Column("pending_add_ons", Integer, nullable=False),
    Column("total_fen", BigInteger),
    Column("version", Integer, nullable=False),
    # The stages the order is in now, each with its deadline under the order's process definition.
    Column("stages", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Index("ix_work_orders_branch_state", "branch_id", "state"),
)

# What the blob store holds, so files are served with their media type and refused when unknown; one row per
# branch that uploaded the file, whose staff alone may read it (`*`: uploaded before branches were recorded).
media = Table(
    "media",
    metadata,
    Column("content_hash", Text, primary_key=True),
    Column("branch_id", Text, primary_key=True),
    Column("media_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Revoked customer links: a link is signed with its order's generation (0 until the first revocation), and
# revoking moves the generation on, so every link signed before stops working.
customer_links = Table(
    "customer_links",
    metadata,
    Column("work_order_id", Text, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", Text, nullable=False),
)

# The directory: customer-profile's customers and vehicles as far as resolving a phone or plate needs them,
# plus those workorder introduced and customer-profile has not confirmed yet (ADR 11).
directory_customers = Table(
    "directory_customers",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("merged_into", Text),
    Column("erased_at", DateTime(timezone=True)),
)

directory_phones = Table(
    "directory_phones",
    metadata,
    Column("phone", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, index=True),
    Column("known_to_profile", Boolean, nullable=False),
)

directory_vehicles = Table(
    "directory_vehicles",
    metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("plate", Text, nullable=False, index=True),
    Column("owner_customer_id", Text),
    Column("mileage_km", Integer),
    Column("known_to_profile", Boolean, nullable=False),
)


# The booking calendar (migration 0008, ADR 25): who works when, the chain's and branches' booking rules,
# places held while a customer fills in the form or answers a waitlist offer, the waitlists, and no-shows.

# One shift per staff member and local day; `breaks` is a list of {"starts_at", "ends_at"} local times.
staff_shifts = Table(
    "staff_shifts",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("staff_id", Text, primary_key=True),
    Column("starts_at", Time, nullable=False),
    Column("ends_at", Time, nullable=False),
    Column("breaks", JSONB, nullable=False),
)

staff_leave = Table(
    "staff_leave",
    metadata,
    Column("leave_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("staff_id", Text, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_staff_leave_branch_end", "branch_id", "ends_at"),
)

# The rules a scope sets: `*` the chain's defaults, else a branch id (its overrides). Unset fields inherit.
booking_rules = Table(
    "booking_rules",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("rules", JSONB, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A place taken for a while: by a customer filling in the online form, or offered to a waitlisted customer.
# It counts against the slot until it expires (`expires_at`) or becomes the booking (`used`).
slot_holds = Table(
    "slot_holds",
    metadata,
    Column("hold_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=False),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("slot_end", DateTime(timezone=True), nullable=False),
    Column("visit_type", Text, nullable=False),
    Column("service_requested", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("waitlist_entry_id", Text),
    Index("ix_slot_holds_branch_slot", "branch_id", "slot_start"),
)

# Customers waiting for a place in a full slot, first come first offered (`position`).
waitlist_entries = Table(
    "waitlist_entries",
    metadata,
    Column("entry_id", Text, primary_key=True),
    Column("position", BigInteger, Identity(), nullable=False),
    Column("branch_id", Text, nullable=False),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("slot_end", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    # NULL once the customer is erased (ADR 13).
    Column("customer_name", Text),
    Column("phone", Text),
    Column("plate", Text, nullable=False),
    Column("vehicle_id", Text),
    Column("service_requested", Text, nullable=False),
    Column("visit_type", Text, nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Column("hold_id", Text),
    Column("appointment_id", Text),
    Index("ix_waitlist_entries_branch_slot", "branch_id", "slot_start", "position"),
)

# Appointments each customer missed, chain-wide (customers are the chain's), from AppointmentNoShow.
customer_no_shows = Table(
    "customer_no_shows",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("no_shows", Integer, nullable=False),
)


# The process engine (migration 0007, ADR 28): the chain's and branches' process definitions, and what each
# technician can do.

# Every published version of a definition: `scope` chain (branch_id '') or branch; a version never changes.
process_definitions = Table(
    "process_definitions",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("branch_id", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("stages", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("published_by", Text, nullable=False),
)

# The line-item categories a technician can do, for dispatch suggestions.
technician_skills = Table(
    "technician_skills",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("staff_id", Text, primary_key=True),
    Column("skills", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
