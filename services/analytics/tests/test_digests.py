"""KPI digests by e-mail, against real PostgreSQL, NATS and a real SMTP server (aiosmtpd in the test's
process): sent at the subscribed local time and not a minute before, with yesterday's figures worked out here
from a small scripted history, once per period through a restart and a replayed timer, a 4xx retried and
delivered once, a 5xx logged as failed; who may subscribe, and bad input named."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from fractions import Fraction
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from analytics_harness import Harness, running, shanghai

from pitlane_events.notification import NpsAnswered
from pitlane_events.types import Bay
from pitlane_events.workorder import BranchOpened
from pitlane_platform.testing.shop import work_order_completed, work_order_opened

RECIPIENT = "wang.li@chexiang.example.cn"
SENDER = "kpi@chexiang.example.cn"
DASHBOARD = "https://shop.example.cn"


def free_port() -> int:
    """aiosmtpd's Controller cannot bind port 0: take a free port first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts; `data_answers` are given to the next DATA commands
    one by one (a refusal), then messages are accepted."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.data_answers: list[str] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        assert isinstance(envelope.content, bytes)
        assert envelope.rcpt_tos == [RECIPIENT]
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.raw.append(envelope.content)
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()


@asynccontextmanager
async def analytics_sending_to(mailbox: Mailbox, database_url: str, nats_url: str) -> AsyncIterator[Harness]:
    smtp = {
        "host": "127.0.0.1",
        "port": mailbox.port,
        "security": "none",
        "from_address": SENDER,
        "from_name": "车友汽修",
        "timeout_s": 5,
    }
    # One timer worker: with several, one that skips the timer another is firing (SKIP LOCKED) reports the
    # timers caught up while that digest is still being sent.
    async with running(
        database_url,
        nats_url,
        smtp=smtp,
        public_base_url=DASHBOARD,
        timer_poll_interval_s=0.05,
        timer_concurrency=1,
    ) as harness:
        yield harness


@pytest.fixture
async def harness(mailbox: Mailbox, database_url: str, nats_url: str) -> AsyncIterator[Harness]:
    async with analytics_sending_to(mailbox, database_url, nats_url) as running_harness:
        yield running_harness


async def at(harness: Harness, moment: datetime) -> None:
    """Move the clock to `moment` and wait until every timer due by then has fired."""
    harness.clock.set(moment)
    await harness.timers_caught_up()


async def subscribe(harness: Harness, **changes: Any) -> dict[str, Any]:
    body = {"email": RECIPIENT, "branch_id": "b1", "cadence": "daily", "send_time": "08:00"} | changes
    response = await harness.post("/v1/digests", body)
    assert response.status_code == 201, response.text
    subscription: dict[str, Any] = response.json()
    return subscription


async def deliveries(harness: Harness, subscription_id: str) -> list[dict[str, Any]]:
    response = await harness.get(f"/v1/digests/{subscription_id}/deliveries")
    assert response.status_code == 200, response.text
    log: list[dict[str, Any]] = response.json()
    return log


# ---- a small history, and yesterday's figures worked out from it ------------------------------------------


@dataclass(frozen=True)
class Visit:
    work_order: str
    customer: str
    branch: str
    at: datetime
    paid_fen: int


HISTORY = (
    Visit("wo-0", "cust-anna", "b1", shanghai(2026, 3, 13, 10), 68_000),  # the day before yesterday
    Visit("wo-1", "cust-anna", "b1", shanghai(2026, 3, 14, 9), 52_000),
    Visit("wo-2", "cust-bao", "b1", shanghai(2026, 3, 14, 15), 45_000),
    Visit("wo-3", "cust-bao", "b1", shanghai(2026, 3, 14, 17, 30), 120_000),
    Visit("wo-4", "cust-chen", "b2", shanghai(2026, 3, 14, 23, 30), 99_000),  # another branch
    Visit("wo-5", "cust-chen", "b1", shanghai(2026, 3, 15, 0, 30), 30_000),  # today, not yesterday
)
ANSWERS = (("wo-1", 10, shanghai(2026, 3, 14, 12)), ("wo-2", 5, shanghai(2026, 3, 14, 20)))
YESTERDAY = (shanghai(2026, 3, 14, 0), shanghai(2026, 3, 15, 0))
DAY_BEFORE = (shanghai(2026, 3, 13, 0), shanghai(2026, 3, 14, 0))


