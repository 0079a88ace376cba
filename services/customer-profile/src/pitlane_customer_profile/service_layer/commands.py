"""Commands, as the HTTP layer and the importer receive them: validated at the edge, so a bad plate, VIN or
phone is a 422 naming the field before anything is loaded or stored."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pitlane_events.customer_profile import CustomerSource, EnergyType, Gender, InsuranceCoverage
from pitlane_events.identifiers import MobileInput, PlateInput, VinInput
from pitlane_events.types import Channel, Purpose

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Kilometres = Annotated[int, Field(ge=0, le=2_000_000)]
ModelYear = Annotated[int, Field(ge=1950, le=2100)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentInput(Command):
    channel: Channel
    purpose: Purpose
    granted: bool


class RegisterCustomer(Command):
    full_name: Name
    phone: MobileInput
    other_phones: tuple[MobileInput, ...] = ()
    wechat_id: ShortText | None = None
    gender: Gender = Gender.UNSPECIFIED
    birthday: date | None = None
    source: CustomerSource = CustomerSource.WALK_IN
    registered_at_branch_id: ShortText | None = None
    referrer_customer_id: ShortText | None = None
    membership_tier: Tag | None = None
    tags: tuple[Tag, ...] = ()
    preferred_services: tuple[ShortText, ...] = ()
    notes: LongText | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict)
    consents: tuple[ConsentInput, ...] = ()


class UpdateCustomer(Command):
    """Only the fields present change; `expected_version` (from the last read) guards against lost updates."""

    expected_version: int | None = Field(default=None, ge=1)
    full_name: Name | None = None
    phone: MobileInput | None = None
    other_phones: tuple[MobileInput, ...] | None = None
    wechat_id: ShortText | None = None
    gender: Gender | None = None
    birthday: date | None = None
    referrer_customer_id: ShortText | None = None
    membership_tier: Tag | None = None
    tags: tuple[Tag, ...] | None = None
    preferred_services: tuple[ShortText, ...] | None = None
    notes: LongText | None = None
    custom_fields: dict[str, str] | None = None
    consents: tuple[ConsentInput, ...] | None = None


class InsuranceInput(Command):
    coverage: InsuranceCoverage
    insurer: ShortText
    expires_on: date
    policy_number: Tag | None = None


class RegisterVehicle(Command):
    owner_customer_id: ShortText
    plate: PlateInput
    vin: VinInput | None = None
    brand: ShortText
    model: ShortText
    model_year: ModelYear | None = None
    energy_type: EnergyType | None = None
    purchase_date: date | None = None
    registration_date: date | None = None
    mileage_km: Kilometres | None = None
    insurance: tuple[InsuranceInput, ...] = ()


class UpdateVehicle(Command):
    expected_version: int | None = Field(default=None, ge=1)
    plate: PlateInput | None = None
    vin: VinInput | None = None
    brand: ShortText | None = None
    model: ShortText | None = None
    model_year: ModelYear | None = None
    energy_type: EnergyType | None = None
    purchase_date: date | None = None
    registration_date: date | None = None
    mileage_km: Kilometres | None = None
    insurance: tuple[InsuranceInput, ...] | None = None
    owner_customer_id: ShortText | None = None


class MergeCustomers(Command):
    merged_customer_ids: tuple[ShortText, ...] = Field(min_length=1)
    reason: LongText | None = None
    expected_version: int | None = Field(default=None, ge=1)
