"""What the HTTP API answers. Phones pass through `Masking`, so a technician never receives a full number."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from pitlane_events.customer_profile import InsuranceCoverage
from pitlane_events.identifiers import mask_mobile
from pitlane_events.types import LineItem


class Masking:
    """What a role may see of a customer's contact details: technicians get masked phone numbers and no
    WeChat id (they work on the car; the front desk contacts the customer)."""

    def __init__(self, full_contact_details: bool) -> None:
        self.full = full_contact_details

    def phone(self, e164: str | None) -> str | None:
        if e164 is None or self.full:
            return e164
        return mask_mobile(e164)

    def wechat_id(self, wechat_id: str | None) -> str | None:
        return wechat_id if self.full else None


class Phone(BaseModel):
    phone: str
    is_primary: bool


class CustomerDetails(BaseModel):
    customer_id: str
    version: int
    full_name: str
    primary_phone: str
    phones: list[Phone]
    wechat_id: str | None
    gender: str | None
    birthday: date | None
    source: str
    registered_at_branch_id: str | None
    referrer_customer_id: str | None
    membership_tier: str | None
    tags: list[str]
    preferred_services: list[str]
    notes: str | None
    custom_fields: dict[str, str]
    consents: dict[str, bool]
    registered_at: datetime


class Figures(BaseModel):
    visit_count: int
    total_spend_fen: int
    last_service_at: datetime | None
    last_service_mileage_km: int | None
    latest_nps_score: int | None
    latest_nps_comment: str | None
    latest_nps_at: datetime | None


class MileageReading(BaseModel):
    mileage_km: int
    source: str
    recorded_at: datetime
    work_order_id: str | None


class InsurancePolicy(BaseModel):
    insurer: str
    policy_number: str | None
    expires_on: date


class Vehicle(BaseModel):
    vehicle_id: str
    version: int
    owner_customer_id: str | None
    plate: str
    vin: str | None
    brand: str
    model: str
    model_year: int | None
    energy_type: str | None
    purchase_date: date | None
    registration_date: date | None
    mileage_km: int | None
    insurance: dict[InsuranceCoverage, InsurancePolicy]
    visit_count: int
    total_spend_fen: int
    last_service_at: datetime | None
    last_service_mileage_km: int | None
    mileage_history: list[MileageReading] = []


class Visit(BaseModel):
    work_order_id: str
    vehicle_id: str
    plate: str
    branch_id: str
    mileage_km: int
    opened_at: datetime
    completed_at: datetime
    total_fen: int
    paid_fen: int
    line_items: list[LineItem]  # as the WorkOrderCompleted event settled them


class DeclinedAddOn(BaseModel):
    add_on_id: str
    work_order_id: str
    vehicle_id: str
    item: str
    category: str
    price_fen: int
    declined_at: datetime
    reason: str | None


class Reminder(BaseModel):
    reminder_id: str
    vehicle_id: str
    kind: str
    due_on: date | None
    due_mileage_km: int | None
    status: str


class Profile(BaseModel):
    """The 360° view: everything the front desk needs about one customer, in one response."""

    customer: CustomerDetails
    figures: Figures
    vehicles: list[Vehicle]
    visits: list[Visit]
    declined_add_ons: list[DeclinedAddOn]
    reminders: list[Reminder]

    @classmethod
    def of(cls, found: dict[str, Any], masking: Masking) -> Profile:
        row = found["customer"]
        phones = [
            Phone(phone=masking.phone(p["phone"]) or "", is_primary=p["is_primary"]) for p in found["phones"]
        ]
        return cls(
            customer=CustomerDetails.model_validate(
                {
                    **row,
                    "primary_phone": masking.phone(row["primary_phone"]),
                    "wechat_id": masking.wechat_id(row["wechat_id"]),
                    "phones": phones,
                }
            ),
            figures=Figures.model_validate(row),
            vehicles=[Vehicle.model_validate(v) for v in found["vehicles"]],
            visits=[Visit.model_validate(v) for v in found["visits"]],
            declined_add_ons=[DeclinedAddOn.model_validate(a) for a in found["declined_add_ons"]],
            reminders=[Reminder.model_validate(r) for r in found["reminders"]],
        )


class Saved(BaseModel):
    id: str
    version: int


class SearchHit(BaseModel):
    customer_id: str
    full_name: str
    primary_phone: str
    membership_tier: str | None
    tags: list[str]
    plates: list[str]
    visit_count: int
    last_service_at: datetime | None


class SearchPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SearchHit]


class Erasure(BaseModel):
    erasure_request_id: str
    customer_id: str


class ProfileRead(BaseModel):
    read_at: datetime
    reader_user_id: str
    reader_role: str
    customer_id: str
    via: str