async def deliver_history(harness: Harness) -> None:
    envelopes = []
    for visit in HISTORY:
        vehicle = f"veh-{visit.customer}"
        opened = work_order_opened(visit.work_order, visit.customer, vehicle)
        completed = work_order_completed(
            visit.work_order,
            visit.customer,
            vehicle,
            branch_id=visit.branch,
            completed_at=visit.at,
            total_fen=visit.paid_fen,
        )
        envelopes += [
            harness.event_at(visit.at - timedelta(hours=1), opened, visit.work_order, branch_id=visit.branch),
            harness.event_at(visit.at, completed, visit.work_order, branch_id=visit.branch),
        ]
    for work_order, score, answered_at in ANSWERS:
        visit = next(v for v in HISTORY if v.work_order == work_order)
        answer = NpsAnswered(
            survey_id=f"survey-{work_order}",
            work_order_id=work_order,
            customer_id=visit.customer,
            advisor_id="amy",
            technician_ids=("tom", "lee"),
            branch_id=visit.branch,
            score=score,
            comment="师傅很专业",
        )
        envelopes.append(
            harness.event_at(answered_at, answer, f"survey-{work_order}", branch_id=visit.branch)
        )
    await harness.deliver(envelopes)


@dataclass(frozen=True)
class DayFigures:
    """The headline figures a digest shows, as exact values (None: nothing to divide by)."""

    customers: int
    return_rate: Fraction | None
    new_customers: int
    spend_per_year_fen: int | None
    ltv_fen: int | None
    nps: Fraction | None
    nps_answers: int
    days_between_visits: Fraction | None


