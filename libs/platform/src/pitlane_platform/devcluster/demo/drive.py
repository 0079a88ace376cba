"""`pitlane demo`: a plan (plan.py) played against the running services over their HTTP APIs, as their
frontends would send it, while the services' clocks are steered day by day through the past two years
(ADR 27). Every figure the services then show comes from their own commands, events and consumers."""

from __future__ import annotations

import asyncio
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import write_clock_offset
from pitlane_platform.devcluster.demo.plan import (
    ADD_ONS,
    ADVISORS,
    BAYS_PER_BRANCH,
    BRANCHES,
    SERVICES,
    TECHNICIANS,
    Campaign,
    Customer,
    DemoSize,
    Plan,
    Visit,
    make_plan,
)
from pitlane_platform.settings import DEV_JWT_SECRET

# Requests in flight at once: enough to keep two cores busy, few enough that no service queues for long.
CONCURRENCY = 24
# How long the demo waits for a service to be ready again (its timers caught up) before giving up.
READY_WAIT_S = 120.0
SURVEY_LINK = re.compile(r"/n/s/[A-Za-z0-9_.-]+")
OPENING_HOURS = [{"weekday": day, "opens_at": "09:00", "closes_at": "18:00"} for day in range(1, 8)]


class DemoFailed(Exception):
    """A service refused a request the plan needs; the message names it."""


@dataclass
class DemoReport:
    customers: int = 0
    visits_completed: int = 0
    bookings: int = 0
    no_shows: int = 0
    add_ons: int = 0
    campaigns: int = 0
    nps_answers: int = 0
    revenue_fen: int = 0
    # A completed order with photos, for the README's walkthrough: branch, order id, customer's phone.
    showcase: tuple[str, str, str] | None = None
    seconds: float = 0.0


class SteeredTime:
    """Moves every service's clock (their <PREFIX>CLOCK_OFFSET_FILE) to an instant of the plan's past."""

    def __init__(self, offset_file: Path, timezone: ZoneInfo, first_day: date) -> None:
        self.offset_file = offset_file
        self.timezone = timezone
        self.first_day = first_day

    def move_to(self, day: int, hour: int, minute: int = 0) -> datetime:
        local = datetime.combine(self.first_day + timedelta(days=day), datetime.min.time(), self.timezone)
        at = local.replace(hour=hour, minute=minute).astimezone(UTC)
        write_clock_offset(self.offset_file, at - datetime.now(UTC))
        return at

    def back_to_now(self) -> None:
        write_clock_offset(self.offset_file, timedelta(0))


