"""Commands, as the HTTP layer and the importer receive them: validated at the edge, so a bad plate, VIN or
phone is a 422 naming the field before anything is loaded or stored. Collections and texts are bounded
(service_layer/limits.py), so no command is too big for the events it becomes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pitlane_customer_profile.service_layer import limits
from pitlane_events.customer_profile import CustomerSource, EnergyType, Gender, InsuranceCoverage
from pitlane_events.identifiers import MobileInput, PlateInput, VinInput
from pitlane_events.inputs import NOT_A_BOOLEAN, DateInput
from pitlane_events.types import Channel, Purpose


def _text(max_length: int) -> StringConstraints:
    # Called at import only, before mutmut can switch a mutant of it on: its mutants could never run.
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)  # pragma: no mutate


EntityId = Annotated[str, _text(limits.ID_LENGTH)]
Name = Annotated[str, _text(limits.NAME_LENGTH)]
Tag = Annotated[str, _text(limits.TAG_LENGTH)]
ShortText = Annotated[str, _text(limits.SHORT_TEXT_LENGTH)]
LongText = Annotated[str, _text(limits.LONG_TEXT_LENGTH)]
ServiceName = Annotated[str, _text(limits.PREFERRED_SERVICE_LENGTH)]
Kilometres = Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=2_000_000)]
ModelYear = Annotated[int, NOT_A_BOOLEAN, Field(ge=1950, le=2100)]

OtherPhones = Annotated[tuple[MobileInput, ...], Field(max_length=limits.MAX_OTHER_PHONES)]
Tags = Annotated[tuple[Tag, ...], Field(max_length=limits.MAX_TAGS)]
PreferredServices = Annotated[tuple[ServiceName, ...], Field(max_length=limits.MAX_PREFERRED_SERVICES)]
# Not stripped, and blanks allowed: the chain's schema trims each value and says which may not be blank.
CustomFields = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=limits.CUSTOM_FIELD_KEY_LENGTH)],
        Annotated[str, StringConstraints(max_length=limits.CUSTOM_FIELD_VALUE_LENGTH)],
    ],
    Field(max_length=limits.MAX_CUSTOM_FIELDS),
]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentInput(Command):
    channel: Channel
    purpose: Purpose
    granted: bool


Consents = Annotated[tuple[ConsentInput, ...], Field(max_length=limits.MAX_CONSENTS)]


class RegisterCustomer(Command):
    full_name: Name
    phone: MobileInput
    other_phones: OtherPhones = ()
    wechat_id: ShortText | None = None
    gender: Gender = Gender.UNSPECIFIED
    birthday: DateInput | None = None
    source: CustomerSource = CustomerSource.WALK_IN
    registered_at_branch_id: EntityId | None = None
    referrer_customer_id: EntityId | None = None
    membership_tier: Tag | None = None
    tags: Tags = ()
    preferred_services: PreferredServices = ()
    notes: LongText | None = None
    custom_fields: CustomFields = Field(default_factory=dict)
    consents: Consents = ()


class UpdateCustomer(Command):
    """Only the fields present change; `expected_version` (from the last read) guards against lost updates."""

    expected_version: Annotated[int, NOT_A_BOOLEAN] | None = Field(default=None, ge=1, le=2**31 - 1)
    full_name: Name | None = None
    phone: MobileInput | None = None
    other_phones: OtherPhones | None = None
    wechat_id: ShortText | None = None
    gender: Gender | None = None
    birthday: DateInput | None = None
    referrer_customer_id: EntityId | None = None
    membership_tier: Tag | None = None
    tags: Tags | None = None
    preferred_services: PreferredServices | None = None
    notes: LongText | None = None
    custom_fields: CustomFields | None = None
    consents: Consents | None = None


class InsuranceInput(Command):
    coverage: InsuranceCoverage
    insurer: ShortText
    expires_on: DateInput
    policy_number: Tag | None = None


Policies = Annotated[tuple[InsuranceInput, ...], Field(max_length=limits.MAX_INSURANCE_POLICIES)]


class RegisterVehicle(Command):
    owner_customer_id: EntityId
    plate: PlateInput
    vin: VinInput | None = None
    brand: ShortText
    model: ShortText
    model_year: ModelYear | None = None
    energy_type: EnergyType | None = None
    purchase_date: DateInput | None = None
    registration_date: DateInput | None = None
    mileage_km: Kilometres | None = None
    insurance: Policies = ()


class UpdateVehicle(Command):
    expected_version: Annotated[int, NOT_A_BOOLEAN] | None = Field(default=None, ge=1, le=2**31 - 1)
    plate: PlateInput | None = None
    vin: VinInput | None = None
    brand: ShortText | None = None
    model: ShortText | None = None
    model_year: ModelYear | None = None
    energy_type: EnergyType | None = None
    purchase_date: DateInput | None = None
    registration_date: DateInput | None = None
    mileage_km: Kilometres | None = None
    insurance: Policies | None = None
    owner_customer_id: EntityId | None = None


class MergeCustomers(Command):
    merged_customer_ids: tuple[EntityId, ...] = Field(min_length=1, max_length=limits.MAX_MERGED_CUSTOMERS)
    reason: LongText | None = None
    expected_version: Annotated[int, NOT_A_BOOLEAN] | None = Field(default=None, ge=1, le=2**31 - 1)
