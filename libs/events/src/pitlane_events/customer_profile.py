"""Events published by customer-profile: customers, vehicles, consent and tags, and the alert that a user
went over the limit on lookups or searches.

Customers and vehicles are chain-wide aggregates: their envelopes carry no branch_id.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from pitlane_events.model import DomainEvent, event
from pitlane_events.types import Channel, Code, Id, Kilometres, NonBlank, Phone, Plate, Purpose, Vin


class CustomerSource(StrEnum):
    """How a customer first came to the chain."""

    WALK_IN = "walk_in"
    ONLINE_BOOKING = "online_booking"
    PHONE = "phone"
    REFERRAL = "referral"
    IMPORT = "import"


class Gender(StrEnum):
    """Gender as the customer gave it."""

    FEMALE = "female"
    MALE = "male"
    UNSPECIFIED = "unspecified"


class ContactKind(StrEnum):
    """A kind of contact detail a customer can have several of."""

    PHONE = "phone"
    WECHAT = "wechat"
    EMAIL = "email"


class ConsentSource(StrEnum):
    """Where a consent decision was captured."""

    REGISTRATION_FORM = "registration_form"
    SIGNED_LINK = "signed_link"
    SMS_REPLY = "sms_reply"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    STAFF = "staff"
    IMPORT = "import"


class MileageSource(StrEnum):
    """Who or what reported a mileage reading."""

    CHECK_IN = "check_in"
    WORK_ORDER = "work_order"
    CUSTOMER_REPORTED = "customer_reported"
    STAFF = "staff"
    IMPORT = "import"


class EnergyType(StrEnum):
    """What powers the vehicle; new-energy plates (绿牌) are electric or plug-in hybrid."""

    PETROL = "petrol"
    DIESEL = "diesel"
    HYBRID = "hybrid"
    PLUG_IN_HYBRID = "plug_in_hybrid"
    ELECTRIC = "electric"


class InsuranceCoverage(StrEnum):
    """Compulsory traffic insurance (交强险) or commercial insurance (商业险)."""

    COMPULSORY = "compulsory"
    COMMERCIAL = "commercial"


ModelYear = Annotated[int, Field(ge=1950, le=2100)]

CustomerField = Literal[
    "full_name", "gender", "birthday", "custom_fields", "referrer_customer_id", "preferred_services", "notes"
]
VehicleField = Literal[
    "plate", "vin", "brand", "model", "model_year", "energy_type", "purchase_date", "registration_date"
]


@event("customer-profile.CustomerRegistered", 1)
class CustomerRegistered(DomainEvent):
    """A new customer was registered chain-wide (at a branch, online or by import)."""

    customer_id: Id
    """The customer's chain-wide id."""
    full_name: NonBlank
    """Full name, e.g. 王建国."""
    phone: Phone
    """Primary mobile phone; the main lookup key at the front desk."""
    gender: Gender = Gender.UNSPECIFIED
    """Gender as given."""
    birthday: date | None = None
    """Birthday, for greetings if the customer consents to marketing."""
    source: CustomerSource
    """How the customer came to the chain."""
    registered_at_branch_id: Id | None = None
    """The branch that registered the customer; null for online or imported customers."""
    custom_fields: dict[Code, NonBlank] = Field(default_factory=dict)
    """Chain-defined extra fields (key → value)."""
    referrer_customer_id: Id | None = None
    """The customer who referred this one, if any (source referral)."""
    preferred_services: tuple[NonBlank, ...] = ()
    """Services the customer prefers or usually asks for, e.g. 小保养, 精洗."""
    notes: NonBlank | None = None
    """Staff notes about the customer."""


