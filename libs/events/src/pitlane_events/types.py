"""Value types shared by the events of several services.

Every event module uses these, so a plate, an amount of money or a line item means the same thing on every
stream. Money is integer fen (分), never a float; ids are strings; times are timezone-aware.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
"""An entity id (a UUID string for entities Pitlane creates)."""

Fen = Annotated[int, Field(ge=0)]
"""An amount of money in integer fen (1 yuan = 100 fen); never negative, never a float."""

PositiveFen = Annotated[int, Field(gt=0)]

Kilometres = Annotated[int, Field(ge=0, le=2_000_000)]

Plate = Annotated[str, StringConstraints(pattern=r"^[\u4e00-\u9fff][A-Z][A-Z0-9]{4,5}[A-Z0-9\u4e00-\u9fff]$")]
"""A mainland licence plate, normalised: upper case, no spaces or separators (沪A12345, 粤BD12345)."""

Vin = Annotated[str, StringConstraints(pattern=r"^[A-HJ-NPR-Z0-9]{17}$")]
"""A 17-character vehicle identification number (no I, O or Q)."""

ContentHash = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
"""`sha256:<hex>` of a stored file's bytes; the media store is addressed by it."""

Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
"""A phone number in E.164 form, e.g. +8613812345678."""

LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$",
        }
    ),
]
"""A time of day on a branch's wall clock, as pydantic writes it: `HH:MM:SS`, a fraction and an offset only if
one was given. Not JSON Schema's `time` format: that is RFC 3339's full-time, which requires an offset, so a
validator asserting formats refused every opening hour ever published (ADR 23)."""

NonBlank = Annotated[str, StringConstraints(min_length=1, max_length=2000)]

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]

MAX_IDS_PER_BATCH = 1_000
"""Most customer ids one event carries. Lists of customers (a campaign's audience, a saved segment) travel in
batches of at most this many: 1,000 ids of at most 64 characters are under 70 KB, far below NATS's 1 MiB
max payload, however large the list."""

IdBatch = Annotated[tuple[Id, ...], Field(max_length=MAX_IDS_PER_BATCH)]
"""One batch of a list of ids (at most MAX_IDS_PER_BATCH)."""


def in_batches(ids: Sequence[str], size: int = MAX_IDS_PER_BATCH) -> list[tuple[str, ...]]:
    """`ids` cut into consecutive batches of at most `size`, in order; always at least one batch, so that an
    empty list is published too (its reader learns it is complete and empty)."""
    return [tuple(ids[start : start + size]) for start in range(0, len(ids), size)] or [()]


class ValueObject(BaseModel):
    """Base of the sub-models events carry: frozen, tolerant of fields added later, documented."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)


class Channel(StrEnum):
    """A channel Pitlane can reach a customer through."""

    SMS = "sms"
    WECHAT = "wechat"
    PHONE = "phone"
    EMAIL = "email"


class Purpose(StrEnum):
    """Why Pitlane contacts a customer; consent is given per channel and purpose."""

    SERVICE = "service"
    MARKETING = "marketing"


class StaffRole(StrEnum):
    """A branch staff member's role."""

    ADVISOR = "advisor"
    TECHNICIAN = "technician"
    MANAGER = "manager"


class LineCategory(StrEnum):
    """What a settled line is: labour (工时), parts (配件), consumables, a package, sublet work, or other."""

    LABOUR = "labour"
    PARTS = "parts"
    CONSUMABLES = "consumables"
    PACKAGE = "package"
    SUBLET = "sublet"
    OTHER = "other"


class PaymentMethod(StrEnum):
    """How a payment was made."""

    CASH = "cash"
    WECHAT_PAY = "wechat_pay"
    ALIPAY = "alipay"
    BANK_CARD = "bank_card"
    STORED_VALUE = "stored_value"
    INSURANCE_CLAIM = "insurance_claim"


class DiscountKind(StrEnum):
    """Where a discount came from."""

    COUPON = "coupon"
    CAMPAIGN = "campaign"
    MEMBERSHIP = "membership"
    MANUAL = "manual"


class InspectionStatus(StrEnum):
    """Result of one check-in inspection point: fine, needs attention soon, or urgent."""

    OK = "ok"
    ATTENTION = "attention"
    URGENT = "urgent"


