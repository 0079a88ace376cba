"""What customer-profile tells us, kept in the directory (adapters/directory.py): whose phone is whose, which
car has which plate, who was merged into whom, who was erased — so bookings and check-ins resolve to the
chain's one customer and vehicle without calling customer-profile (ADR 11) — and who was erased, whose
personal data then leaves every copy workorder holds (ADR 13). Fixed SQL only: the consumer runs on the
driver."""

from __future__ import annotations

from pitlane_events.customer_profile import (
    ContactKind,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerErased,
    CustomerRegistered,
    CustomersMerged,
    VehicleMileageRecorded,
    VehicleOwnerChanged,
    VehicleRegistered,
    VehicleUpdated,
)
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_platform.messaging.erasure import event_subjects, scrub_event_copies
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime
from pitlane_workorder.adapters import directory, erasure

SERVICE = "workorder"


def build_consumers(runtime: ServiceRuntime) -> list[Consumer]:
    identities = Consumer(
        service=SERVICE, purpose="customer-directory", source_service="customer-profile", on_driver=True
    )

    async def newer(ctx: HandlerContext, read_model: str) -> bool:
        """Each aggregate's events apply once, in order; a copy or a stale event changes nothing."""
        return await advance_read_model(
            ctx.unit, read_model, ctx.envelope.aggregate_id, ctx.envelope.aggregate_version
        )

    @identities.on(CustomerRegistered)
    async def on_registered(ctx: HandlerContext, event: CustomerRegistered) -> None:
        if await newer(ctx, "directory_customers"):
            await directory.add_customer(ctx.unit, event.customer_id, [event.phone], from_profile=True)

    @identities.on(CustomerContactAdded)
    async def on_contact_added(ctx: HandlerContext, event: CustomerContactAdded) -> None:
        if await newer(ctx, "directory_customers") and event.kind is ContactKind.PHONE:
            await directory.add_phone(ctx.unit, event.customer_id, event.value, from_profile=True)

    @identities.on(CustomerContactRemoved)
    async def on_contact_removed(ctx: HandlerContext, event: CustomerContactRemoved) -> None:
        if await newer(ctx, "directory_customers") and event.kind is ContactKind.PHONE:
            await directory.drop_phone(ctx.unit, event.customer_id, event.value)

    @identities.on(CustomersMerged)
    async def on_merged(ctx: HandlerContext, event: CustomersMerged) -> None:
        if await newer(ctx, "directory_customers"):
            await directory.merge(ctx.unit, event.surviving_customer_id, list(event.merged_customer_ids))

    @identities.on(CustomerErased)
    async def on_erased(ctx: HandlerContext, event: CustomerErased) -> None:
        if not await newer(ctx, "directory_customers"):
            return
        if runtime.nats is None:
            raise RuntimeError("not connected to NATS yet")  # retried with back-off
        event_ids = await erasure.forget_customer(ctx.unit, event.customer_id, ctx.envelope.occurred_at)
        # Before the commit: a failed scrub rolls the erasure back and the retry does it all again, so a
        # committed erasure (`directory_customers.erased_at`) means the streams hold no copy either.
        await scrub_event_copies(
            runtime.nats.jetstream(),
            stream=stream_name(SERVICE),
            subjects=event_subjects(erasure.PERSONAL_FIELDS),
            event_ids=event_ids,
        )

    @identities.on(VehicleRegistered)
    async def on_vehicle_registered(ctx: HandlerContext, event: VehicleRegistered) -> None:
        if await newer(ctx, "directory_vehicles"):
            await directory.add_vehicle(
                ctx.unit,
                event.vehicle_id,
                event.plate,
                event.owner_customer_id,
                mileage_km=event.mileage_km,
                from_profile=True,
            )

    @identities.on(VehicleMileageRecorded)
    async def on_mileage(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        if await newer(ctx, "directory_vehicles"):
            await directory.record_reading(ctx.unit, event.vehicle_id, event.mileage_km)

    @identities.on(VehicleUpdated)
    async def on_vehicle_updated(ctx: HandlerContext, event: VehicleUpdated) -> None:
        if await newer(ctx, "directory_vehicles") and event.plate is not None:
            await directory.replate(ctx.unit, event.vehicle_id, event.plate)

    @identities.on(VehicleOwnerChanged)
    async def on_owner_changed(ctx: HandlerContext, event: VehicleOwnerChanged) -> None:
        if await newer(ctx, "directory_vehicles"):
            await directory.change_owner(ctx.unit, event.vehicle_id, event.new_owner_customer_id)

    return [identities]
