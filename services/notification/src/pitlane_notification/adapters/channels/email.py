"""E-mail over SMTP with aiosmtplib: one connection per message, plain-text UTF-8 body.

The Message-ID is made from our message id, so a message sent twice (a retry after a lost answer) carries
the same id both times and the recipient's server or mail client can drop the copy. A message whose
parameters carry an `unsubscribe_url` gets a List-Unsubscribe header, which mail clients show as an
"unsubscribe" button.

SMTP reply codes decide the failure kind: 4xx is "try again later", a 5xx to the recipient or the content is
final. A 5xx to our login or sender address is our account's fault, not the message's: retryable.
"""

from __future__ import annotations

import asyncio
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

import aiosmtplib

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import SmtpConfig

UNSUBSCRIBE_PARAMETER = "unsubscribe_url"


class SmtpEmailProvider:
    name = "smtp"
    channel = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._sender = Address(display_name=config.from_name or "", addr_spec=config.from_address)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        email = self.compose(message)
        config = self._config
        try:
            # aiosmtplib's timeout bounds each step of the conversation; this bounds the whole of it.
            async with asyncio.timeout(config.timeout_s):
                await aiosmtplib.send(
                    email,
                    hostname=config.host,
                    port=config.port,
                    username=config.username,
                    password=config.password.get_secret_value() if config.password else None,
                    use_tls=config.security == "tls",
                    start_tls=config.security == "starttls",
                    cert_bundle=config.ca_bundle,
                    timeout=config.timeout_s,
                )
        except TimeoutError:
            # aiosmtplib's own SMTPTimeoutError is a TimeoutError too.
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"smtp timed out after {config.timeout_s:g}s"
            ) from None
        except aiosmtplib.SMTPException as error:
            # `from None`: servers quote the recipient's address in their replies.
            raise _failure(error) from None
        except OSError as error:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"smtp unreachable ({type(error).__name__})"
            ) from None
        return SendReceipt(provider=self.name, provider_message_id=email["Message-ID"])

    def compose(self, message: OutboundMessage) -> EmailMessage:
        """The e-mail `message` becomes (public so a preview can show exactly what is sent)."""
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.address
        email["Subject"] = message.subject or ""
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = f"<{message.message_id}@{self._sender.domain}>"
        unsubscribe_url = message.parameters.get(UNSUBSCRIBE_PARAMETER)
        if unsubscribe_url:
            email["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        email.set_content(message.body, charset="utf-8")
        return email

    async def close(self) -> None:
        """Nothing to release: each message has a connection of its own."""


def _failure(error: aiosmtplib.SMTPException) -> ProviderError:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        # There is only ever one recipient: its refusal is the answer.
        error = error.recipients[0]
    if not isinstance(error, aiosmtplib.SMTPResponseException):
        # Not connected, disconnected, no STARTTLS or AUTH offered: the connection or the server's setup.
        # These messages are aiosmtplib's own, never the server's.
        return ProviderError(FailureKind.UNAVAILABLE, f"smtp {type(error).__name__}: {error}")
    what = {
        aiosmtplib.SMTPRecipientRefused: "recipient refused",
        aiosmtplib.SMTPDataError: "message refused",
        aiosmtplib.SMTPSenderRefused: "sender refused",
        aiosmtplib.SMTPAuthenticationError: "login refused",
    }.get(type(error), "refused")
    final = isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError)
    if final and 500 <= error.code < 600:
        return ProviderError(FailureKind.REJECTED, f"smtp {error.code} {what}")
    return ProviderError(FailureKind.UNAVAILABLE, f"smtp {error.code} {what}")
