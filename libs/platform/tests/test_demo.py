"""`pitlane up --demo` (what `make up` runs) on an empty data directory plays the demo chain through the real
services on real servers; what the services then show is what the plan made (ADR 27). Small size: the full
one is measured by hand (README, "The demo chain")."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.devcluster import read_state
from pitlane_platform.devcluster.demo.plan import SMALL, make_plan
from pitlane_platform.embedded import free_port
from pitlane_platform.logging import LINK_TOKEN_SEGMENT
from pitlane_platform.settings import DEV_JWT_SECRET
from platform_flow import server_data_dir

pytestmark = pytest.mark.slow

PITLANE = str(Path(sys.executable).parent / "pitlane")
DEMO_TIMEOUT_S = 280
SHANGHAI = ZoneInfo("Asia/Shanghai")


class UpWithDemo:
    def __init__(self, data_dir: Path, *arguments: str) -> None:
        environment = {
            k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "PITLANE_DEMO")
        }
        self.process = subprocess.Popen(
            [PITLANE, "up", "--data-dir", str(data_dir), "--gateway-port", str(free_port()), *arguments],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, beginning: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            self.output.append(line)
            assert not line.startswith("demo: stopped"), "".join(self.output)
            if line.startswith(beginning):
                return line
        pytest.fail(f"no line {beginning!r} within {timeout_s}s:\n{''.join(self.output[-40:])}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def test_make_up_on_an_empty_data_directory_plays_the_demo_into_every_projection(tmp_path: Path) -> None:
    with server_data_dir() as scratch:
        data_dir = scratch / "pitlane"
        today = datetime.now(SHANGHAI).date()
        up = UpWithDemo(data_dir, "--demo", "--demo-size", "small")
        try:
            up.wait_for("demo: every relay", DEMO_TIMEOUT_S)
            played = next(line for line in up.output if re.match(r"demo: \d+ visits", line))
            up.wait_for("  customer page", 30)
            check_logs_keep_links_secret(up.output)
            state = read_state(data_dir)
            assert state is not None
            assert datetime.now(SHANGHAI).date() == today, "the test ran over midnight: the plan moved"
            check_projections(state, played, "".join(up.output))
        finally:
            up.stop()
        # A second start on the same data directory keeps the chain and plays nothing again.
        again = UpWithDemo(data_dir, "--demo", "--demo-size", "small")
        try:
            assert again.wait_for("demo: not played", 60)
        finally:
            again.stop()


def check_logs_keep_links_secret(output: list[str]) -> None:
    """The demo answered surveys at /n/s/<token> and booked through links: no access log line, and no token
    in any line but the customer page `pitlane up` prints for the developer on purpose. The wait for the
    projections holds one NATS connection: asyncio's eof_received warning (on closing one, over TLS) once."""
    assert not [line for line in output if "uvicorn.access" in line]
    assert not [
        line for line in output if LINK_TOKEN_SEGMENT.search(line) and not line.startswith("  customer page")
    ]
    settling = output[
        next(i for i, line in enumerate(output) if "waiting for the projections" in line) : next(
            i for i, line in enumerate(output) if line.startswith("demo: every relay")
        )
    ]
    assert sum("eof_received" in line for line in settling) <= 1, "".join(settling)


def check_projections(state: dict, played: str, output: str) -> None:  # type: ignore[type-arg]
    plan = make_plan(SMALL, datetime.now(SHANGHAI).date())
    completed = [visit for visit in plan.visits if not visit.no_show]
    figures = re.match(r"demo: (\d+) visits, (\d+) bookings .* (\d+) NPS answers, ¥([\d,.]+) revenue", played)
    assert figures is not None, played
    visits, bookings, answers = (int(figures.group(n)) for n in (1, 2, 3))
    assert visits == len(completed) > 20
    assert answers > 0
    assert Path(state["clock_offset_file"]).read_text() == "0"  # the services are back in the present

    urls = {name: child["http_url"] for name, child in state["services"].items()}
    token = mint_dev_token(
        DEV_JWT_SECRET, role="owner", branches=["*"], sub="test", ttl=timedelta(minutes=30)
    )
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30, headers=auth) as http:
        # customer-profile's 360 of every customer who came: each visit the plan completed, its spend.
        per_phone = Counter(visit.customer.phone for visit in completed)
        for number, (phone, count) in enumerate(per_phone.items()):
            # Lookups are limited per user (30 a minute): each customer is looked up by a user of their own.
            reader = mint_dev_token(
                DEV_JWT_SECRET,
                role="owner",
                branches=["*"],
                sub=f"owner-{number}",
                ttl=timedelta(minutes=5),
            )
            view = http.get(
                f"{urls['customer-profile']}/v1/lookup",
                params={"phone": phone},
                headers={"Authorization": f"Bearer {reader}"},
            ).json()
            assert "figures" in view, (phone, view)
            assert view["figures"]["visit_count"] == count, (phone, view["figures"])
            assert len(view["visits"]) == count
            assert (
                view["figures"]["total_spend_fen"] == sum(visit["total_fen"] for visit in view["visits"]) > 0
            )

        # analytics' headline over the whole demo: every answer, booking and new customer.
        first = plan.first_day.replace(day=1)
        headline = http.get(
            f"{urls['analytics']}/v1/kpis",
            params={
                "from": first.isoformat(),
                "to": (datetime.now(SHANGHAI).date() + timedelta(days=1)).isoformat(),
            },
        ).json()
        assert headline["nps_answers"] == answers
        assert headline["nps_response_rate"]["numerator"] == answers
        assert headline["appointment_conversion"]["denominator"] == bookings
        assert headline["new_customers"] == len(per_phone)
        assert headline["nps"] is not None and headline["spend_per_year_fen"] > 0

        # The customer's page of the showcased order shows its photos.
        link = re.search(r"customer page  (\S+)", output)
        assert link is not None
        page_path = "/c/" + link.group(1).split("/c/", 1)[1]
        page = httpx.get(f"{urls['workorder']}{page_path}", timeout=30)
        assert page.status_code == 200
        photos = re.findall(r'<img src="(/c/[^"]+/media/sha256:[0-9a-f]{64})"', page.text)
        assert photos
        photo = httpx.get(f"{urls['workorder']}{photos[0]}", timeout=30)
        assert photo.status_code == 200 and photo.content.startswith(b"\x89PNG")