class Api:
    """The services' HTTP APIs with an owner's token; a refusal is a DemoFailed naming the request."""

    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], token: str) -> None:
        self.http = http
        self.urls = urls
        self.headers = {"Authorization": f"Bearer {token}"}
        self.gate = asyncio.Semaphore(CONCURRENCY)

    async def call(
        self, method: str, service: str, path: str, *, ok: Iterable[int] = (200, 201, 204), **kwargs: Any
    ) -> httpx.Response:
        async with self.gate:
            try:
                answer = await self.http.request(
                    method, self.urls[service] + path, headers=kwargs.pop("headers", self.headers), **kwargs
                )
            except httpx.TransportError as failure:
                raise DemoFailed(
                    f"{service} {method} {path}: {type(failure).__name__} {failure}"
                ) from failure
        if answer.status_code not in set(ok):
            raise DemoFailed(f"{service} {method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer

    async def post(self, service: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        answer = await self.call("POST", service, path, json=body, **kwargs)
        return answer.json() if answer.content else {}


async def run_demo(
    urls: dict[str, str],
    offset_file: Path,
    *,
    size: DemoSize,
    timezone: ZoneInfo,
    say: Callable[[str], None],
) -> DemoReport:
    started = time.monotonic()
    plan = make_plan(size, datetime.now(timezone).date())
    steered = SteeredTime(offset_file, timezone, plan.first_day)
    token = mint_dev_token(
        DEV_JWT_SECRET, role="owner", branches=["*"], sub="demo-owner", ttl=timedelta(hours=12)
    )
    report = DemoReport()
    try:
        # Idle connections are dropped well before uvicorn closes them (5 s): a request sent on a connection
        # the server is closing would fail with nothing to say whether the command was applied.
        limits = httpx.Limits(max_connections=CONCURRENCY * 2, keepalive_expiry=1.0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            player = Player(Api(http, urls, token), plan, steered, report)
            await player.play(say)
    finally:
        steered.back_to_now()
    report.seconds = time.monotonic() - started
    return report


class Player:
    def __init__(self, api: Api, plan: Plan, steered: SteeredTime, report: DemoReport) -> None:
        self.api = api
        self.plan = plan
        self.steered = steered
        self.report = report
        self.photos: dict[str, list[str]] = {}
        self.campaign_ids: dict[int, str] = {}
        self.attribution: dict[int, str] = {}
        self.appointments: dict[int, str] = {}
        # Customers whose survey is due, by phone: the plan's answer, given once their survey arrives.
        self.awaiting_survey: dict[str, list[Visit]] = {}
        self.seen_messages: set[str] = set()

    async def play(self, say: Callable[[str], None]) -> None:
        """Day by day: the clock at 09:00, the day's campaigns, tomorrow's bookings and today's check-ins;
        once every car of the day is checked in, the next day begins while the day's orders go on through
        their stages (a car may be handed back the next morning). Waiting only for check-ins keeps two years
        within minutes; answers to surveys are given every third day, as they arrive."""
        plan = self.plan
        self.steered.move_to(0, 7)
        await self.open_branches()
        await self.set_reminder_rules()
        await self.import_spreadsheet([c for c in plan.customers if c.known and not c.member])
        await _all(self.register(c) for c in plan.customers if c.member)
        self.report.customers = sum(1 for customer in plan.customers if customer.known)
        say(f"demo: 5 branches and the {self.report.customers} customers the chain had on {plan.first_day}")
        reported = time.monotonic()
        trailing: set[asyncio.Task[None]] = set()
        for day in range(plan.size.days):
            self.steered.move_to(day, 9)
            for campaign in plan.campaigns:
                if campaign.day == day:
                    await self.launch(campaign, day)
            today = [visit for visit in plan.visits_on(day) if not visit.no_show]
            bookings = [self.book(visit) for visit in plan.visits_on(day + 1) if visit.booked]
            orders = (await _all([*(self.check_in(visit) for visit in today), *bookings]))[: len(today)]
            trailing |= {
                asyncio.create_task(self.work(visit, order))
                for visit, order in zip(today, orders, strict=True)
            }
            trailing = {task for task in trailing if not _settled(task)}
            if day % 3 == 2:
                await self.until_timers_caught_up()
                await self.answer_surveys(day)
            if time.monotonic() - reported > 10:
                reported = time.monotonic()
                say(
                    f"demo: {plan.first_day + timedelta(days=day)} ({day + 1}/{plan.size.days} days): "
                    f"{self.report.visits_completed} visits, {self.report.nps_answers} NPS answers"
                )
        await _all(trailing)
        self.report.no_shows = sum(1 for visit in plan.visits if visit.no_show)

    async def open_branches(self) -> None:
        for index, (branch_id, name, address) in enumerate(BRANCHES):
            await self.api.post(
                "workorder",
                "/v1/branches",
                {
                    "branch_id": branch_id,
                    "name": name,
                    "address": address,
                    "timezone": self.steered.timezone.key,
                    "opening_hours": OPENING_HOURS,
                    "bays": [
                        {"bay_id": f"bay-{bay}", "name": f"{bay}号工位"}
                        for bay in range(1, BAYS_PER_BRANCH + 1)
                    ],
                    "slot_minutes": 60,
                },
            )
            staff = [(f"{branch_id}-advisor-{n}", ADVISORS[index * 2 + n], "advisor") for n in range(2)]
            staff += [(f"{branch_id}-tech-{n}", TECHNICIANS[index * 2 + n], "technician") for n in range(2)]
            for staff_id, display_name, role in staff:
                await self.api.post(
                    "workorder",
                    f"/v1/branches/{branch_id}/staff",
                    {"staff_id": staff_id, "display_name": display_name, "role": role},
                )
            self.photos[branch_id] = [
                (
                    await self.api.post(
                        "workorder",
                        f"/v1/branches/{branch_id}/media",
                        files={"file": (f"photo-{shade}.png", _png(index, shade), "image/png")},
                    )
                )["content_hash"]
                for shade in range(3)
            ]

    async def set_reminder_rules(self) -> None:
        """The chain's choice of ladders, before it knows a car: a week before a service is due and a week
        after, once a month before a policy expires. Shorter than reminder's defaults, which would double
        the demo's messages and its minutes."""
        await self.api.call("PUT", "reminder", "/v1/rules/maintenance", json={"ladder": [-7, 7]})
        await self.api.call("PUT", "reminder", "/v1/rules/insurance_renewal", json={"ladder": [0]})

    async def register(self, customer: Customer) -> None:
        created = await self.api.post(
            "customer-profile",
            "/v1/customers",
            {
                "full_name": customer.full_name,
                "phone": customer.phone,
                "tags": list(customer.tags),
                "source": "walk_in",
                "membership_tier": "silver",
                "consents": [
                    {"channel": "sms", "purpose": "service", "granted": True},
                    {"channel": "sms", "purpose": "marketing", "granted": True},
                ],
            },
        )
        for vehicle in customer.vehicles:
            await self.api.post(
                "customer-profile",
                "/v1/vehicles",
                {
                    "owner_customer_id": created["id"],
                    "plate": vehicle.plate,
                    "brand": vehicle.brand,
                    "model": vehicle.model,
                    "mileage_km": vehicle.mileage_km,
                    "insurance": [
                        {"coverage": "compulsory", "insurer": "中国平安", "expires_on": insurance.isoformat()}
                        for insurance in (vehicle.insurance_expires_on,)
                        if insurance is not None
                    ],
                },
            )

    async def import_spreadsheet(self, customers: list[Customer]) -> None:
        """The chain's customers as its shops kept them: one CSV, one import."""
        rows = ["full_name,phone,tags,plate,brand,model,mileage_km,insurer,insurance_expires_on"]
        for customer in customers:
            for vehicle in customer.vehicles:
                insurance = vehicle.insurance_expires_on
                rows.append(
                    f"{customer.full_name},{customer.phone},{';'.join(customer.tags)},{vehicle.plate},"
                    f"{vehicle.brand},{vehicle.model},{vehicle.mileage_km},"
                    + (f"中国人保,{insurance}" if insurance else ",")
                )
        imported = await self.api.post(
            "customer-profile",
            "/v1/imports",
            params={"dry_run": "false"},
            files={"file": ("customers.csv", "\n".join(rows).encode(), "text/csv")},
        )
        if imported.get("bad_rows"):
            raise DemoFailed(f"customer-profile refused rows of the import: {imported['problems'][:3]}")

    async def launch(self, campaign: Campaign, day: int) -> None:
        on = self.plan.first_day + timedelta(days=day)
        created = await self.api.post(
            "notification",
            "/v1/campaigns",
            {
                "name": campaign.name,
                "channel": "sms",
                "audience_tags": [campaign.tag],
                "cost_fen": campaign.cost_fen,
                "starts_on": on.isoformat(),
                "ends_on": (on + timedelta(days=30)).isoformat(),
            },
        )
        campaign_id = created["campaign_id"]
        await self.api.post("notification", f"/v1/campaigns/{campaign_id}/launch")
        minted = await self.api.post(
            "workorder", "/v1/attribution-tokens", {"kind": "campaign", "source_id": campaign_id}
        )
        self.campaign_ids[campaign.key] = campaign_id
        self.attribution[campaign.key] = minted["attribution"]
        self.report.campaigns += 1

    async def book(self, visit: Visit) -> None:
        """The day before: online through a campaign's link, else by phone at the front desk."""
        body = {
            "slot_start": _slot(self.plan, visit, self.steered.timezone),
            "customer_name": visit.customer.full_name,
            "phone": visit.customer.phone,
            "plate": visit.vehicle.plate,
            "service_requested": SERVICES[visit.service][0],
            "brand": visit.vehicle.brand,
            "model": visit.vehicle.model,
        }
        if visit.campaign is not None and visit.campaign in self.attribution:
            booked = await self.api.post(
                "workorder",
                f"/v1/public/branches/{visit.branch_id}/appointments",
                {**body, "attribution": self.attribution[visit.campaign]},
                headers=_from_customer(visit),
                ok=(201, 409, 422),
            )
        else:
            booked = await self.api.post(
                "workorder",
                f"/v1/branches/{visit.branch_id}/appointments",
                {**body, "channel": "phone"},
                ok=(201, 409, 422),
            )
        if "appointment_id" in booked:  # a full slot or a holiday: they walk in instead
            self.appointments[visit.key] = booked["appointment_id"]
            self.report.bookings += 1

    async def check_in(self, visit: Visit) -> dict[str, Any]:
        branch = visit.branch_id
        body: dict[str, Any] = {
            "mileage_km": visit.mileage_km(),
            "complaint": SERVICES[visit.service][0],
            "advisor_id": f"{branch}-advisor-{visit.key % 2}",
        }
        appointment = self.appointments.get(visit.key)
        if appointment is not None:
            path = f"/v1/branches/{branch}/appointments/{appointment}/arrival"
        else:
            path = f"/v1/branches/{branch}/work-orders"
            body |= {
                "customer_name": visit.customer.full_name,
                "phone": visit.customer.phone,
                "plate": visit.vehicle.plate,
            }
        body |= {"brand": visit.vehicle.brand, "model": visit.vehicle.model}
        return await self.api.post("workorder", path, body)

    async def work(self, visit: Visit, order: dict[str, Any]) -> None:
        branch = visit.branch_id
        orders = f"/v1/branches/{branch}/work-orders/{order['work_order_id']}"
        technician = {
            "technician_id": f"{branch}-tech-{visit.key % 2}",
            "bay_id": f"bay-{visit.key % BAYS_PER_BRANCH + 1}",
        }
        await self.api.post("workorder", f"{orders}/technicians", technician)
        await self.api.post(
            "workorder",
            f"{orders}/progress",
            {"text": "拆检完成，照片已上传", "attachments": self.photos[branch][: 1 + visit.key % 3]},
        )
        lines: list[dict[str, Any]] = [
            {
                "item_code": code,
                "name": name,
                "category": category,
                "quantity": quantity,
                "unit_price_fen": price,
                **({"cost_fen": cost} if cost is not None else {}),
                "line_total_fen": _line_total(quantity, price),
            }
            for code, name, category, quantity, price, cost in SERVICES[visit.service][1]
        ]
        if visit.add_on is not None:
            item, code, category, price, reason = ADD_ONS[visit.add_on]
            proposed = await self.api.post(
                "workorder",
                f"{orders}/add-ons",
                {
                    "item": item,
                    "item_code": code,
                    "category": category,
                    "price_fen": price,
                    "reason": reason,
                    "photo_hashes": self.photos[branch][:1],
                },
            )
            decision = "approved" if visit.add_on_approved else "declined"
            await self.api.post(
                "workorder",
                f"{orders}/add-ons/{proposed['add_on_id']}/decision",
                {
                    "decision": decision,
                    "method": "phone_call",
                    "estimate_revision_seen": proposed["estimate_revision"],
                },
            )
            self.report.add_ons += 1
            if visit.add_on_approved:
                lines.append(
                    {
                        "item_code": code,
                        "name": item,
                        "category": category,
                        "quantity": "1",
                        "unit_price_fen": price,
                        "line_total_fen": price,
                        "add_on_id": proposed["add_on_id"],
                    }
                )
        await self.api.post("workorder", f"{orders}/quality-check", {"passed": True, "note": "试车正常"})
        total = sum(line["line_total_fen"] for line in lines)
        settlement: dict[str, Any] = {"line_items": lines, "total_fen": total}
        campaign_id = self.campaign_ids.get(visit.campaign) if visit.campaign is not None else None
        if campaign_id is not None and visit.key in self.appointments:
            discount = min(5000, total // 10)
            settlement |= {
                "discounts": [
                    {
                        "kind": "campaign",
                        "amount_fen": discount,
                        "campaign_id": campaign_id,
                        "description": "活动优惠",
                    }
                ],
                "campaign_id": campaign_id,
            }
            total -= discount
            settlement["total_fen"] = total
        settlement["payments"] = [
            {"method": ("wechat_pay", "alipay", "bank_card", "cash")[visit.key % 4], "amount_fen": total}
        ]
        await self.api.post("workorder", f"{orders}/settlement", settlement)
        await self.api.post("workorder", f"{orders}/completion")
        self.report.visits_completed += 1
        self.report.revenue_fen += total
        if visit.nps_score is not None:
            self.awaiting_survey.setdefault(_digits(visit.customer.phone), []).append(visit)
        if self.report.showcase is None and visit.nps_score is not None and visit.nps_score >= 9:
            self.report.showcase = (branch, order["work_order_id"], visit.customer.phone)

    async def until_timers_caught_up(self) -> None:
        """Keep pace with the services: every one ready again, so none has a timer due for more than five
        minutes on its clock (the survey of yesterday's visit has gone out before the customer looks)."""
        for service, url in self.api.urls.items():
            deadline = time.monotonic() + READY_WAIT_S
            while (await self.api.http.get(f"{url}/ready")).status_code != 200:
                if time.monotonic() > deadline:
                    raise DemoFailed(
                        f"{service} is not ready again within {READY_WAIT_S:.0f}s: see pitlane status"
                    )
                await asyncio.sleep(0.1)

    async def answer_surveys(self, day: int) -> None:
        """Customers answer the surveys that reached them: each looks at their own newest messages (as the
        recording provider kept them); one who found none within ten days does not answer."""
        recent = {
            phone: [visit for visit in waiting if day - visit.day <= 10]
            for phone, waiting in self.awaiting_survey.items()
        }
        self.awaiting_survey = {phone: waiting for phone, waiting in recent.items() if waiting}
        await _all(self.look_for_survey(phone, waiting) for phone, waiting in self.awaiting_survey.items())

    async def look_for_survey(self, phone: str, waiting: list[Visit]) -> None:
        answer = await self.api.call(
            "GET", "notification", "/v1/recorded-messages", params={"address": phone, "limit": 5}
        )
        for message in reversed(answer.json()["messages"]):  # oldest first
            link = SURVEY_LINK.search(message.get("body") or "")
            key = message.get("message_id") or f"{message['recorded_at']}{phone}"
            if link is None or key in self.seen_messages or not waiting:
                continue
            self.seen_messages.add(key)
            await self.answer(link.group(0), waiting.pop(0))

    async def answer(self, path: str, visit: Visit) -> None:
        """The plan's answer; a link past its week (the survey waited in the night's queue, or for the next
        look) has expired, and that customer does not answer."""
        assert visit.nps_score is not None
        answered = await self.api.call(
            "POST",
            "notification",
            path,
            data={"score": str(visit.nps_score), "comment": visit.nps_comment},
            headers=_from_customer(visit),
            ok=(200, 303, 403),
        )
        if answered.status_code != 403:
            self.report.nps_answers += 1


async def _all(work: Iterable[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*work))


def _settled(task: asyncio.Task[None]) -> bool:
    """Done; a failed order stops the demo with its reason."""
    if task.done():
        task.result()
        return True
    return False


def _from_customer(visit: Visit) -> dict[str, str]:
    """A customer's own request (public booking, survey answer) comes from their phone, not the demo's
    address: the gateway's X-Forwarded-For, which the services trust from loopback, says which (the public
    routes' limits are per client address)."""
    key = visit.customer.key
    return {"X-Forwarded-For": f"10.{key >> 16 & 255}.{key >> 8 & 255}.{key & 255}"}


def _slot(plan: Plan, visit: Visit, timezone: ZoneInfo) -> str:
    local = datetime.combine(plan.first_day + timedelta(days=visit.day), datetime.min.time(), timezone)
    return local.replace(hour=visit.hour).isoformat()


def _line_total(quantity: str, unit_price_fen: int) -> int:
    # Half up, as the counter rounds (quantities here have at most one decimal).
    tenths = round(float(quantity) * 10)
    return (tenths * unit_price_fen + 5) // 10


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-11:]


def _png(branch: int, shade: int) -> bytes:
    """A small solid-colour PNG: a workshop photo stand-in, different per branch and shot."""
    width = height = 64
    colour = bytes(((40 + 50 * branch) % 256, (90 + 60 * shade) % 256, 160))
    raw = b"".join(b"\x00" + colour * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
