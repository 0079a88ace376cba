"""E-mail over SMTP, one way for every service: build one message (plain text, optionally with an HTML
alternative) and send it with aiosmtplib, one connection per message.

The Message-ID is made from the caller's own id, so a message sent twice (a retry after a lost answer, a
crash between sending and recording it) carries the same id both times and the recipient's server or mail
client can drop the copy.

SMTP reply codes decide whether a failure may pass on a later try: 4xx is "try again later"; a 5xx to the
recipient or the content is final; a 5xx to our login or sender address is our account's fault, not the
message's, so it is worth retrying once the account is fixed. A failure's reason names the step and the
code, never the server's text (servers quote the recipient's address in their replies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated, Literal, Protocol

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

SmtpSecurity = Literal["tls", "starttls", "none"]

# One address, nothing else: no display name, no second address, no header folding (a CR or LF would let
# input write headers of its own). The domain needs a dot: a bare host name is a typo in staff data.
_MAX_ADDRESS_LENGTH = 254


def _a_mail_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(value) > _MAX_ADDRESS_LENGTH
        or any(character.isspace() or character in '<>(),;:"[]\\' for character in value)
        or "@" in local
    ):
        raise ValueError("must be one e-mail address, like name@example.cn")
    return value


MailAddress = Annotated[str, AfterValidator(_a_mail_address)]
"""An e-mail address as input: one `local@domain`, nothing that could make a header of its own."""


class SmtpAccount(Protocol):
    """What sending needs to know about a chain's SMTP server; `SmtpSettings` is one, and so is any service's
    own configuration model with these fields."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def security(self) -> SmtpSecurity: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> SecretStr | None: ...
    @property
    def from_address(self) -> str: ...
    @property
    def from_name(self) -> str | None: ...
    @property
    def ca_bundle(self) -> str | None: ...
    @property
    def timeout_s(self) -> float: ...


class SmtpSettings(BaseModel):
    """An SMTP server to send through, as a service's settings hold it (one JSON setting). `security`: "tls"
    is implicit TLS (usually port 465), "starttls" upgrades a plain connection (usually port 587), "none" is
    for a relay on a trusted network only. The password is a `SecretStr`: printed or logged, it shows stars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=465, gt=0, lt=65536)
    security: SmtpSecurity = "tls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: MailAddress
    from_name: str | None = None  # e.g. 车友汽修
    ca_bundle: str | None = None  # PEM file of a private CA the server's certificate is issued by
    timeout_s: float = Field(
        default=10.0, gt=0, description="the longest one message may take, connection included"
    )


@dataclass(frozen=True)
class Mail:
    """One e-mail to one address. `message_id` is ours (a message's id, a digest's period): the Message-ID
    header is made from it. `html`, when given, is an alternative to `text`, which every client can show."""

    message_id: str
    to: str
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe


class MailNotSent(Exception):
    """The server did not take the message. `reason` is short, stable and free of personal data (it is
    stored in delivery logs); `retryable` says whether the same message may pass later."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Mailer(Protocol):
    """Sends one e-mail and returns the Message-ID (or a development stand-in's id for it)."""

    async def send(self, mail: Mail) -> str: ...


class SmtpMailer:
    def __init__(self, account: SmtpAccount) -> None:
        self._account = account
        self._sender = Address(display_name=account.from_name or "", addr_spec=account.from_address)

    def compose(self, mail: Mail) -> EmailMessage:
        """The e-mail `mail` becomes (public so a preview can show exactly what is sent)."""
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = mail.to
        email["Subject"] = mail.subject
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = f"<{mail.message_id}@{self._sender.domain}>"
        for name, value in mail.headers.items():
            email[name] = value
        email.set_content(mail.text, charset="utf-8")
        if mail.html is not None:
            email.add_alternative(mail.html, subtype="html", charset="utf-8")
        return email

    async def send(self, mail: Mail) -> str:
        email = self.compose(mail)
        account = self._account
        try:
            # aiosmtplib's timeout bounds each step of the conversation; this bounds the whole of it.
            async with asyncio.timeout(account.timeout_s):
                await aiosmtplib.send(
                    email,
                    hostname=account.host,
                    port=account.port,
                    username=account.username,
                    password=account.password.get_secret_value() if account.password else None,
                    use_tls=account.security == "tls",
                    start_tls=account.security == "starttls",
                    cert_bundle=account.ca_bundle,
                    timeout=account.timeout_s,
                )
        except TimeoutError:
            # aiosmtplib's own SMTPTimeoutError is a TimeoutError too.
            raise MailNotSent(f"smtp timed out after {account.timeout_s:g}s", retryable=True) from None
        except aiosmtplib.SMTPException as error:
            # `from None`: servers quote the recipient's address in their replies.
            raise smtp_failure(error) from None
        except OSError as error:
            raise MailNotSent(f"smtp unreachable ({type(error).__name__})", retryable=True) from None
        return str(email["Message-ID"])


_REFUSED_WHAT = {
    aiosmtplib.SMTPRecipientRefused: "recipient refused",
    aiosmtplib.SMTPDataError: "message refused",
    aiosmtplib.SMTPSenderRefused: "sender refused",
    aiosmtplib.SMTPAuthenticationError: "login refused",
}


def smtp_failure(error: aiosmtplib.SMTPException) -> MailNotSent:
    """What an SMTP error means for the message: its reason, and whether it may pass later."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        # There is only ever one recipient: its refusal is the answer.
        error = error.recipients[0]
    if not isinstance(error, aiosmtplib.SMTPResponseException):
        # Not connected, disconnected, no STARTTLS or AUTH offered: the connection or the server's setup.
        # These messages are aiosmtplib's own, never the server's.
        return MailNotSent(f"smtp {type(error).__name__}: {error}", retryable=True)
    what = _REFUSED_WHAT.get(type(error), "refused")
    about_the_message = isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError)
    final = about_the_message and 500 <= error.code < 600
    return MailNotSent(f"smtp {error.code} {what}", retryable=not final)
