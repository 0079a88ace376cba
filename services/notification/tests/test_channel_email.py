"""The SMTP provider against a real SMTP server (aiosmtpd) in the test's process: what arrives in the
mailbox, byte for byte parsed back, and how the server's refusals become failures of the right kind."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from pitlane_notification.adapters.channels.base import FailureKind, OutboundMessage, ProviderError
from pitlane_notification.adapters.channels.config import SmtpConfig
from pitlane_notification.adapters.channels.email import SmtpEmailProvider

ADDRESS = "zhang.wei@example.cn"
SENDER = "service@chexiang.example.cn"
UNSUBSCRIBE_URL = "https://shop.example.cn/u/7f3a9c"
BODY = "张先生您好：\n\n您的爱车沪A12345将于明天上午10:00进行常规保养，请准时到店。\n\n车友汽修 徐汇店"


def email_message(message_id: str = "msg-0100", **changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "channel": "email",
        "address": ADDRESS,
        "subject": "保养提醒：沪A12345",
        "body": BODY,
        "parameters": {"unsubscribe_url": UNSUBSCRIBE_URL},
    }
    return OutboundMessage(**(fields | changes))


def free_port() -> int:
    """aiosmtpd's Controller cannot bind port 0: take a free port first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and answers RCPT or DATA as told."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.logins: list[bytes] = []
        self.rcpt_answer: str | None = None
        self.data_answer: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.data_answer:
            return self.data_answer
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == b"smtp-password-123", handled=False)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_bundle(certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def server_tls(certificate_authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def running(mailbox: Mailbox, **smtp_options: Any) -> Iterator[Controller]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **smtp_options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain_server(mailbox: Mailbox) -> Iterator[Controller]:
    yield from running(mailbox)


def smtp_config(port: int, **changes: Any) -> SmtpConfig:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": SENDER,
        "from_name": "车友汽修",
        "timeout_s": 5,
    }
    return SmtpConfig.model_validate(settings | changes)


async def send_failing(provider: SmtpEmailProvider, message: OutboundMessage) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await provider.send(message)
    return raised.value


async def test_an_email_arrives_with_its_chinese_text_its_id_and_unsubscribe_header(
    mailbox: Mailbox, plain_server: Controller
) -> None:
    provider = SmtpEmailProvider(smtp_config(plain_server.port))

    receipt = await provider.send(email_message("msg-0100"))

    [received] = mailbox.received
    assert received["Subject"] == "保养提醒：沪A12345"
    assert received["From"].addresses[0].display_name == "车友汽修"
    assert received["From"].addresses[0].addr_spec == SENDER
    assert received["To"] == ADDRESS
    assert received["Message-ID"] == "<msg-0100@chexiang.example.cn>"
    assert received["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"
    assert received["Date"] is not None
    body = received.get_body(("plain",))
    assert body is not None and body.get_content_charset() == "utf-8"
    assert body.get_content().rstrip("\n") == BODY
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == SENDER and envelope.rcpt_tos == [ADDRESS]
    assert receipt.provider == "smtp" and receipt.provider_message_id == "<msg-0100@chexiang.example.cn>"


async def test_the_same_message_sent_twice_carries_the_same_message_id(
    mailbox: Mailbox, plain_server: Controller
) -> None:
    provider = SmtpEmailProvider(smtp_config(plain_server.port))

    await provider.send(email_message("msg-0101"))
    await provider.send(email_message("msg-0101"))
    await provider.send(email_message("msg-0102", parameters={}))

    first, again, other = mailbox.received
    assert first["Message-ID"] == again["Message-ID"] == "<msg-0101@chexiang.example.cn>"
    assert other["Message-ID"] == "<msg-0102@chexiang.example.cn>"
    assert other["List-Unsubscribe"] is None


@pytest.mark.parametrize(
    ("rcpt_answer", "data_answer", "kind", "reason"),
    [
        (
            "550 5.1.1 <zhang.wei@example.cn>: User unknown",
            None,
            FailureKind.REJECTED,
            "smtp 550 recipient refused",
        ),
        ("553 5.1.3 Bad recipient address syntax", None, FailureKind.REJECTED, "smtp 553 recipient refused"),
        (
            "450 4.2.1 <zhang.wei@example.cn>: Mailbox busy",
            None,
            FailureKind.UNAVAILABLE,
            "smtp 450 recipient refused",
        ),
        ("452 4.5.3 Too many recipients", None, FailureKind.UNAVAILABLE, "smtp 452 recipient refused"),
        (None, "554 5.7.1 Message rejected as spam", FailureKind.REJECTED, "smtp 554 message refused"),
        (None, "451 4.3.0 Try again later", FailureKind.UNAVAILABLE, "smtp 451 message refused"),
    ],
)
async def test_server_refusals_map_to_failure_kinds_without_the_address(
    mailbox: Mailbox,
    plain_server: Controller,
    rcpt_answer: str | None,
    data_answer: str | None,
    kind: FailureKind,
    reason: str,
) -> None:
    mailbox.rcpt_answer, mailbox.data_answer = rcpt_answer, data_answer
    provider = SmtpEmailProvider(smtp_config(plain_server.port))

    failure = await send_failing(provider, email_message())

    assert (failure.kind, failure.reason) == (kind, reason)
    assert ADDRESS not in str(failure) and failure.__cause__ is None
    assert mailbox.received == []


async def test_a_server_that_is_not_there_or_never_greets_is_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are queued, never greeted
        closed = free_port()

        never_greets = await send_failing(
            SmtpEmailProvider(smtp_config(silent.getsockname()[1], timeout_s=0.3)), email_message()
        )
        absent = await send_failing(SmtpEmailProvider(smtp_config(closed)), email_message())

    assert never_greets.kind is FailureKind.UNAVAILABLE
    assert never_greets.reason == "smtp timed out after 0.3s"
    assert absent.kind is FailureKind.UNAVAILABLE
    assert absent.reason.startswith("smtp ")


async def test_starttls_with_login_reaches_a_server_that_requires_both(
    mailbox: Mailbox, server_tls: ssl.SSLContext, ca_bundle: Path
) -> None:
    for controller in running(
        mailbox,
        tls_context=server_tls,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=mailbox.authenticate,
    ):
        config = {"security": "starttls", "ca_bundle": str(ca_bundle), "username": "service"}
        good = SmtpEmailProvider(smtp_config(controller.port, **config, password="smtp-password-123"))
        bad = SmtpEmailProvider(smtp_config(controller.port, **config, password="wrong"))
        no_tls = SmtpEmailProvider(
            smtp_config(controller.port, username="service", password="smtp-password-123")
        )

        await good.send(email_message("msg-0103"))
        refused_login = await send_failing(bad, email_message("msg-0104"))
        refused_plain = await send_failing(no_tls, email_message("msg-0105"))

    assert [m["Message-ID"] for m in mailbox.received] == ["<msg-0103@chexiang.example.cn>"]
    assert mailbox.logins and set(mailbox.logins) == {b"service"}  # aiosmtplib tries each mechanism offered
    # The message is not at fault: the account or the connection's settings are, and can be fixed.
    assert (refused_login.kind, refused_login.reason) == (FailureKind.UNAVAILABLE, "smtp 535 login refused")
    assert refused_plain.kind is FailureKind.UNAVAILABLE
    assert refused_plain.reason.startswith("smtp SMTPException: The SMTP AUTH extension is not supported")


async def test_implicit_tls_checks_the_servers_certificate(
    mailbox: Mailbox, server_tls: ssl.SSLContext, ca_bundle: Path
) -> None:
    for controller in running(mailbox, ssl_context=server_tls):
        trusting = SmtpEmailProvider(smtp_config(controller.port, security="tls", ca_bundle=str(ca_bundle)))
        untrusting = SmtpEmailProvider(smtp_config(controller.port, security="tls"))

        await trusting.send(email_message("msg-0106"))
        unverified = await send_failing(untrusting, email_message("msg-0107"))

    assert [m["Message-ID"] for m in mailbox.received] == ["<msg-0106@chexiang.example.cn>"]
    assert unverified.kind is FailureKind.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in unverified.reason