class AddOnDecision(StrEnum):
    """The customer's answer to a proposed add-on."""

    APPROVED = "approved"
    DECLINED = "declined"


class Attachment(ValueObject):
    """A photo, video or document stored by content hash."""

    content_hash: ContentHash
    """Hash of the file's bytes; the key in the media store."""
    media_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z0-9.+-]+$")]
    """IANA media type, e.g. image/jpeg or video/mp4."""
    size_bytes: Annotated[int, Field(gt=0)]
    """File size in bytes."""


class LineItem(ValueObject):
    """One settled line of a work order."""

    item_code: Code
    """The chain's catalogue code of the service or part."""
    name: NonBlank
    """Name as printed on the invoice, e.g. 更换机油机滤."""
    category: LineCategory
    """Kind of line; drives the popular-services KPI."""
    quantity: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3)]
    """Quantity in the item's unit (pieces, litres, labour hours); a decimal string such as "4.5"."""
    unit_price_fen: Fen
    """Price per unit before discounts, in fen."""
    cost_fen: Fen | None = None
    """The chain's cost of the whole line in fen, when known; lets analytics compute gross margin."""
    line_total_fen: Fen
    """What the line charges before order-level discounts, in fen (rounded by the chain's rule)."""
    add_on_id: Id | None = None
    """The approved add-on this line came from, if any."""


class Discount(ValueObject):
    """A reduction applied to a work order's total."""

    kind: DiscountKind
    """Where the discount came from."""
    amount_fen: PositiveFen
    """Amount taken off, in fen."""
    coupon_code: Code | None = None
    """The redeemed coupon, for coupon discounts."""
    campaign_id: Id | None = None
    """The campaign that funded the discount, if any; used for campaign ROI."""
    description: NonBlank | None = None
    """Why the discount was given, as shown to the customer."""


class Payment(ValueObject):
    """Money received for a work order."""

    method: PaymentMethod
    """How it was paid."""
    amount_fen: PositiveFen
    """Amount received, in fen."""
    paid_at: AwareDatetime
    """When the payment was taken."""
    reference: Code | None = None
    """The payment provider's transaction id, if any."""


class InspectionItem(ValueObject):
    """One point of the check-in inspection (环车检查)."""

    item: NonBlank
    """What was inspected, e.g. 左前轮胎."""
    status: InspectionStatus
    """What the advisor found."""
    note: NonBlank | None = None
    """Free-text remark."""
    photo_hashes: tuple[ContentHash, ...] = ()
    """Photos of this point."""


class AddOnSummary(ValueObject):
    """An add-on proposed during a work order and what the customer decided."""

    add_on_id: Id
    """The add-on's id, as in AddOnProposed."""
    item: NonBlank
    """What was proposed."""
    category: LineCategory
    """Kind of work proposed."""
    price_fen: Fen
    """Quoted price, in fen."""
    decision: AddOnDecision
    """Approved or declined."""


class OpeningHours(ValueObject):
    """When a branch is open on one day of the week (in the branch's time zone)."""

    weekday: Annotated[int, Field(ge=1, le=7)]
    """ISO weekday: 1 = Monday … 7 = Sunday."""
    opens_at: LocalTime
    """Local opening time, `HH:MM:SS` on the branch's clock."""
    closes_at: LocalTime
    """Local closing time, `HH:MM:SS` on the branch's clock; after opens_at."""

    @model_validator(mode="after")
    def _closes_after_opening(self) -> OpeningHours:
        # The branch's wall clock, whose zone the branch names: an offset means nothing here (and an aware
        # time cannot be compared with a naive one).
        if self.opens_at.tzinfo is not None or self.closes_at.tzinfo is not None:
            raise ValueError("opening hours are times on the branch's clock, without an offset")
        if self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        return self


class Bay(ValueObject):
    """A workshop bay (工位) that takes one vehicle at a time."""

    bay_id: Id
    """The bay's id within the branch."""
    name: NonBlank
    """Name shown on the dispatch board, e.g. 2号工位."""
    has_lift: bool = True
    """Whether the bay has a lift."""


class TimeSlot(ValueObject):
    """A half-open period [start, end) of an appointment."""

    start: AwareDatetime
    """Start of the slot."""
    end: AwareDatetime
    """End of the slot; after start."""

    @model_validator(mode="after")
    def _ends_after_start(self) -> TimeSlot:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self
