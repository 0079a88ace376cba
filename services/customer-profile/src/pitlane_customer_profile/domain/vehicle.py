"""The vehicle: identity (plate, VIN), what it is, its odometer, insurance and owner. Event-sourced."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pitlane_events import DomainEvent
from pitlane_events.customer_profile import (
    EnergyType,
    InsuranceCoverage,
    MileageSource,
    VehicleInsuranceUpdated,
    VehicleMileageRecorded,
    VehicleOwnerChanged,
    VehicleRegistered,
    VehicleUpdated,
)
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import InvalidInputError

DETAIL_FIELDS = (
    "plate",
    "vin",
    "brand",
    "model",
    "model_year",
    "energy_type",
    "purchase_date",
    "registration_date",
)
# A reading from staff or the customer must not go backwards (a typo would break mileage reminders); a
# reading that comes with a work order is a fact of that visit and is simply not newer when it is lower.
CHECKED_SOURCES = frozenset({MileageSource.STAFF, MileageSource.CUSTOMER_REPORTED, MileageSource.IMPORT})


class MileageOutcome(StrEnum):
    RECORDED = "recorded"
    ALREADY_KNOWN = "already_known"  # the same reading again (a work order's opening, then its completion)
    SET_ASIDE = "set_aside"  # lower than the last reading, with no correction


class Vehicle(Aggregate):
    """Commands take `at`, the command's time (aware, UTC): the time of the events they record."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner_customer_id = ""
        self.plate = ""
        self.vin: str | None = None
        self.brand = ""
        self.model = ""
        self.model_year: int | None = None
        self.energy_type: EnergyType | None = None
        self.purchase_date: date | None = None
        self.registration_date: date | None = None
        self.mileage_km: int | None = None
        self.insurance: dict[InsuranceCoverage, VehicleInsuranceUpdated] = {}

    @classmethod
    def register(
        cls,
        vehicle_id: str,
        *,
        owner_customer_id: str,
        plate: str,
        brand: str,
        model: str,
        vin: str | None = None,
        model_year: int | None = None,
        energy_type: EnergyType | None = None,
        purchase_date: date | None = None,
        registration_date: date | None = None,
        mileage_km: int | None = None,
        at: datetime,
    ) -> Vehicle:
        vehicle = cls(vehicle_id)
        vehicle.record(
            VehicleRegistered(
                vehicle_id=vehicle_id,
                owner_customer_id=owner_customer_id,
                plate=plate,
                vin=vin,
                brand=brand,
                model=model,
                model_year=model_year,
                energy_type=energy_type,
                purchase_date=purchase_date,
                registration_date=registration_date,
                mileage_km=mileage_km,
            ),
            at,
        )
        return vehicle

    def update_details(self, *, at: datetime, **changes: Any) -> None:
        unknown = set(changes) - set(DETAIL_FIELDS)
        if unknown:
            raise ValueError(f"not vehicle details: {sorted(unknown)}")
        for required in ("plate", "brand", "model"):
            if required in changes and not changes[required]:
                raise InvalidInputError(required, "must not be empty")
        changed = [name for name in DETAIL_FIELDS if name in changes and changes[name] != getattr(self, name)]
        if changed:
            self.record(
                VehicleUpdated(
                    vehicle_id=self.id,
                    changed_fields=tuple(changed),
                    **{name: changes[name] for name in changed},
                ),
                at,
            )

    def record_mileage(
        self,
        mileage_km: int,
        *,
        source: MileageSource,
        recorded_at: datetime,
        work_order_id: str | None = None,
        correction: str | None = None,
        at: datetime,
    ) -> MileageOutcome:
        """Record a reading if it moves the odometer forward, or — with a `correction` (why, e.g. the odometer
        was replaced) — back. `recorded_at` is when the reading was taken (a work order's may be earlier);
        `at` is the command's time. A lower reading without a correction is refused from staff, the customer
        or an import, and set aside (not recorded; the caller says so) from a work order."""
        if self.mileage_km is not None and mileage_km < self.mileage_km and correction is None:
            if source in CHECKED_SOURCES:
                raise InvalidInputError(
                    "mileage_km", f"{mileage_km} km is below the last reading of {self.mileage_km} km"
                )
            return MileageOutcome.SET_ASIDE
        if self.mileage_km == mileage_km:
            return MileageOutcome.ALREADY_KNOWN
        self.record(
            VehicleMileageRecorded(
                vehicle_id=self.id,
                mileage_km=mileage_km,
                source=source,
                recorded_at=recorded_at,
                work_order_id=work_order_id,
                correction=correction
                if self.mileage_km is not None and mileage_km < self.mileage_km
                else None,
            ),
            at,
        )
        return MileageOutcome.RECORDED

    def update_insurance(
        self,
        *,
        coverage: InsuranceCoverage,
        insurer: str,
        expires_on: date,
        policy_number: str | None = None,
        at: datetime,
    ) -> None:
        update = VehicleInsuranceUpdated(
            vehicle_id=self.id,
            coverage=coverage,
            insurer=insurer,
            policy_number=policy_number,
            expires_on=expires_on,
        )
        if self.insurance.get(coverage) != update:
            self.record(update, at)

    def change_owner(self, new_owner_customer_id: str, *, at: datetime) -> None:
        if new_owner_customer_id != self.owner_customer_id:
            self.record(
                VehicleOwnerChanged(
                    vehicle_id=self.id,
                    previous_owner_customer_id=self.owner_customer_id,
                    new_owner_customer_id=new_owner_customer_id,
                ),
                at,
            )

    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        match event:
            case VehicleRegistered():
                self.owner_customer_id = event.owner_customer_id
                self.plate = event.plate
                self.vin = event.vin
                self.brand = event.brand
                self.model = event.model
                self.model_year = event.model_year
                self.energy_type = event.energy_type
                self.purchase_date = event.purchase_date
                self.registration_date = event.registration_date
                self.mileage_km = event.mileage_km
            case VehicleUpdated():
                for name in event.changed_fields:
                    setattr(self, name, getattr(event, name))
            case VehicleMileageRecorded():
                self.mileage_km = event.mileage_km
            case VehicleInsuranceUpdated():
                self.insurance[event.coverage] = event
            case VehicleOwnerChanged():
                self.owner_customer_id = event.new_owner_customer_id
