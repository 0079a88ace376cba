"""Command handlers: load → check → record → save, inside one unit of work. A stale `expected_version` or a
concurrent writer is a ConcurrencyError (409); nothing is stored unless everything is.

`at` is the command's time from the injected clock, the `occurred_at` of the CommandContext the caller
commits with, so the aggregates record their events at the time their envelopes carry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from pitlane_customer_profile.adapters import profile_queries
from pitlane_customer_profile.adapters.custom_field_store import load_schema
from pitlane_customer_profile.adapters.erasure import forget_customers
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.profile_writer import fold_merged_customers
from pitlane_customer_profile.adapters.tables import customers, erasures, vehicles
from pitlane_customer_profile.domain.customer import ConsentDecision, Customer
from pitlane_customer_profile.domain.vehicle import Vehicle
from pitlane_customer_profile.service_layer.commands import (
    InsuranceInput,
    MergeCustomers,
    RegisterCustomer,
    RegisterVehicle,
    UpdateCustomer,
    UpdateVehicle,
)
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWork
from pitlane_events.customer_profile import ConsentSource, MileageSource
from pitlane_platform.errors import ConcurrencyError, ConflictError, InvalidInputError, NotFoundError


def new_id() -> str:
    return str(uuid.uuid4())


async def register_customer(
    uow: UnitOfWork,
    command: RegisterCustomer,
    *,
    customer_id: str | None = None,
    consent_source: ConsentSource = ConsentSource.REGISTRATION_FORM,
    at: datetime,
) -> Customer:
    for field, phone in [("phone", command.phone), *(("other_phones", p) for p in command.other_phones)]:
        await _phone_is_free(uow, field, phone, customer_id=None)
    if command.referrer_customer_id:
        await _live_customer(uow, command.referrer_customer_id, field="referrer_customer_id")
    schema = await load_schema(uow.session)
    customer = Customer.register(
        customer_id or new_id(),
        full_name=command.full_name,
        phone=command.phone,
        source=command.source,
        gender=command.gender,
        birthday=command.birthday,
        registered_at_branch_id=command.registered_at_branch_id,
        custom_fields=schema.validate(command.custom_fields),
        referrer_customer_id=command.referrer_customer_id,
        preferred_services=command.preferred_services,
        notes=command.notes,
        other_phones=command.other_phones,
        wechat_id=command.wechat_id,
        tags=command.tags,
        membership_tier=command.membership_tier,
        consents=tuple(ConsentDecision(c.channel, c.purpose, c.granted) for c in command.consents),
        consent_source=consent_source,
        at=at,
    )
    uow.add(customer)
    return customer


async def update_customer(
    uow: UnitOfWork, customer_id: str, command: UpdateCustomer, *, at: datetime
) -> Customer:
    # The row locked first, as an erasure and a merge lock it: the later command waits and then meets what the
    # earlier one did (an erased or merged customer is a 404). Without it an erasure racing an update could
    # deadlock with it (row lock against the stream's next version) and answer 500.
    await _lock_customers(uow, [customer_id])
    await _refuse_merged(uow, customer_id)
    customer = await uow.customer(customer_id)
    _check_version(customer.id, command.expected_version, customer.version)
    given = command.model_fields_set
    details: dict[str, Any] = {
        name: getattr(command, name)
        for name in ("full_name", "gender", "birthday", "referrer_customer_id", "preferred_services", "notes")
        if name in given
    }
    if "custom_fields" in given:
        schema = await load_schema(uow.session)
        details["custom_fields"] = schema.validate(command.custom_fields or {})
    if details.get("referrer_customer_id"):
        await _live_customer(uow, details["referrer_customer_id"], field="referrer_customer_id")
    customer.update_details(**details, at=at)
    if command.phone is not None:
        await _phone_is_free(uow, "phone", command.phone, customer_id=customer.id)  # one of theirs is free
        customer.change_primary_phone(command.phone, at=at)
    if command.other_phones is not None:
        for phone in command.other_phones:
            await _phone_is_free(uow, "other_phones", phone, customer_id=customer.id)
        customer.set_other_phones(command.other_phones, at=at)
    if "wechat_id" in given:
        customer.set_wechat_id(command.wechat_id, at=at)
    if command.tags is not None:
        customer.set_tags(command.tags, at=at)
    if "membership_tier" in given:
        customer.change_membership(command.membership_tier, at=at)
    for consent in command.consents or ():
        customer.decide_consent(
            ConsentDecision(consent.channel, consent.purpose, consent.granted), ConsentSource.STAFF, at=at
        )
    return customer


async def register_vehicle(
    uow: UnitOfWork, command: RegisterVehicle, *, vehicle_id: str | None = None, at: datetime
) -> Vehicle:
    await _live_customer(uow, command.owner_customer_id, field="owner_customer_id")
    await _plate_and_vin_are_free(uow, command.plate, command.vin, vehicle_id=None)
    vehicle = Vehicle.register(
        vehicle_id or new_id(),
        owner_customer_id=command.owner_customer_id,
        plate=command.plate,
        brand=command.brand,
        model=command.model,
        vin=command.vin,
        model_year=command.model_year,
        energy_type=command.energy_type,
        purchase_date=command.purchase_date,
        registration_date=command.registration_date,
        mileage_km=command.mileage_km,
        at=at,
    )
    _record_insurance(vehicle, command.insurance, at=at)
    uow.add(vehicle)
    return vehicle


async def update_vehicle(
    uow: UnitOfWork, vehicle_id: str, command: UpdateVehicle, *, at: datetime
) -> Vehicle:
    vehicle = await uow.vehicle(vehicle_id)
    _check_version(vehicle.id, command.expected_version, vehicle.version)
    # A plate or VIN not given is None, which _plate_and_vin_are_free does not look up.
    await _plate_and_vin_are_free(uow, command.plate, command.vin, vehicle_id=vehicle.id)
    given = command.model_fields_set
    vehicle.update_details(
        **{
            name: getattr(command, name)
            for name in (
                "plate",
                "vin",
                "brand",
                "model",
                "model_year",
                "energy_type",
                "purchase_date",
                "registration_date",
            )
            if name in given
        },
        at=at,
    )
    if command.mileage_km is not None:
        vehicle.record_mileage(command.mileage_km, source=MileageSource.STAFF, recorded_at=at, at=at)
    _record_insurance(vehicle, command.insurance or (), at=at)
    if command.owner_customer_id is not None:
        await _live_customer(uow, command.owner_customer_id, field="owner_customer_id")
        vehicle.change_owner(command.owner_customer_id, at=at)
    return vehicle


async def merge_customers(
    uow: UnitOfWork, surviving_id: str, command: MergeCustomers, *, at: datetime
) -> Customer:
    """The duplicates' phones, tags and vehicles move to the survivor; their visits, spend, declined add-ons
    and reminders are re-keyed onto it, so the history follows."""
    # Every customer involved locked first, in id order: of two merges (or a merge and an erasure) sharing a
    # customer, the second waits, then finds it merged or erased and is refused. Without the locks, A into B
    # and B into A at once both succeeded (each only appends to its survivor's stream), and an erasure of the
    # absorbed customer meanwhile let its phones live on under the survivor.
    await _lock_customers(uow, [surviving_id, *command.merged_customer_ids])
    await _refuse_merged(uow, surviving_id)
    survivor = await uow.customer(surviving_id)
    _check_version(survivor.id, command.expected_version, survivor.version)
    duplicates = []
    for merged_id in dict.fromkeys(command.merged_customer_ids):
        await _refuse_merged(uow, merged_id, field="merged_customer_ids")
        duplicates.append(await uow.customer(merged_id))
    survivor.absorb(duplicates, command.reason, at=at)
    await fold_merged_customers(uow.session, survivor.id, [d.id for d in duplicates])
    for duplicate in duplicates:
        owned = (
            await uow.session.execute(
                select(vehicles.c.vehicle_id).where(vehicles.c.owner_customer_id == duplicate.id)
            )
        ).scalars()
        for vehicle_id in owned:
            (await uow.vehicle(vehicle_id)).change_owner(survivor.id, at=at)
    return survivor


def _record_insurance(vehicle: Vehicle, policies: tuple[InsuranceInput, ...], *, at: datetime) -> None:
    for policy in policies:
        vehicle.update_insurance(
            coverage=policy.coverage,
            insurer=policy.insurer,
            expires_on=policy.expires_on,
            policy_number=policy.policy_number,
            at=at,
        )


def _check_version(stream_id: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise ConcurrencyError(stream_id, expected, actual)


async def _phone_is_free(uow: UnitOfWork, field: str, phone: str, *, customer_id: str | None) -> None:
    holder = await profile_queries.customer_id_by_phone(uow.session, phone)
    if holder is not None and holder != customer_id:
        raise ConflictError(f"{field}: {phone} already belongs to customer {holder}")


async def _plate_and_vin_are_free(
    uow: UnitOfWork, plate: str | None, vin: str | None, *, vehicle_id: str | None
) -> None:
    if plate is not None:
        found = await profile_queries.vehicle_by_plate(uow.session, plate)
        if found and found[0] != vehicle_id:
            raise ConflictError(f"plate: {plate} is already registered as vehicle {found[0]}")
    if vin is not None:
        found = await profile_queries.vehicle_by_vin(uow.session, vin)
        if found and found[0] != vehicle_id:
            raise ConflictError(f"vin: {vin} is already registered as vehicle {found[0]}")


async def _lock_customers(uow: UnitOfWork, customer_ids: list[str]) -> None:
    await uow.session.execute(
        select(customers.c.customer_id)
        .where(customers.c.customer_id.in_(sorted(set(customer_ids))))
        .order_by(customers.c.customer_id)
        .with_for_update()
    )


async def _live_customer(uow: UnitOfWork, customer_id: str, *, field: str) -> None:
    # Share-locked until the command commits: a merge or an erasure of this customer (which lock its row for
    # update) waits for the command, or the command for them and then sees what they did. Otherwise a car
    # registered for a customer being merged or erased stayed with the merged or erased record, where no
    # lookup finds it.
    state = (
        (
            await uow.session.execute(
                select(customers.c.erased_at, customers.c.merged_into)
                .where(customers.c.customer_id == customer_id)
                .with_for_update(read=True)
            )
        )
        .mappings()
        .first()
    )
    if state is None or state["erased_at"] is not None:
        raise InvalidInputError(field, f"no customer {customer_id}")
    if state["merged_into"] is not None:
        raise InvalidInputError(field, f"customer {customer_id} was merged into {state['merged_into']}")


async def _refuse_merged(uow: UnitOfWork, customer_id: str, *, field: str | None = None) -> None:
    merged_into = await uow.session.scalar(
        select(customers.c.merged_into).where(customers.c.customer_id == customer_id)
    )
    if merged_into is not None:
        message = f"customer {customer_id} was merged into {merged_into}"
        raise InvalidInputError(field, message) if field else NotFoundError(message)


async def erase_customer(
    uow: UnitOfWork, vault: PiiVault, customer_id: str, *, requested_by: str, at: datetime
) -> str:
    """Erase a customer and the duplicates merged into them; the erasure request's id. The CustomerErased
    event it records names ids only."""
    # The customer's row locked first: of two erasures at once, the second waits, then finds the customer
    # erased (409) instead of colliding with the first's erasure record.
    await uow.session.execute(
        select(customers.c.customer_id).where(customers.c.customer_id == customer_id).with_for_update()
    )
    await _refuse_merged(uow, customer_id)
    customer = await uow.customer(customer_id)
    # Those merged into someone merged into this customer too: without them, erasing the last survivor of
    # two merges left the first duplicate's data key and personal columns in place.
    merged_ids = await profile_queries.absorbed_customers(uow.session, customer_id)
    vehicle_ids = tuple(
        (
            await uow.session.execute(
                select(vehicles.c.vehicle_id)
                .where(vehicles.c.owner_customer_id == customer_id)
                .order_by(vehicles.c.plate)
            )
        ).scalars()
    )
    erasure_request_id = new_id()
    # Before the CustomerErased event is appended: its outbox row must survive the clean-up of the others.
    await forget_customers(uow.session, vault, [customer_id, *merged_ids], at=at)
    await uow.session.execute(
        insert(erasures).values(
            erasure_request_id=erasure_request_id,
            customer_id=customer_id,
            requested_by=requested_by,
            erased_at=at,
        )
    )
    customer.erase(erasure_request_id, vehicle_ids, at=at)
    return erasure_request_id
