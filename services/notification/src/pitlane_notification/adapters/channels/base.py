"""The one interface every channel provider implements: hand one rendered message to the provider, say what
the provider answered. Which provider serves which channel is the chain's configuration (ProviderSettings);
the service layer never knows which one it talks to.

A provider raises `ProviderError` for everything the provider refused or could not be reached for; its
`retryable` says whether the same message may succeed later (a timeout, a 5xx, throttling) or never will (an
invalid number, a refused WeChat subscription). `reason` is short, stable and free of personal data: it is
stored on the message and published in NotificationFailed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class FailureKind(StrEnum):
    """Why a provider did not take a message, as far as the service layer must tell them apart."""

    UNAVAILABLE = "unavailable"  # down, timed out, 5xx, throttled: try again later (back-off)
    REJECTED = "rejected"  # the provider will never send this message (bad number, bad template): give up
    SUBSCRIPTION_REFUSED = "subscription_refused"  # WeChat: the customer refused, or the allowance is spent
    DAILY_CAP = "daily_cap"  # the provider's per-number daily cap: another channel, or tomorrow


@dataclass(frozen=True)
class OutboundMessage:
    """One message to one address, already rendered.

    SMS providers take `provider_template` (the approved template code) and `parameters` (its variables),
    never free text; WeChat takes the template id and `parameters` as its data; e-mail, webhooks and the
    recording provider take `subject` and `body` (the rendered text, which SMS and WeChat ignore).
    """

    message_id: str  # our id: the idempotency key providers accept (Aliyun OutId, a webhook header)
    channel: str  # "sms" | "wechat" | "email"
    address: str  # an 11-digit mobile number, a WeChat open id, an e-mail address
    body: str
    subject: str | None = None
    provider_template: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    link: str | None = None  # the page the message points to (WeChat opens it on tap)
    locale: str = "zh-CN"


@dataclass(frozen=True)
class SendReceipt:
    """What the provider answered: its id for the message, which later delivery receipts name."""

    provider: str
    provider_message_id: str | None


class ProviderError(Exception):
    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.kind is FailureKind.UNAVAILABLE


class ChannelProvider(Protocol):
    """A provider of one channel; `name` is what the configuration calls it ("aliyun", "smtp", …)."""

    name: str
    channel: str

    async def send(self, message: OutboundMessage) -> SendReceipt: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery receipt a provider pushed back: whether the handset (or mailbox) got the message."""

    provider: str
    provider_message_id: str
    delivered: bool
    error_code: str | None = None


@dataclass(frozen=True)
class InboundReply:
    """A text the customer sent back to our SMS sign-name (上行短信), e.g. "TD" to unsubscribe."""

    provider: str
    phone: str  # normalised 11-digit mobile number
    text: str
