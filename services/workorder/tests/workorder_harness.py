"""Drives the workorder app over HTTP in-process, against real PostgreSQL and NATS, on a fixed clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
from sqlalchemy import func, select

from pitlane_events import Envelope, decode
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import FixedClock
from pitlane_platform.schema import events, outbox
from pitlane_workorder.bootstrap import Workorder, WorkorderSettings
from platform_flow import stream_messages, wait_until

BRANCH = "b1"
# Monday 16 November 2026, 08:00 in Shanghai: before opening, so the day's slots are all ahead.
MONDAY_8AM = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)


def local(hour: int, minute: int = 0, *, day: int = 16) -> str:
    """A slot start on the branch's local clock (Asia/Shanghai), as an API client sends it."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"


@dataclass
class Harness:
    settings: WorkorderSettings
    service: Workorder
    client: httpx.AsyncClient
    clock: FixedClock

    def auth(
        self, role: str = "advisor", *, sub: str = "amy", branches: tuple[str, ...] = (BRANCH,)
    ) -> dict[str, str]:
        token = mint_dev_token(self.settings, role=role, branches=branches, sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, path: str, json: Any = None, *, role: str = "advisor", sub: str = "amy", **kw: Any
    ) -> httpx.Response:
        headers = {**self.auth(role, sub=sub), **kw.pop("headers", {})}
        return await self.client.post(path, json=json, headers=headers, **kw)

    async def get(self, path: str, *, role: str = "advisor", **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(role), **kw)

    async def counts(self) -> tuple[int, int]:
        """(stored events, outbox rows): what a refused command must leave unchanged."""
        async with self.service.runtime.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(events))
            queued = await session.scalar(select(func.count()).select_from(outbox))
        return int(stored or 0), int(queued or 0)

    async def published(self, *, at_least: int) -> list[Envelope[Any]]:
        """Every event on the WORKORDER stream, once the relay has published every row queued so far.

        The outbox drained is the signal, not a message count: a count can already be reached by earlier
        events while the one under test is still queued. `at_least` checks what the caller expects."""
        connection = await nats.connect(self.settings.nats_url)
        try:
            js = connection.jetstream()

            async def relayed_everything() -> bool:
                async with self.service.runtime.sessions() as session:
                    queued = await session.scalar(
                        select(func.count())
                        .select_from(outbox)
                        .where(outbox.c.published_at.is_(None), outbox.c.parked_at.is_(None))
                    )
                return queued == 0

            await wait_until(relayed_everything)
            found = [decode(message.data) for message in await stream_messages(js, "WORKORDER")]
            assert len(found) >= at_least, f"{len(found)} events published, expected at least {at_least}"
            return found
        finally:
            await connection.close()

    async def open_branch(self, *, bays: int = 3) -> None:
        response = await self.post(
            "/v1/branches",
            {
                "branch_id": BRANCH,
                "name": "浦东张江店",
                "address": "上海市浦东新区张江路1号",
                "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号工位"} for n in range(1, bays + 1)],
            },
            role="manager",
            sub="max",
        )
        assert response.status_code == 201, response.text
        for staff_id, name, role in [
            ("amy", "王芳", "advisor"),
            ("tom", "李师傅", "technician"),
            ("lee", "张师傅", "technician"),
        ]:
            added = await self.post(
                f"/v1/branches/{BRANCH}/staff",
                {"staff_id": staff_id, "display_name": name, "role": role},
                role="manager",
                sub="max",
            )
            assert added.status_code == 201, added.text

    async def book(
        self,
        hour: int = 10,
        *,
        phone: str = "13812345678",
        plate: str = "沪A12345",
        online: bool = False,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "slot_start": local(hour, day=extra.pop("day", 16)),
            "customer_name": "陈先生",
            "phone": phone,
            "plate": plate,
            "service_requested": "小保养",
            **extra,
        }
        if online:
            return await self.client.post(f"/v1/public/branches/{BRANCH}/appointments", json=body)
        return await self.post(f"/v1/branches/{BRANCH}/appointments", body)

    async def attribution(self, kind: str, source_id: str) -> str:
        """The signed token a campaign's or reminder's booking link carries, as a manager mints it."""
        response = await self.post(
            "/v1/attribution-tokens", {"kind": kind, "source_id": source_id}, role="manager", sub="max"
        )
        assert response.status_code == 201, response.text
        return str(response.json()["attribution"])

    async def upload(self, data: bytes, media_type: str = "image/jpeg", *, role: str = "technician") -> str:
        response = await self.post(
            f"/v1/branches/{BRANCH}/media",
            files={"file": ("photo.jpg", data, media_type)},
            role=role,
            sub="tom",
        )
        assert response.status_code == 201, response.text
        return str(response.json()["content_hash"])

    async def walk_in(self) -> str:
        response = await self.post(
            f"/v1/branches/{BRANCH}/work-orders",
            {
                "customer_id": "c-9",
                "vehicle_id": "v-9",
                "plate": "沪B 54321",
                "mileage_km": 88_000,
                "complaint": "空调不制冷",
                "customer_name": "刘女士",
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["work_order_id"])

    def order_path(self, work_order_id: str, command: str = "") -> str:
        return f"/v1/branches/{BRANCH}/work-orders/{work_order_id}" + (f"/{command}" if command else "")

    async def command(self, work_order_id: str, command: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.post(self.order_path(work_order_id, command), json, **kw)


def advance(harness: Harness, **by: float) -> None:
    harness.clock.advance(timedelta(**by))
