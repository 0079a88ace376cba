"""The platform's mailer against a real SMTP server (aiosmtpd in the test's process): what arrives, parsed
back, and how each refusal is classed (may pass later, or never), with no address in any reason."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from pydantic import TypeAdapter, ValidationError

from pitlane_platform.mail import Mail, MailAddress, MailNotSent, SmtpMailer, SmtpSettings

RECIPIENT = "wang.li@chexiang.example.cn"


def free_port() -> int:
    """aiosmtpd's Controller cannot bind port 0: take a free port first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """Keeps what it accepts; answers MAIL, RCPT or DATA as told."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.answers: dict[str, str] = {}

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if "MAIL" in self.answers:
            return self.answers["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if "RCPT" in self.answers:
            return self.answers["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if "DATA" in self.answers:
            return self.answers["DATA"]
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def port(mailbox: Mailbox) -> Iterator[int]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def mailer(port: int, **changes: Any) -> SmtpMailer:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "kpi@chexiang.example.cn",
    }
    return SmtpMailer(SmtpSettings.model_validate(settings | changes))


MAIL = Mail(
    message_id="d-0001",
    to=RECIPIENT,
    subject="经营日报 · 门店 b1 · 2026-03-14",
    text="回头率: 50.00%\n",
    html="<p>回头率: <b>50.00%</b></p>",
    headers={"List-Unsubscribe": "<https://shop.example.cn/u/1>"},
)


async def test_a_mail_with_html_arrives_as_text_and_html_alternatives_under_our_message_id(
    mailbox: Mailbox, port: int
) -> None:
    message_id = await mailer(port, from_name="车友汽修").send(MAIL)

    [received] = mailbox.received
    assert message_id == "<d-0001@chexiang.example.cn>" == received["Message-ID"]
    assert received["From"].addresses[0].display_name == "车友汽修"
    assert (received["To"], received["Subject"]) == (RECIPIENT, "经营日报 · 门店 b1 · 2026-03-14")
    assert received["List-Unsubscribe"] == "<https://shop.example.cn/u/1>"
    assert received.get_content_type() == "multipart/alternative"
    text, html = received.get_body(("plain",)), received.get_body(("html",))
    assert text is not None and text.get_content().splitlines() == ["回头率: 50.00%"]
    assert html is not None and html.get_content().strip() == "<p>回头率: <b>50.00%</b></p>"


async def test_a_text_only_mail_is_one_plain_part(mailbox: Mailbox, port: int) -> None:
    await mailer(port).send(Mail(message_id="d-0002", to=RECIPIENT, subject="s", text="只有文字"))

    [received] = mailbox.received
    assert received.get_content_type() == "text/plain"
    assert received.get_content().splitlines() == ["只有文字"]  # lines end in CRLF on the wire


@pytest.mark.parametrize(
    ("step", "answer", "reason", "retryable"),
    [
        ("RCPT", f"550 5.1.1 <{RECIPIENT}>: User unknown", "smtp 550 recipient refused", False),
        ("RCPT", f"450 4.2.1 <{RECIPIENT}>: Mailbox busy", "smtp 450 recipient refused", True),
        ("DATA", "554 5.7.1 Message rejected as spam", "smtp 554 message refused", False),
        ("DATA", "451 4.3.0 Try again later", "smtp 451 message refused", True),
        # Our sender address refused: the account's setup is at fault, not the message; fixable, so retried.
        ("MAIL", "553 5.7.1 Sender not allowed", "smtp 553 sender refused", True),
    ],
)
async def test_refusals_are_classed_by_reply_code_and_step_without_the_address(
    mailbox: Mailbox, port: int, step: str, answer: str, reason: str, retryable: bool
) -> None:
    mailbox.answers[step] = answer

    with pytest.raises(MailNotSent) as refused:
        await mailer(port).send(MAIL)

    assert (refused.value.reason, refused.value.retryable) == (reason, retryable)
    assert RECIPIENT not in str(refused.value) and refused.value.__cause__ is None
    assert mailbox.received == []


async def test_a_server_that_is_not_there_may_be_there_later() -> None:
    with pytest.raises(MailNotSent) as refused:
        await mailer(free_port()).send(MAIL)

    assert refused.value.retryable
    assert refused.value.reason.startswith("smtp ")


@pytest.mark.parametrize(
    "address", ["wang.li@chexiang.example.cn", "ops+kpi@shop.example.cn", "王丽@例子.中国"]
)
def test_an_address_is_one_local_part_at_a_dotted_domain(address: str) -> None:
    assert TypeAdapter(MailAddress).validate_python(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "wang.li(at)chexiang.example.cn",
        "wang.li@localhost",
        "@chexiang.example.cn",
        "Wang Li <wang.li@chexiang.example.cn>",
        "a@b.cn, c@d.cn",
        "wang.li@chexiang.example.cn\r\nBcc: x@example.cn",
        "a@b@c.cn",
        f"{'a' * 250}@b.cn",
    ],
)
def test_anything_else_is_not_an_address(address: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(MailAddress).validate_python(address)


def test_the_password_never_shows_in_the_settings_printed_or_dumped() -> None:
    settings = SmtpSettings(host="smtp.example.cn", from_address="kpi@example.cn", password="s3cret-pass")

    assert "s3cret-pass" not in repr(settings)
    assert "s3cret-pass" not in settings.model_dump_json()