@event("customer-profile.CustomerUpdated", 1)
class CustomerUpdated(DomainEvent):
    """Some of a customer's personal details changed."""

    customer_id: Id
    """The customer's id."""
    changed_fields: Annotated[tuple[CustomerField, ...], Field(min_length=1)]
    """Which fields changed; a listed field that is null here was cleared."""
    full_name: NonBlank | None = None
    """New full name, if changed."""
    gender: Gender | None = None
    """New gender, if changed."""
    birthday: date | None = None
    """New birthday, if changed."""
    custom_fields: dict[Code, NonBlank] | None = None
    """The complete new set of custom fields, if any changed."""
    referrer_customer_id: Id | None = None
    """New referrer, if changed."""
    preferred_services: tuple[NonBlank, ...] | None = None
    """The complete new list of preferred services, if changed."""
    notes: NonBlank | None = None
    """New staff notes, if changed."""


@event("customer-profile.CustomerContactAdded", 1)
class CustomerContactAdded(DomainEvent):
    """A phone number, WeChat id or e-mail address was added to a customer."""

    customer_id: Id
    """The customer's id."""
    kind: ContactKind
    """What kind of contact."""
    value: NonBlank
    """The contact (E.164 phone, WeChat openid or e-mail address)."""
    is_primary: bool
    """Whether it is now the customer's primary contact of this kind."""


@event("customer-profile.CustomerContactRemoved", 1)
class CustomerContactRemoved(DomainEvent):
    """A phone number, WeChat id or e-mail address was removed from a customer."""

    customer_id: Id
    """The customer's id."""
    kind: ContactKind
    """What kind of contact."""
    value: NonBlank
    """The contact that was removed."""


@event("customer-profile.CustomerTagged", 1)
class CustomerTagged(DomainEvent):
    """A tag was put on a customer (e.g. VIP, 车队客户)."""

    customer_id: Id
    """The customer's id."""
    tag: Code
    """The tag."""


@event("customer-profile.CustomerUntagged", 1)
class CustomerUntagged(DomainEvent):
    """A tag was taken off a customer."""

    customer_id: Id
    """The customer's id."""
    tag: Code
    """The tag."""


@event("customer-profile.CustomerMembershipChanged", 1)
class CustomerMembershipChanged(DomainEvent):
    """A customer joined, changed or left a membership tier."""

    customer_id: Id
    """The customer's id."""
    previous_tier: Code | None
    """Tier before the change; null if the customer was not a member."""
    tier: Code | None
    """Tier after the change; null if the membership ended."""
    valid_until: date | None = None
    """Last day the membership is valid, if it expires."""
    reason: NonBlank | None = None
    """Why it changed (purchase, upgrade by spend, expiry...)."""


@event("customer-profile.CustomersMerged", 1)
class CustomersMerged(DomainEvent):
    """Duplicate customer records were merged into one; the merged ids no longer exist on their own.

    Consumers re-key what they hold for the merged ids onto the surviving id.
    """

    surviving_customer_id: Id
    """The customer record that remains."""
    merged_customer_ids: Annotated[tuple[Id, ...], Field(min_length=1)]
    """The records folded into it."""
    reason: NonBlank | None = None
    """Why they were merged, e.g. same phone number."""


@event("customer-profile.CustomerErased", 1)
class CustomerErased(DomainEvent):
    """A customer's personal data was erased on request (PIPL). Carries ids only, never personal data.

    Every consumer must delete or anonymise what it holds about these ids.
    """

    customer_id: Id
    """The erased customer's id."""
    vehicle_ids: tuple[Id, ...] = ()
    """Vehicles whose link to the customer was erased with it."""
    erasure_request_id: Id
    """The erasure request this fulfils, for the audit trail."""


@event("customer-profile.ConsentChanged", 1)
class ConsentChanged(DomainEvent):
    """A customer granted or withdrew consent to be contacted on one channel for one purpose."""

    customer_id: Id
    """The customer's id."""
    channel: Channel
    """The channel the consent is about."""
    purpose: Purpose
    """Service messages (reminders, progress) or marketing."""
    granted: bool
    """True if granted, false if withdrawn."""
    source: ConsentSource
    """Where the decision was captured."""


