"""The HTTP API under /v1. Customers and vehicles are chain-wide: no branch check, roles only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StringConstraints

from pitlane_customer_profile.adapters import profile_queries
from pitlane_customer_profile.adapters.custom_field_store import load_schema, save_schema
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.domain.custom_fields import (
    CustomFieldDefinition,
    CustomFieldSchema,
    CustomFieldType,
)
from pitlane_customer_profile.entrypoints import views
from pitlane_customer_profile.service_layer import handlers, limits
from pitlane_customer_profile.service_layer.commands import (
    MergeCustomers,
    RegisterCustomer,
    RegisterVehicle,
    UpdateCustomer,
    UpdateVehicle,
)
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWorkFactory
from pitlane_events import Actor
from pitlane_events.identifiers import MobileInput, PlateInput, VinInput
from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit
from pitlane_platform.errors import InvalidInputError, NotFoundError
from pitlane_platform.messaging.eventstore import CommandContext

# Who may do what. Analysts work with KPIs, not with people: they get no personal data.
READERS = (Role.OWNER, Role.MANAGER, Role.ADVISOR, Role.TECHNICIAN, Role.FINANCE)
WRITERS = (Role.OWNER, Role.MANAGER, Role.ADVISOR)
IMPORTERS = (Role.OWNER, Role.MANAGER)

Reader = Annotated[Principal, Depends(require_roles(*READERS))]
Writer = Annotated[Principal, Depends(require_roles(*WRITERS))]
Importer = Annotated[Principal, Depends(require_roles(*IMPORTERS))]
Owner = Annotated[Principal, Depends(require_roles(Role.OWNER))]

PageOffset = Annotated[int, Query(ge=0, le=limits.MAX_PAGE_OFFSET, description="rows to skip")]


@dataclass(frozen=True)
class Services:
    chain_id: str
    clock: Clock
    uow: UnitOfWorkFactory
    vault: PiiVault
    driver: DriverPool  # transactions of fixed SQL only: the front desk's lookup

    def context(self, principal: Principal) -> CommandContext:
        """Build it before the handler runs: its `occurred_at` is the handler's `at`."""
        return CommandContext(
            actor=Actor(kind="user", id=principal.user_id, role=principal.role),
            chain_id=self.chain_id,
            occurred_at=self.clock.now(),
        )


class CustomField(BaseModel):
    """A field of the chain's custom-field schema, as stored."""

    key: str
    label: str
    type: CustomFieldType = CustomFieldType.TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 200


class CustomFieldInput(CustomField):
    """A field as an owner defines it: bounded, so the values it allows fit a customer's events."""

    key: Annotated[str, StringConstraints(max_length=limits.CUSTOM_FIELD_KEY_LENGTH)]
    label: Annotated[str, StringConstraints(max_length=limits.CUSTOM_FIELD_LABEL_LENGTH)]
    choices: Annotated[
        tuple[Annotated[str, StringConstraints(max_length=limits.CUSTOM_FIELD_VALUE_LENGTH)], ...],
        Field(max_length=limits.MAX_CUSTOM_FIELD_CHOICES),
    ] = ()
    max_length: Annotated[int, Field(ge=1, le=limits.CUSTOM_FIELD_VALUE_LENGTH)] = 200


CustomFieldSchemaInput = Annotated[list[CustomFieldInput], Field(max_length=limits.MAX_CUSTOM_FIELDS)]


