"""One customer and one car across services (ADR 11): a booking or check-in resolves its phone and plate to
the ids customer-profile knows, through workorder's directory. A customer or vehicle nobody knows yet gets a
new id, and an introduction event (CustomerIntroduced, VehicleIntroduced) by which customer-profile adopts
it; the directory learns the new pairing at once, so the next booking with that phone or plate finds it
even before customer-profile has answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pitlane_events import DomainEvent
from pitlane_events.workorder import BookingChannel, CustomerIntroduced, VehicleIntroduced
from pitlane_platform.db import Unit
from pitlane_platform.errors import InvalidInputError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_workorder.adapters import directory, queries


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Visitor:
    """What a booking or check-in says about who is coming and in which car."""

    channel: BookingChannel
    customer_id: str | None = None
    full_name: str | None = None
    phone: str | None = None
    vehicle_id: str | None = None
    plate: str | None = None
    brand: str | None = None
    model: str | None = None
    vin: str | None = None


@dataclass
class Resolution:
    """The ids to put on the appointment or work order, and the introductions to publish with it."""

    customer_id: str
    vehicle_id: str | None
    introductions: list[DomainEvent] = field(default_factory=list)

    async def publish(self, unit: Unit, context: CommandContext) -> None:
        """Append each introduction on its own stream (the new id's) and record it in the directory."""
        for introduction in self.introductions:
            if isinstance(introduction, CustomerIntroduced):
                stream_id = introduction.customer_id
                await directory.add_customer(
                    unit, introduction.customer_id, [introduction.phone], from_profile=False
                )
            else:
                assert isinstance(introduction, VehicleIntroduced)
                stream_id = introduction.vehicle_id
                await directory.add_vehicle(
                    unit,
                    introduction.vehicle_id,
                    introduction.plate,
                    introduction.owner_customer_id,
                    from_profile=False,
                )
            await eventstore.append(unit, stream_id, 0, [introduction], context)


async def resolve(unit: Unit, visitor: Visitor, *, vehicle_required: bool) -> Resolution:
    """Who and which car: an explicit id (followed through merges), else the car's known owner or the phone's
    customer, else someone new — who must then have given a phone and a name. A car nobody knows gets an id
    when its make and model are given; a check-in (`vehicle_required`) cannot go on without one."""
    known_vehicle = (
        await directory.vehicle_by_plate(unit, visitor.plate)
        if visitor.vehicle_id is None and visitor.plate
        else None
    )
    customer_id, introduction = await _customer(
        unit, visitor, owner=known_vehicle[1] if known_vehicle else None
    )
    resolution = Resolution(customer_id, visitor.vehicle_id, [introduction] if introduction else [])
    if resolution.vehicle_id is None and known_vehicle is not None:
        resolution.vehicle_id = known_vehicle[0]
    if resolution.vehicle_id is None and visitor.plate and visitor.brand and visitor.model:
        resolution.vehicle_id = new_id()
        resolution.introductions.append(
            VehicleIntroduced(
                vehicle_id=resolution.vehicle_id,
                owner_customer_id=customer_id,
                plate=visitor.plate,
                brand=visitor.brand,
                model=visitor.model,
                vin=visitor.vin,
            )
        )
    if resolution.vehicle_id is None and vehicle_required:
        if not visitor.plate:
            raise InvalidInputError("body.plate", "is required to check a car in")
        missing = "body.brand" if not visitor.brand else "body.model"
        raise InvalidInputError(
            missing, f"the chain does not know {visitor.plate} yet: give its make and model"
        )
    return resolution


async def _customer(
    unit: Unit, visitor: Visitor, *, owner: str | None
) -> tuple[str, CustomerIntroduced | None]:
    if visitor.customer_id:
        return await directory.surviving_customer(unit, visitor.customer_id), None
    if visitor.phone:
        known = await directory.customer_by_phone(unit, visitor.phone)
        if known is None:
            # Booked before the directory existed, or introduced and not yet adopted: same person, same id.
            earlier = await queries.known_customer(unit, visitor.phone)
            known = await directory.surviving_customer(unit, earlier) if earlier else None
        if known is not None:
            return known, None
    if owner is not None and not visitor.phone:
        return owner, None
    if visitor.phone and visitor.full_name:
        introduced = CustomerIntroduced(
            customer_id=new_id(),
            full_name=visitor.full_name,
            phone=visitor.phone,
            met_through=visitor.channel,
        )
        return introduced.customer_id, introduced
    if visitor.phone:
        raise InvalidInputError(
            "body.customer_name", "is required for a customer the chain does not know yet"
        )
    raise InvalidInputError("body.phone", "is required for a customer the chain does not know yet")