def figures_of(branch: str, day: tuple[datetime, datetime]) -> DayFigures:
    """KPI.md's definitions over one day of HISTORY at one branch, in plain Python."""
    start, end = day
    visits = [v for v in HISTORY if v.branch == branch]
    in_day = [v for v in visits if start <= v.at < end]
    customers = {v.customer for v in in_day}
    returning = sum(1 for c in customers if sum(v.customer == c for v in in_day) >= 2)
    first_visits = [min((v for v in HISTORY if v.customer == c), key=lambda v: v.at) for c in customers]
    new = sum(1 for first in first_visits if start <= first.at < end and first.branch == branch)
    spend = Fraction(sum(v.paid_fen for v in in_day), len(customers)) * 365 if customers else None
    seen = {v.customer for v in visits if v.at < end}
    lifetimes = [
        max(v.at for v in visits if v.customer == c and v.at < end)
        - min(v.at for v in visits if v.customer == c)
        for c in seen
    ]
    mean_years = Fraction(sum(lifetimes, timedelta()) // timedelta(seconds=1), len(lifetimes) * 86_400 * 365)
    gaps = [
        v.at - max(p.at for p in visits if p.customer == v.customer and p.at < v.at)
        for v in in_day
        if any(p.customer == v.customer and p.at < v.at for p in visits)
    ]
    scores = [score for _, score, answered_at in ANSWERS if start <= answered_at < end]
    promoters, detractors = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
    return DayFigures(
        customers=len(customers),
        return_rate=Fraction(returning, len(customers)) if customers else None,
        new_customers=new,
        spend_per_year_fen=None if spend is None else round(spend),
        ltv_fen=None if spend is None else round(spend * mean_years),
        nps=Fraction(100 * (promoters - detractors), len(scores)) if scores else None,
        nps_answers=len(scores),
        days_between_visits=(
            Fraction(sum(gaps, timedelta()) // timedelta(seconds=1), len(gaps) * 86_400) if gaps else None
        ),
    )


def as_percent(rate: Fraction | None) -> Decimal | None:
    """A rate as the digest shows it: rounded to 4 decimals (half to even), in per cent."""
    return None if rate is None else Decimal(round(rate * 10_000)) / 100


def as_yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else Decimal(fen) / 100


def to_one_decimal(value: Fraction | None) -> Decimal | None:
    return None if value is None else Decimal(round(value * 10)) / 10


Shown = tuple[Callable[[Any], str], Callable[[Any], str]]  # a figure, and a change of it
COUNT: Shown = (str, "{:+}".format)
PERCENT: Shown = ("{:.2f}%".format, "{:+.2f} pp".format)
YUAN: Shown = ("¥{:,.2f}".format, lambda change: f"{'+' if change >= 0 else '-'}¥{abs(change):,.2f}")
ONE_DECIMAL: Shown = ("{:.1f}".format, "{:+.1f}".format)


def line(label: str, now: Any, before: Any, shown: Shown) -> str:
    figure, change = shown

    def text(value: Any) -> str:
        return "—" if value is None else figure(value)

    difference = "—" if now is None or before is None else change(now - before)
    return f"{label}: {text(now)}  (previous {text(before)}, change {difference})"


def expected_lines(today: DayFigures, before: DayFigures) -> list[str]:
    return [
        line("Customers with a visit", today.customers, before.customers, COUNT),
        line("Return rate", as_percent(today.return_rate), as_percent(before.return_rate), PERCENT),
        line("New customers", today.new_customers, before.new_customers, COUNT),
        line("Spend per year", as_yuan(today.spend_per_year_fen), as_yuan(before.spend_per_year_fen), YUAN),
        line("Customer lifetime value", as_yuan(today.ltv_fen), as_yuan(before.ltv_fen), YUAN),
        line("NPS", to_one_decimal(today.nps), to_one_decimal(before.nps), ONE_DECIMAL),
        line("NPS answers", today.nps_answers, before.nps_answers, COUNT),
        line("Appointment conversion", None, None, PERCENT),
        line(
            "Days between visits",
            to_one_decimal(today.days_between_visits),
            to_one_decimal(before.days_between_visits),
            ONE_DECIMAL,
        ),
        line("Reminder effectiveness", None, None, PERCENT),
        line("Declined-work recovery", None, None, PERCENT),
    ]


# ---- sending at the local time -----------------------------------------------------------------------------


async def test_a_daily_digest_goes_out_at_eight_in_shanghai_with_yesterdays_figures(
    harness: Harness, mailbox: Mailbox
) -> None:
    await deliver_history(harness)
    harness.clock.set(shanghai(2026, 3, 15, 7))
    subscription = await subscribe(harness, language="en")

    await at(harness, shanghai(2026, 3, 15, 7, 59))
    assert mailbox.received == []

    await at(harness, shanghai(2026, 3, 15, 8))
    [email] = mailbox.received

    today, before = figures_of("b1", YESTERDAY), figures_of("b1", DAY_BEFORE)
    assert (today.customers, today.return_rate, today.new_customers) == (2, Fraction(1, 2), 1)  # the script
    assert before.nps is None and today.nps == 0
    message_id = f"<digest-{subscription['subscription_id']}-20260314@chexiang.example.cn>"
    assert email["From"].addresses[0].addr_spec == SENDER
    assert email["From"].addresses[0].display_name == "车友汽修"
    assert email["To"] == RECIPIENT
    assert email["Subject"] == "Daily KPI digest · branch b1 · 2026-03-14"
    # A Message-ID this long is folded onto a line of its own; unfolded, it keeps the fold's space.
    assert email["Message-ID"].strip() == message_id
    assert email["Date"] is not None
    assert email.get_content_type() == "multipart/alternative"
    text, html = email.get_body(("plain",)), email.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert text.get_content().splitlines() == [
        "Daily KPI digest · branch b1",
        "Period: 2026-03-14 (Asia/Shanghai), compared with 2026-03-13",
        "",
        *expected_lines(today, before),
        "",
        "Data as of: 2026-03-15 00:30 (Asia/Shanghai)",
        f"Open the dashboard: {DASHBOARD}/dashboard#month=2026-03&span=1&lang=en&branch=b1",
    ]
    page = html.get_content()
    for line in expected_lines(today, before):
        label, figures = line.split(": ", 1)
        assert f'<td style="padding:4px 12px;border-bottom:1px solid #ddd">{label}</td>' in page
        assert f"<b>{figures.split('  ')[0]}</b>" in page
    assert f'href="{DASHBOARD}/dashboard#month=2026-03&amp;span=1&amp;lang=en&amp;branch=b1"' in page
    # Nothing fetched from anywhere when it is opened: no images, scripts, stylesheets or fonts.
    assert not any(tag in page.lower() for tag in ("<img", "<script", "<link", "src=", "url(", "@import"))
    # Figures only: no customer, vehicle, plate or comment reaches a digest.
    raw = mailbox.raw[0].decode()
    assert not any(word in raw for word in ("cust-", "veh-", "wo-", "沪A", "师傅"))

    [sent] = await deliveries(harness, subscription["subscription_id"])
    assert sent == {
        "period_from": "2026-03-14",
        "period_to": "2026-03-15",
        "attempt": 1,
        "attempted_at": "2026-03-15T00:00:00Z",
        "sent_at": "2026-03-15T00:00:00Z",
        "outcome": "sent",
        "reason": None,
        "message_id": message_id,
    }


async def test_a_restart_and_a_replayed_timer_send_nothing_twice(
    mailbox: Mailbox, database_url: str, nats_url: str
) -> None:
    async with analytics_sending_to(mailbox, database_url, nats_url) as first:
        first.clock.set(shanghai(2026, 3, 15, 7))
        subscription = await subscribe(first)  # zh-CN, the default
        await at(first, shanghai(2026, 3, 15, 8))
        # The process dies after the server took the digest and the send was logged, before the timer's
        # commit: the timer is due again, and its next send was never scheduled.
        await first.rows(
            "DELETE FROM timers WHERE kind = 'analytics.digest' AND fired_at IS NULL RETURNING 1"
        )
        await first.rows("UPDATE timers SET fired_at = NULL WHERE kind = 'analytics.digest' RETURNING 1")
    assert len(mailbox.received) == 1

    async with analytics_sending_to(mailbox, database_url, nats_url) as second:
        await at(second, shanghai(2026, 3, 15, 8, 1))
        assert len(mailbox.received) == 1
        await at(second, shanghai(2026, 3, 16, 7, 59))
        assert len(mailbox.received) == 1
        await at(second, shanghai(2026, 3, 16, 8))
        log = await deliveries(second, subscription["subscription_id"])

    first_day, second_day = mailbox.received
    assert first_day["Subject"] == "经营日报 · 门店 b1 · 2026-03-14"
    assert second_day["Subject"] == "经营日报 · 门店 b1 · 2026-03-15"
    assert first_day["Message-ID"].strip() != second_day["Message-ID"].strip()
    body = second_day.get_body(("plain",))
    assert body is not None and "期间: 2026-03-15 (Asia/Shanghai), 对比 2026-03-14" in body.get_content()
    assert [(entry["period_from"], entry["outcome"]) for entry in log] == [
        ("2026-03-14", "sent"),
        ("2026-03-15", "sent"),
    ]


# ---- refusals ----------------------------------------------------------------------------------------------


async def test_a_4xx_is_retried_with_back_off_and_delivered_once(harness: Harness, mailbox: Mailbox) -> None:
    harness.clock.set(shanghai(2026, 3, 15, 7))
    subscription = await subscribe(harness)
    mailbox.data_answers = ["451 4.3.0 Try again later"]

    await at(harness, shanghai(2026, 3, 15, 8))
    assert mailbox.received == []
    await at(harness, shanghai(2026, 3, 15, 8) + timedelta(seconds=4))
    assert mailbox.received == []
    await at(harness, shanghai(2026, 3, 15, 8) + timedelta(seconds=5))  # the timers' first back-off
    await at(harness, shanghai(2026, 3, 15, 9))

    [email] = mailbox.received
    assert email["Subject"] == "经营日报 · 门店 b1 · 2026-03-14"
    log = await deliveries(harness, subscription["subscription_id"])
    assert [(e["attempt"], e["outcome"], e["reason"], e["attempted_at"], e["sent_at"]) for e in log] == [
        (1, "retried", "smtp 451 message refused", "2026-03-15T00:00:00Z", None),
        (2, "sent", None, "2026-03-15T00:00:05Z", "2026-03-15T00:00:05Z"),
    ]
    assert log[1]["message_id"] == email["Message-ID"].strip()


async def test_a_5xx_is_logged_as_failed_and_the_next_day_is_still_sent(
    harness: Harness, mailbox: Mailbox
) -> None:
    harness.clock.set(shanghai(2026, 3, 15, 7))
    subscription = await subscribe(harness)
    mailbox.data_answers = ["554 5.7.1 Message rejected as spam"]

    await at(harness, shanghai(2026, 3, 15, 8))
    await at(harness, shanghai(2026, 3, 15, 9))  # past every back-off: nothing retried
    assert mailbox.received == []
    await at(harness, shanghai(2026, 3, 16, 8))

    [email] = mailbox.received
    assert email["Subject"] == "经营日报 · 门店 b1 · 2026-03-15"
    log = await deliveries(harness, subscription["subscription_id"])
    assert [(e["period_from"], e["attempt"], e["outcome"], e["reason"], e["message_id"]) for e in log] == [
        ("2026-03-14", 1, "failed", "smtp 554 message refused", None),
        ("2026-03-15", 1, "sent", None, email["Message-ID"].strip()),
    ]


# ---- the API -------------------------------------------------------------------------------------------------


async def test_a_manager_subscribes_for_their_own_branches_only(harness: Harness) -> None:
    manager = {"role": "manager", "branches": ("b1",), "sub": "mgr-1"}
    body = {"email": RECIPIENT, "cadence": "weekly", "weekday": 1, "send_time": "07:30"}

    other_branch = await harness.post("/v1/digests", body | {"branch_id": "b2"}, **manager)
    whole_chain = await harness.post("/v1/digests", body, **manager)
    advisor = await harness.post("/v1/digests", body | {"branch_id": "b1"}, role="advisor")
    own = await harness.post("/v1/digests", body | {"branch_id": "b1"}, **manager)
    chain = await harness.post("/v1/digests", body | {"cadence": "monthly", "weekday": None, "month_day": 1})

    assert other_branch.status_code == 403, other_branch.text
    assert other_branch.headers["content-type"] == "application/problem+json"
    assert whole_chain.status_code == 403 and advisor.status_code == 403
    assert own.status_code == 201 and chain.status_code == 201, (own.text, chain.text)
    assert own.json()["branch_id"] == "b1" and own.json()["created_by"] == "mgr-1"
    listed_by_manager = (await harness.get("/v1/digests", **manager)).json()
    listed_by_owner = (await harness.get("/v1/digests")).json()
    assert [d["subscription_id"] for d in listed_by_manager] == [own.json()["subscription_id"]]
    assert len(listed_by_owner) == 2
    chain_id = chain.json()["subscription_id"]
    assert (await harness.get(f"/v1/digests/{chain_id}/deliveries", **manager)).status_code == 404
    assert (
        await harness.client.delete(f"/v1/digests/{chain_id}", headers=harness.auth(**manager))
    ).status_code == 404

    deleted = await harness.client.delete(f"/v1/digests/{chain_id}", headers=harness.auth())
    assert deleted.status_code == 204
    assert [d["subscription_id"] for d in (await harness.get("/v1/digests")).json()] == [
        own.json()["subscription_id"]
    ]
    pending = await harness.rows(
        "SELECT key FROM timers WHERE kind = 'analytics.digest' AND fired_at IS NULL AND cancelled_at IS NULL"
    )
    assert [row["key"].split(":")[0] for row in pending] == [own.json()["subscription_id"]]


async def test_the_next_send_of_each_cadence_is_at_its_local_time(harness: Harness) -> None:
    harness.clock.set(shanghai(2026, 3, 15, 9))  # a Sunday, after 08:00

    daily = await subscribe(harness)
    weekly = await subscribe(harness, cadence="weekly", weekday=1, send_time="07:30")
    monthly = await subscribe(harness, cadence="monthly", month_day=1, send_time="18:05", branch_id=None)

    assert daily["next_send_at"] == "2026-03-16T00:00:00Z"  # Monday 08:00 in Shanghai
    assert weekly["next_send_at"] == "2026-03-15T23:30:00Z"  # Monday 07:30
    assert monthly["next_send_at"] == "2026-04-01T10:05:00Z"
    assert (monthly["timezone"], monthly["language"], monthly["send_time"]) == (
        "Asia/Shanghai",
        "zh-CN",
        "18:05",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "wang.li(at)chexiang.example.cn"}, "body.email"),
        ({"email": "wang.li@chexiang.example.cn\r\nBcc: x@example.cn"}, "body.email"),
        ({"email": "Wang Li <wang.li@chexiang.example.cn>"}, "body.email"),
        ({"send_time": "8:00"}, "body.send_time"),
        ({"cadence": "hourly"}, "body.cadence"),
        ({"cadence": "weekly"}, "body.weekday"),
        ({"cadence": "monthly", "month_day": 31}, "body.month_day"),
        ({"weekday": 3}, "body.weekday"),
        ({"language": "fr"}, "body.language"),
        ({"branch_id": "b.1"}, "body.branch_id"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    harness: Harness, changes: dict[str, Any], field: str
) -> None:
    body = {"email": RECIPIENT, "branch_id": "b1", "cadence": "daily", "send_time": "08:00"} | changes

    response = await harness.post("/v1/digests", body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert (await harness.get("/v1/digests")).json() == []


async def test_a_branch_digest_goes_out_at_eight_on_the_branchs_own_clock(
    harness: Harness, mailbox: Mailbox
) -> None:
    # Urumqi keeps UTC+6: its 08:00 is 10:00 in Shanghai. Its figures stay on the chain's calendar (KPI.md).
    opened = BranchOpened(
        branch_id="b-xj",
        branch_name="乌鲁木齐店",
        address="乌鲁木齐市天山区",
        timezone="Asia/Urumqi",
        opening_hours=(),
        bays=(Bay(bay_id="bay-1", name="1号工位"),),
    )
    await harness.emit_and_wait("workorder", opened, "b-xj", branch_id="b-xj")
    harness.clock.set(shanghai(2026, 3, 15, 7))
    branch = await subscribe(harness, branch_id="b-xj", language="en")
    chain = await subscribe(harness, branch_id=None, language="en")
    assert (branch["timezone"], chain["timezone"]) == ("Asia/Urumqi", "Asia/Shanghai")

    await at(harness, shanghai(2026, 3, 15, 8))
    [chains] = mailbox.received
    assert chains["Subject"] == "Daily KPI digest · whole chain · 2026-03-14"
    await at(harness, shanghai(2026, 3, 15, 9, 59))
    assert len(mailbox.received) == 1  # 07:59 in Urumqi: not yet

    await at(harness, shanghai(2026, 3, 15, 10))
    branchs = mailbox.received[1]
    assert branchs["Subject"] == "Daily KPI digest · branch b-xj · 2026-03-14"
    text = branchs.get_body(("plain",))
    assert text is not None
    assert "Period: 2026-03-14 (Asia/Shanghai), compared with 2026-03-13" in text.get_content().splitlines()
    [sent] = await deliveries(harness, branch["subscription_id"])
    assert sent["sent_at"] == "2026-03-15T02:00:00Z" and sent["outcome"] == "sent"
