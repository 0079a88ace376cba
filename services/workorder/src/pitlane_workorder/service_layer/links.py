"""Signed, expiring links to a work order's customer page: the only way a customer acts on Pitlane.

A link is `<payload>.<signature>`, both base64url: the payload names the work order, its branch and the
expiry; the signature is HMAC-SHA256 with the service's `link_secret`. Nothing is stored per link; a link is
"single-use" per add-on because the decision it records is on the work order, and deciding the same way
again records nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pitlane_platform.errors import ForbiddenError


@dataclass(frozen=True)
class CustomerLink:
    work_order_id: str
    branch_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign_link(secret: str, link: CustomerLink) -> str:
    payload = _b64(
        json.dumps(
            {"wo": link.work_order_id, "br": link.branch_id, "exp": int(link.expires_at.timestamp())},
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_signature(secret, payload)}"


def verify_link(secret: str, token: str, now: datetime) -> CustomerLink:
    """The link's content, or ForbiddenError (403) for a forged, damaged or expired link."""
    payload, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        raise ForbiddenError("this link is not valid; ask the branch for a new one")
    try:
        claims = json.loads(_unb64(payload))
        link = CustomerLink(claims["wo"], claims["br"], datetime.fromtimestamp(claims["exp"], UTC))
    except (ValueError, KeyError, TypeError):
        raise ForbiddenError("this link is not valid; ask the branch for a new one") from None
    if now >= link.expires_at:
        raise ForbiddenError("this link has expired; ask the branch for a new one")
    return link
