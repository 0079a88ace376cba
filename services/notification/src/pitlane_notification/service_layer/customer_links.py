"""The links a message carries, all signed with the chain's link secret (pitlane_platform.security.links):
the customer's page of a work order (workorder serves it under /c/), of an appointment (confirm or move
it) and of a waitlist offer (take the place held), a booking link whose token attributes
the booking to a campaign or reminder (workorder's public booking accepts it), a reminder's answer page
(reminder serves it under /r/), the NPS survey and the unsubscribe page (notification serves them under
/n/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from pitlane_platform.errors import ForbiddenError
from pitlane_platform.security.links import (
    REMINDER_ANSWER,
    Attribution,
    AttributionKind,
    BookingLink,
    BookingLinkKind,
    CustomerLink,
    claims_of,
    sign_attribution,
    sign_booking_link,
    sign_claims,
    sign_link,
)

UNSUBSCRIBE_USE = "unsubscribe"


@dataclass(frozen=True)
class Unsubscribe:
    customer_id: str
    channel: str  # the channel the link came on; the unsubscribe is honoured on every channel


@dataclass(frozen=True)
class LinkMaker:
    secret: str
    public_base_url: str
    booking_url: str
    customer_link_ttl: timedelta = timedelta(hours=72)
    attribution_ttl: timedelta = timedelta(days=30)
    unsubscribe_ttl: timedelta = timedelta(days=365)

    def work_order_page(self, work_order_id: str, branch_id: str, now: datetime) -> str:
        """The customer's page of the order (progress, photos, add-ons to approve). Signed at generation
        0: links revoked by the branch stop working, and the branch sends a new one by hand."""
        token = sign_link(self.secret, CustomerLink(work_order_id, branch_id, now + self.customer_link_ttl))
        return f"{self.public_base_url}/c/{token}"

    def appointment_page(self, appointment_id: str, branch_id: str, slot_start: datetime) -> str:
        """workorder's page of the appointment, where the customer confirms or moves it; valid until the
        slot begins."""
        link = BookingLink(BookingLinkKind.APPOINTMENT, appointment_id, branch_id, slot_start)
        return f"{self.public_base_url}/c/appointments/{sign_booking_link(self.secret, link)}"

    def waitlist_offer(self, waitlist_entry_id: str, branch_id: str, slot_start: datetime) -> str:
        """workorder's page of a waitlist offer, where the customer takes the place held for them; valid until
        the slot begins (once the hold lapses the page says so)."""
        link = BookingLink(BookingLinkKind.WAITLIST_OFFER, waitlist_entry_id, branch_id, slot_start)
        return f"{self.public_base_url}/c/waitlist/{sign_booking_link(self.secret, link)}"

    def booking(self, kind: AttributionKind, source_id: str, branch_id: str | None, now: datetime) -> str:
        token = sign_attribution(self.secret, Attribution(kind, source_id, now + self.attribution_ttl))
        query = {"attribution": token, **({"branch": branch_id} if branch_id else {})}
        return f"{self.booking_url}?{urlencode(query)}"

    def reminder_answer(self, reminder_id: str, now: datetime) -> str:
        """reminder's page where the customer says the work was done elsewhere, or to be reminded later."""
        expires = int((now + self.attribution_ttl).timestamp())
        token = sign_claims(self.secret, REMINDER_ANSWER, {"r": reminder_id, "exp": expires})
        return f"{self.public_base_url}/r/{token}"

    def unsubscribe(self, customer_id: str, channel: str, now: datetime) -> str:
        expires = int((now + self.unsubscribe_ttl).timestamp())
        token = sign_claims(self.secret, UNSUBSCRIBE_USE, {"c": customer_id, "ch": channel, "exp": expires})
        return f"{self.public_base_url}/n/u/{token}"

    def verify_unsubscribe(self, token: str, now: datetime) -> Unsubscribe:
        claims = claims_of(self.secret, token, UNSUBSCRIBE_USE)
        if claims is None or not isinstance(claims.get("c"), str) or not isinstance(claims.get("exp"), int):
            raise ForbiddenError("this unsubscribe link is not valid")
        if now >= datetime.fromtimestamp(claims["exp"], UTC):
            raise ForbiddenError("this unsubscribe link has expired")
        return Unsubscribe(customer_id=claims["c"], channel=str(claims.get("ch", "sms")))