@event("customer-profile.VehicleRegistered", 1)
class VehicleRegistered(DomainEvent):
    """A vehicle was registered with its owner."""

    vehicle_id: Id
    """The vehicle's chain-wide id."""
    owner_customer_id: Id
    """The customer who owns it."""
    plate: Plate
    """Normalised plate, e.g. 沪A12345 or 粤BD12345."""
    vin: Vin | None = None
    """VIN, if known."""
    brand: NonBlank
    """Make, e.g. 大众."""
    model: NonBlank
    """Model, e.g. 帕萨特."""
    model_year: ModelYear | None = None
    """Model year."""
    energy_type: EnergyType | None = None
    """What powers it, if known."""
    purchase_date: date | None = None
    """When the owner bought it."""
    registration_date: date | None = None
    """First registration (上牌) date; drives inspection reminders."""
    mileage_km: Kilometres | None = None
    """Odometer reading at registration, in km."""


@event("customer-profile.VehicleUpdated", 1)
class VehicleUpdated(DomainEvent):
    """Some of a vehicle's details changed (owner, mileage and insurance have their own events)."""

    vehicle_id: Id
    """The vehicle's id."""
    changed_fields: Annotated[tuple[VehicleField, ...], Field(min_length=1)]
    """Which fields changed; a listed field that is null here was cleared."""
    plate: Plate | None = None
    """New plate, if changed."""
    vin: Vin | None = None
    """New VIN, if changed."""
    brand: NonBlank | None = None
    """New make, if changed."""
    model: NonBlank | None = None
    """New model, if changed."""
    model_year: ModelYear | None = None
    """New model year, if changed."""
    energy_type: EnergyType | None = None
    """New energy type, if changed."""
    purchase_date: date | None = None
    """New purchase date, if changed."""
    registration_date: date | None = None
    """New first-registration date, if changed."""


@event("customer-profile.VehicleOwnerChanged", 1)
class VehicleOwnerChanged(DomainEvent):
    """A vehicle changed hands (sold, or moved to a family member's record)."""

    vehicle_id: Id
    """The vehicle's id."""
    previous_owner_customer_id: Id
    """Who owned it before."""
    new_owner_customer_id: Id
    """Who owns it now."""


@event("customer-profile.VehicleMileageRecorded", 1)
class VehicleMileageRecorded(DomainEvent):
    """An odometer reading was recorded for a vehicle."""

    vehicle_id: Id
    """The vehicle's id."""
    mileage_km: Kilometres
    """Odometer reading, in km."""
    source: MileageSource
    """Who or what reported it."""
    recorded_at: AwareDatetime
    """When the reading was taken."""
    work_order_id: Id | None = None
    """The work order the reading came from, if any."""
    correction: NonBlank | None = None
    """Set when the reading replaces a higher one (e.g. the odometer was replaced): why."""


@event("customer-profile.VehicleInsuranceUpdated", 1)
class VehicleInsuranceUpdated(DomainEvent):
    """A vehicle's insurance policy was recorded or renewed."""

    vehicle_id: Id
    """The vehicle's id."""
    coverage: InsuranceCoverage
    """Compulsory (交强险) or commercial (商业险)."""
    insurer: NonBlank
    """Insurance company, e.g. 中国平安."""
    policy_number: Code | None = None
    """Policy number, if known."""
    expires_on: date
    """Last day of cover; drives renewal reminders."""


@event("customer-profile.LookupLimitReached", 1)
class LookupLimitReached(DomainEvent):
    """A user went over the per-user limit on lookups or searches: someone may be harvesting customers'
    data. Published at most once per window per user and route; refusals go on in between. Carries no
    query values (they are phones and plates). Each alert is an aggregate of its own (a new id, version 1):
    alerts are facts side by side, not a stream.
    """

    user_id: Id
    """The token's user id."""
    role: Code
    """The token's role."""
    method: Code
    """The HTTP method of the refused requests, e.g. GET."""
    route: NonBlank
    """The route template, e.g. /v1/lookup."""
    limit: NonBlank
    """The limit that was reached, e.g. `30 per 1 minute`."""
    window_s: Annotated[int, Field(gt=0)]
    """The limit's window, in seconds: the next alert for this user and route comes a window later at the
    earliest."""
