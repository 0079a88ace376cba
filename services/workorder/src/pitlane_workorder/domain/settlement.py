"""Settlement arithmetic, in integer fen: every figure on the bill must follow from the lines, or the bill is
refused before anything is stored.

A line charges quantity × unit price, rounded half up to the fen (the chain's rule); the subtotal is the sum of
the lines, the total is the subtotal minus the order's discounts, and the payments must add up to the total.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pitlane_events.types import Discount, LineItem, Payment
from pitlane_platform.errors import InvalidInputError


def line_total_fen(quantity: Decimal, unit_price_fen: int) -> int:
    return int((quantity * unit_price_fen).to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Bill:
    line_items: tuple[LineItem, ...]
    discounts: tuple[Discount, ...]
    payments: tuple[Payment, ...]

    @property
    def subtotal_fen(self) -> int:
        return sum(line.line_total_fen for line in self.line_items)

    @property
    def discount_fen(self) -> int:
        return sum(discount.amount_fen for discount in self.discounts)

    @property
    def total_fen(self) -> int:
        return self.subtotal_fen - self.discount_fen

    @property
    def paid_fen(self) -> int:
        return sum(payment.amount_fen for payment in self.payments)


def checked_bill(
    line_items: Sequence[LineItem],
    discounts: Sequence[Discount],
    payments: Sequence[Payment],
    *,
    stated_total_fen: int,
    approved_add_on_ids: Collection[str],
) -> Bill:
    """The bill, if it adds up; otherwise InvalidInputError naming the first field that does not.

    `stated_total_fen` is the total the counter showed the customer: a bill whose lines say otherwise was
    computed from something else and must not be stored.
    """
    if not line_items:
        raise InvalidInputError("body.line_items", "a settlement needs at least one line")
    for index, line in enumerate(line_items):
        expected = line_total_fen(line.quantity, line.unit_price_fen)
        if line.line_total_fen != expected:
            raise InvalidInputError(
                f"body.line_items.{index}.line_total_fen",
                f"{line.quantity} × {line.unit_price_fen} fen is {expected} fen, not {line.line_total_fen}",
            )
        if line.add_on_id is not None and line.add_on_id not in approved_add_on_ids:
            raise InvalidInputError(
                f"body.line_items.{index}.add_on_id",
                f"add-on {line.add_on_id} was not approved by the customer and cannot be billed",
            )
    bill = Bill(tuple(line_items), tuple(discounts), tuple(payments))
    if bill.discount_fen > bill.subtotal_fen:
        raise InvalidInputError(
            "body.discounts",
            f"discounts of {bill.discount_fen} fen exceed the subtotal of {bill.subtotal_fen} fen",
        )
    if stated_total_fen != bill.total_fen:
        raise InvalidInputError(
            "body.total_fen",
            f"the lines ({bill.subtotal_fen} fen) minus discounts ({bill.discount_fen} fen) come to "
            f"{bill.total_fen} fen, not {stated_total_fen}",
        )
    if bill.paid_fen != bill.total_fen:
        raise InvalidInputError(
            "body.payments", f"payments add up to {bill.paid_fen} fen; the total is {bill.total_fen} fen"
        )
    return bill
