"""Signed tokens: the customer's links to a work order's page (the only way a customer acts on Pitlane), the
attribution tokens a campaign's or reminder's booking link carries, and the tokens of the other links a
customer is sent (an NPS survey, an unsubscribe). They live in the platform because one service signs what
another verifies: notification sends the links to workorder's customer page and campaign booking links
that workorder's public booking accepts, all signed with the chain's `link_secret` (ADR 16).

A token is `<payload>.<signature>`, both base64url: the payload is a small JSON object, the signature
HMAC-SHA256 with the service's `link_secret`. Each payload names its use (`page`, `attribution`), so a token
minted for one use never passes for the other.

A customer link names the work order, its branch, the expiry and the order's link generation: revoking the
order's links moves the generation on (table `customer_links`), so every link signed before stops working.
A link is "single-use" per add-on because the decision it records is on the work order, and deciding the
same way again records nothing.

An attribution token names a campaign or a reminder and an expiry: a public booking is attributed only
through one (ADR 13), never through an id the caller types.

A booking link names an appointment (the customer confirms or reschedules it) or a waitlist entry whose
offer of a freed place the customer takes; notification signs it into the reminder or the offer it sends,
workorder serves its page (ADR 25).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pitlane_platform.errors import ForbiddenError, InvalidInputError

PAGE = "page"
ATTRIBUTION = "attribution"
# A reminder's answer link (done elsewhere, remind me later): notification signs it into the message,
# reminder verifies it.
REMINDER_ANSWER = "reminder-answer"


class AttributionKind(StrEnum):
    CAMPAIGN = "campaign"
    REMINDER = "reminder"


class BookingLinkKind(StrEnum):
    """What a booking link opens; each kind is a token use of its own."""

    APPOINTMENT = "appointment"
    WAITLIST_OFFER = "waitlist-offer"


@dataclass(frozen=True)
class CustomerLink:
    work_order_id: str
    branch_id: str
    expires_at: datetime
    generation: int = 0


@dataclass(frozen=True)
class BookingLink:
    kind: BookingLinkKind
    record_id: str  # the appointment's or the waitlist entry's id
    branch_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Attribution:
    kind: AttributionKind
    source_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign_claims(secret: str, use: str, claims: dict[str, Any]) -> str:
    """A token for `use` (a name no other kind of token has) carrying `claims` (small: it is in a URL)."""
    payload = _b64(json.dumps({**claims, "use": use}, separators=(",", ":")).encode())
    return f"{payload}.{_signature(secret, payload)}"


def claims_of(secret: str, token: str, use: str) -> dict[str, Any] | None:
    """The payload of a token signed with `secret` for `use`, else None (forged, altered, other use)."""
    payload, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        return None
    # Links signed before uses were named are page links.
    if not isinstance(claims, dict) or claims.get("use", PAGE) != use:
        return None
    return claims


def sign_link(secret: str, link: CustomerLink) -> str:
    return sign_claims(
        secret,
        PAGE,
        {
            "wo": link.work_order_id,
            "br": link.branch_id,
            "exp": int(link.expires_at.timestamp()),
            "gen": link.generation,
        },
    )


def verify_link(secret: str, token: str, now: datetime) -> CustomerLink:
    """The link's content, or ForbiddenError (403) for a forged, damaged or expired link. Whether the
    order's links were revoked since is the caller's to check (`generation`)."""
    invalid = ForbiddenError("this link is not valid; ask the branch for a new one")
    claims = claims_of(secret, token, PAGE)
    if claims is None:
        raise invalid
    try:
        link = CustomerLink(
            claims["wo"], claims["br"], datetime.fromtimestamp(claims["exp"], UTC), int(claims.get("gen", 0))
        )
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if now >= link.expires_at:
        raise ForbiddenError("this link has expired; ask the branch for a new one")
    return link


def sign_attribution(secret: str, attribution: Attribution) -> str:
    return sign_claims(
        secret,
        ATTRIBUTION,
        {
            "kind": attribution.kind.value,
            "id": attribution.source_id,
            "exp": int(attribution.expires_at.timestamp()),
        },
    )


def verify_attribution(secret: str, token: str, now: datetime, *, field: str) -> Attribution:
    """The campaign or reminder the token names, or a 422 naming `field` for a forged, altered or expired
    token (the booking itself is fine; its attribution is not)."""
    invalid = InvalidInputError(field, "is not an attribution token this chain signed")
    claims = claims_of(secret, token, ATTRIBUTION)
    if claims is None:
        raise invalid
    try:
        attribution = Attribution(
            AttributionKind(claims["kind"]), str(claims["id"]), datetime.fromtimestamp(claims["exp"], UTC)
        )
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if now >= attribution.expires_at:
        raise InvalidInputError(field, "the campaign's or reminder's link has expired")
    return attribution


def sign_booking_link(secret: str, link: BookingLink) -> str:
    return sign_claims(
        secret,
        link.kind.value,
        {"id": link.record_id, "br": link.branch_id, "exp": int(link.expires_at.timestamp())},
    )


def verify_booking_link(secret: str, token: str, kind: BookingLinkKind, now: datetime) -> BookingLink:
    """The link's content, or ForbiddenError (403) for a forged, damaged or expired link, or one of another
    kind (an offer's link never opens an appointment)."""
    invalid = ForbiddenError("this link is not valid; ask the branch for a new one")
    claims = claims_of(secret, token, kind.value)
    if claims is None:
        raise invalid
    try:
        link = BookingLink(
            kind, str(claims["id"]), str(claims["br"]), datetime.fromtimestamp(claims["exp"], UTC)
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise invalid from None
    if now >= link.expires_at:
        raise ForbiddenError("this link has expired")
    return link