def build_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["customer-profile"])

    async def profile_for(unit: Unit, customer_id: str, principal: Principal, via: str) -> views.Profile:
        found = await profile_queries.profile(unit, customer_id)
        if found is None:
            raise NotFoundError(f"no customer {customer_id}")
        await profile_queries.log_profile_read(
            unit,
            customer_id=customer_id,
            reader_user_id=principal.user_id,
            reader_role=principal.role,
            via=via,
            at=services.clock.now(),
        )
        return views.Profile.of(found, views.Masking(principal.sees_full_phone_numbers))

    @router.post("/customers", status_code=201, summary="Register a customer")
    async def register_customer(command: RegisterCustomer, principal: Writer) -> views.Saved:
        context = services.context(principal)
        async with services.uow() as uow:
            customer = await handlers.register_customer(uow, command, at=context.occurred_at)
            await uow.commit(context)
        return views.Saved(id=customer.id, version=customer.version)

    @router.get("/customers/{customer_id}", summary="A customer's 360° profile (the read is logged)")
    async def get_customer(customer_id: str, principal: Reader) -> views.Profile:
        async with services.uow() as uow:
            return await profile_for(uow.session, customer_id, principal, "id")

    @router.patch("/customers/{customer_id}", summary="Change a customer's details, phones, tags, consent")
    async def update_customer(customer_id: str, command: UpdateCustomer, principal: Writer) -> views.Saved:
        context = services.context(principal)
        async with services.uow() as uow:
            customer = await handlers.update_customer(uow, customer_id, command, at=context.occurred_at)
            await uow.commit(context)
        return views.Saved(id=customer.id, version=customer.version)

    @router.post("/customers/{customer_id}/merge", summary="Fold duplicate customers into this one")
    async def merge_customers(customer_id: str, command: MergeCustomers, principal: Writer) -> views.Saved:
        context = services.context(principal)
        async with services.uow() as uow:
            customer = await handlers.merge_customers(uow, customer_id, command, at=context.occurred_at)
            await uow.commit(context)
        return views.Saved(id=customer.id, version=customer.version)

    @router.post("/customers/{customer_id}/erasure", summary="Erase a customer's personal data (PIPL)")
    async def erase_customer(customer_id: str, principal: Owner) -> views.Erasure:
        context = services.context(principal)
        async with services.uow() as uow:
            request_id = await handlers.erase_customer(
                uow, services.vault, customer_id, requested_by=principal.user_id, at=context.occurred_at
            )
            await uow.commit(context)
        return views.Erasure(erasure_request_id=request_id, customer_id=customer_id)

    @router.get("/customers", summary="Search customers by name, phone prefix, plate fragment or tag")
    async def search_customers(
        principal: Reader,
        name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        phone_prefix: Annotated[str | None, Query(pattern=r"^\+?[0-9]{3,15}$")] = None,
        plate: Annotated[str | None, Query(min_length=2, max_length=10)] = None,
        tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = 20,
        offset: PageOffset = 0,
    ) -> views.SearchPage:
        if not (name or phone_prefix or plate or tag):
            raise InvalidInputError("name", "give a name, phone_prefix, plate or tag to search by")
        if phone_prefix and not principal.sees_full_phone_numbers:
            # Probing digit by digit would reveal the masked numbers.
            raise InvalidInputError("phone_prefix", "searching by phone needs a role that sees full numbers")
        masking = views.Masking(principal.sees_full_phone_numbers)
        async with services.uow() as uow:
            total, rows = await profile_queries.search(
                uow.session,
                name=name,
                phone_prefix=_e164_prefix(phone_prefix) if phone_prefix else None,
                plate_fragment=plate.upper().replace(" ", "") if plate else None,
                tag=tag,
                limit=limit,
                offset=offset,
            )
        return views.SearchPage(
            total=total,
            limit=limit,
            offset=offset,
            items=[
                views.SearchHit.model_validate({**r, "primary_phone": masking.phone(r["primary_phone"])})
                for r in rows
            ],
        )

    @router.get("/lookup", summary="The 360° profile by plate, phone or VIN (the read is logged)")
    async def lookup(
        principal: Reader,
        plate: Annotated[PlateInput | None, Query()] = None,
        phone: Annotated[MobileInput | None, Query()] = None,
        vin: Annotated[VinInput | None, Query()] = None,
    ) -> views.Profile:
        given = [(name, value) for name, value in (("plate", plate), ("phone", phone), ("vin", vin)) if value]
        if len(given) != 1:
            raise InvalidInputError("plate", "give exactly one of plate, phone or vin")
        [(via, value)] = given
        # Fixed SQL only (find, view, log the read): a driver transaction, no ORM session to pay for.
        async with services.driver.transaction() as transaction:
            customer_id: str | None
            if via == "phone":
                customer_id = await profile_queries.customer_id_by_phone(transaction, value)
            else:
                find = profile_queries.vehicle_by_plate if via == "plate" else profile_queries.vehicle_by_vin
                vehicle = await find(transaction, value)
                customer_id = vehicle[1] if vehicle else None
            if customer_id is None:
                raise NotFoundError(f"no customer with {via} {value}")
            return await profile_for(transaction, customer_id, principal, via)

    @router.post("/vehicles", status_code=201, summary="Register a vehicle with its owner")
    async def register_vehicle(command: RegisterVehicle, principal: Writer) -> views.Saved:
        context = services.context(principal)
        async with services.uow() as uow:
            vehicle = await handlers.register_vehicle(uow, command, at=context.occurred_at)
            await uow.commit(context)
        return views.Saved(id=vehicle.id, version=vehicle.version)

    @router.get("/vehicles/{vehicle_id}", summary="A vehicle with its mileage history and insurance")
    async def get_vehicle(vehicle_id: str, principal: Reader) -> views.Vehicle:
        async with services.uow() as uow:
            found = await profile_queries.vehicle_view(uow.session, vehicle_id)
        if found is None:
            raise NotFoundError(f"no vehicle {vehicle_id}")
        return views.Vehicle.model_validate(found)

    @router.patch("/vehicles/{vehicle_id}", summary="Change a vehicle's details, mileage, insurance or owner")
    async def update_vehicle(vehicle_id: str, command: UpdateVehicle, principal: Writer) -> views.Saved:
        context = services.context(principal)
        async with services.uow() as uow:
            vehicle = await handlers.update_vehicle(uow, vehicle_id, command, at=context.occurred_at)
            await uow.commit(context)
        return views.Saved(id=vehicle.id, version=vehicle.version)

    @router.get("/profile-reads", summary="Who read whose full profile, newest first (owners only)")
    async def profile_reads(
        principal: Owner,
        customer_id: str | None = None,
        reader_user_id: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=limits.MAX_PROFILE_READS_PAGE_SIZE)] = 100,
        offset: PageOffset = 0,
    ) -> list[views.ProfileRead]:
        async with services.uow() as uow:
            rows = await profile_queries.profile_reads_page(
                uow.session,
                customer_id=customer_id,
                reader_user_id=reader_user_id,
                since=since,
                limit=limit,
                offset=offset,
            )
        return [views.ProfileRead.model_validate(r) for r in rows]

    @router.get("/custom-fields", summary="The chain's custom-field schema")
    async def get_custom_fields(principal: Reader) -> list[CustomField]:
        async with services.uow() as uow:
            schema = await load_schema(uow.session)
        return [CustomField.model_validate(d, from_attributes=True) for d in schema.fields]

    @router.put("/custom-fields", summary="Replace the chain's custom-field schema (owners only)")
    async def put_custom_fields(fields: CustomFieldSchemaInput, principal: Owner) -> list[CustomFieldInput]:
        schema = CustomFieldSchema(tuple(CustomFieldDefinition(**f.model_dump()) for f in fields))
        async with services.uow() as uow:
            await save_schema(uow.session, schema, at=services.clock.now())
        return fields

    return router


def _e164_prefix(prefix: str) -> str:
    """What staff type (`138`, `+86138`, `86138`) as a prefix of stored E.164 numbers."""
    digits = prefix.removeprefix("+")
    return "+" + (digits if digits.startswith("86") and len(digits) > 2 else "86" + digits)
