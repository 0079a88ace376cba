"""E-mail through the chain's SMTP server, with the platform's mailer (`pitlane_platform.mail`: one
connection per message, the Message-ID made from our message id, SMTP reply codes → retryable or final).

A message whose parameters carry an `unsubscribe_url` gets a List-Unsubscribe header, which mail clients show
as an "unsubscribe" button. A refusal that may pass later is UNAVAILABLE (back-off), a final one REJECTED.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)
from pitlane_platform.mail import Mail, MailNotSent, SmtpMailer

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import SmtpConfig

UNSUBSCRIBE_PARAMETER = "unsubscribe_url"


class SmtpEmailProvider:
    name = "smtp"
    channel = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self._mailer = SmtpMailer(config)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        try:
            message_id = await self._mailer.send(_mail(message))
        except MailNotSent as failure:
            kind = FailureKind.UNAVAILABLE if failure.retryable else FailureKind.REJECTED
            raise ProviderError(kind, failure.reason) from None
        return SendReceipt(provider=self.name, provider_message_id=message_id)

    def compose(self, message: OutboundMessage) -> EmailMessage:
        """The e-mail `message` becomes (public so a preview can show exactly what is sent)."""
        return self._mailer.compose(_mail(message))

    async def close(self) -> None:
        """Nothing to release: each message has a connection of its own."""


def _mail(message: OutboundMessage) -> Mail:
    unsubscribe_url = message.parameters.get(UNSUBSCRIBE_PARAMETER)
    return Mail(
        message_id=message.message_id,
        to=message.address,
        subject=message.subject or "",
        text=message.body,
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>"} if unsubscribe_url else {},
    )
