"""The dashboard (issue 15): the month-by-month answers it draws (trends and retention cohorts) against figures
worked out from the scripted history in plain Python; the page and its files as a browser gets them; and the
page itself, served by a real HTTP server and drawn by headless Chromium — every chart holding data, no
console error, zh-CN first and English after the switch, a screenshot of each."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import scripted_history as script
from analytics_harness import Harness
from playwright.async_api import ConsoleMessage, Error, Page, Route, async_playwright

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.testing.openapi_check import served_on_loopback

# The scripted history's months: the year up to its March, and April (one visit, 30 minutes into it).
MONTHS = [date(2025 + (3 + i) // 12, (3 + i) % 12 + 1, 1) for i in range(13)]
WHOLE_RANGE = {"from": "2025-04-01", "to": "2026-05-01"}
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
INSTALL_CHROMIUM = (
    "headless Chromium is needed to test the dashboard: apt-get install -y chromium fonts-noto-cjk "
    "(Debian's packages; Playwright cannot download its own browsers here)"
)
CHARTS = {
    "trend-return-rate",
    "trend-nps",
    "trend-spend",
    "trend-new",
    "activity",
    "staff",
    "services",
    "campaigns",
    "reminders",
    "declined",
    "cohorts",
}


# ---- the figures, worked out from the script ------------------------------------------------------------------


def month_of(at: datetime) -> date:
    local = at.astimezone(script.SHANGHAI)
    return date(local.year, local.month, 1)


def days_in(month: date) -> int:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (following - month).days


def visits_in_scope(branch: str | None) -> list[script.Visit]:
    return [v for v in script.VISITS if v.voided_at is None and branch in (None, v.branch)]


def first_visits() -> dict[str, script.Visit]:
    """Each person's first visit anywhere in the chain."""
    firsts: dict[str, script.Visit] = {}
    for visit in sorted((v for v in script.VISITS if v.voided_at is None), key=lambda v: v.completed_at):
        firsts.setdefault(script.person(visit.customer), visit)
    return firsts


def expected_trends(branch: str | None) -> list[dict[str, Any]]:
    visits = visits_in_scope(branch)
    branch_of = {v.work_order: v.branch for v in script.VISITS}
    months = []
    for month in MONTHS:
        in_month = [v for v in visits if month_of(v.completed_at) == month]
        per_customer = Counter(script.person(v.customer) for v in in_month)
        paid = sum(v.paid for v in in_month)
        scores = [
            s.score
            for s in script.SURVEYS
            if s.answered_at is not None
            and s.score is not None
            and month_of(s.answered_at) == month
            and branch in (None, branch_of[s.work_order])
        ]
        promoters, detractors = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
        returning = sum(1 for n in per_customer.values() if n >= 2)
        months.append(
            {
                "month": month.isoformat(),
                "visits": len(in_month),
                "paid_fen": paid,
                "customers_with_visits": len(per_customer),
                "returning_customers": returning,
                "return_rate": script.ratio(returning, len(per_customer))["value"],
                "spend_per_year_fen": round(Fraction(paid, len(per_customer)) * 365 / days_in(month))
                if per_customer
                else None,
                "new_customers": sum(
                    1
                    for first in first_visits().values()
                    if month_of(first.completed_at) == month and branch in (None, first.branch)
                ),
                "nps": script.to_places(Fraction(100 * (promoters - detractors), len(scores)), 1)
                if scores
                else None,
                "nps_answers": len(scores),
            }
        )
    return months


def expected_cells(branch: str | None) -> list[dict[str, Any]]:
    cohorts: dict[date, set[str]] = {}
    for customer, first in first_visits().items():
        if month_of(first.completed_at) in MONTHS and branch in (None, first.branch):
            cohorts.setdefault(month_of(first.completed_at), set()).add(customer)
    came = {(script.person(v.customer), month_of(v.completed_at)) for v in visits_in_scope(branch)}
    cells = []
    for cohort_month, customers in sorted(cohorts.items()):
        start = MONTHS.index(cohort_month)
        for later, month in enumerate(MONTHS[start:]):
            retained = sum(1 for customer in customers if (customer, month) in came)
            cells.append(
                {
                    "cohort_month": cohort_month.isoformat(),
                    "cohort_customers": len(customers),
                    "months_later": later,
                    "month": month.isoformat(),
                    "retained_customers": retained,
                    "retention": script.ratio(retained, len(customers))["value"],
                }
            )
    return cells


def decimals(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {**row, **{name: None if row[name] is None else Decimal(row[name]) for name in fields}}


# ---- the answers ----------------------------------------------------------------------------------------------


async def test_monthly_trends_and_retention_cohorts_follow_the_history(harness: Harness) -> None:
    await harness.deliver(script.events(harness))

    for branch in (None, "b1", "b2"):
        scope = {**WHOLE_RANGE, **({"branch_id": branch} if branch else {})}
        trends = await harness.kpi("/v1/kpis/trends", **scope)
        cohorts = await harness.kpi("/v1/kpis/cohorts", **scope)
        march = await harness.kpi("/v1/kpis", **{**scope, "from": "2026-03-01", "to": "2026-04-01"})

        expected = expected_trends(branch)
        assert [decimals(row, "return_rate", "nps") for row in trends["months"]] == expected, branch
        assert [decimals(cell, "retention") for cell in cohorts["cells"]] == expected_cells(branch), branch
        assert [c["customers"] for c in cohorts["cohorts"]] == [m["new_customers"] for m in expected]
        # A month's point is that month's own KPI answer.
        [point] = [row for row in trends["months"] if row["month"] == "2026-03-01"]
        assert point["return_rate"] == march["return_rate"]["value"] and point["nps"] == march["nps"]
        assert (point["new_customers"], point["spend_per_year_fen"]) == (
            march["new_customers"],
            march["spend_per_year_fen"],
        )
        for answer in (trends, cohorts):
            assert answer["period"]["from"] == "2025-04-01" and answer["branch_id"] == branch
            assert answer["events"] > 0 and answer["data_as_of"] is not None


async def test_the_trends_export_as_csv_one_row_a_month(harness: Harness) -> None:
    response = await harness.get("/v1/kpis/trends", params={**WHOLE_RANGE, "format": "csv"})

    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("month,visits,paid_fen") and len(lines) == 1 + len(MONTHS)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-15", "to": "2026-04-01"}, "query.from"),
        ({"from": "2026-03-01", "to": "2026-03-31"}, "query.to"),
        ({"from": "2023-01-01", "to": "2026-02-01"}, "query.to"),  # 37 months
    ],
)
@pytest.mark.parametrize("path", ["/v1/kpis/trends", "/v1/kpis/cohorts"])
async def test_trends_and_cohorts_take_whole_months_only(
    harness: Harness, path: str, params: dict[str, str], field: str
) -> None:
    response = await harness.get(path, params=params)

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_the_branch_picker_offers_the_branches_a_token_may_read(harness: Harness) -> None:
    await harness.deliver(script.events(harness))

    owner = await harness.get("/v1/branches")
    manager = await harness.get("/v1/branches", role="manager", branches=("b2",))
    anonymous = await harness.client.get("/v1/branches")

    assert owner.json() == {"chain_wide": True, "branches": ["b1", "b2"]}
    assert manager.json() == {"chain_wide": False, "branches": ["b2"]}
    assert anonymous.status_code == 401


# ---- the page and its files -----------------------------------------------------------------------------------


async def test_the_page_is_a_shell_of_this_origin_that_names_its_files_by_hash(harness: Harness) -> None:
    page = await harness.client.get("/dashboard")
    behind_gateway = await harness.client.get("/dashboard", headers={"X-Forwarded-Host": "localhost:8443"})

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy and "unsafe" not in policy
    assert '<meta name="pitlane-api-base" content="">' in page.text
    assert '<meta name="pitlane-api-base" content="/api/analytics">' in behind_gateway.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere

    for name, media_type in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("vendor/echarts/echarts.min.js", "text/javascript; charset=utf-8"),
    ]:
        [version] = re.findall(rf'"/dashboard/static/{re.escape(name)}\?v=([0-9a-f]{{16}})"', page.text)
        named = await harness.client.get(f"/dashboard/static/{name}?v={version}")
        unversioned = await harness.client.get(f"/dashboard/static/{name}")
        revalidated = await harness.client.get(
            f"/dashboard/static/{name}", headers={"If-None-Match": named.headers["etag"]}
        )
        assert named.status_code == 200 and named.headers["content-type"] == media_type
        assert named.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert unversioned.headers["cache-control"] == "no-cache"
        assert revalidated.status_code == 304 and not revalidated.content

    for path in ["/dashboard/static/../bootstrap.py", "/dashboard/static/vendor/echarts/LICENSE"]:
        assert (await harness.client.get(path)).status_code == 404


# ---- in a browser ---------------------------------------------------------------------------------------------


async def drawn(page: Page) -> None:
    """Wait until the page has drawn its answers, or given up (its status line says why)."""
    await page.locator("body:is([data-state=ready], [data-state=failed], [data-state=signed-out])").wait_for()
    assert await page.locator("body").get_attribute("data-state") == "ready", await page.inner_text("#status")


async def chart_data(page: Page) -> dict[str, int]:
    """Per chart on the page: how many data its first series holds."""
    counts: dict[str, int] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-chart]')].map((element) => {
            const chart = echarts.getInstanceByDom(element);
            return [element.dataset.chart, chart ? chart.getOption().series[0].data.length : -1];
        }))"""
    )
    return counts


async def texts(page: Page, selector: str) -> list[str]:
    found: list[str] = await page.locator(selector).all_inner_texts()
    return found


async def test_the_dashboard_draws_every_figure_in_headless_chromium(
    harness: Harness, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(INSTALL_CHROMIUM)
    await harness.deliver(script.events(harness))
    owner = mint_dev_token(harness.settings, role="owner", branches=["*"], sub="olivia")
    manager = mint_dev_token(harness.settings, role="manager", branches=["b2"], sub="max")
    problems: list[str] = []

    def console_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def page_error(error: Error) -> None:
        problems.append(str(error))

    async with served_on_loopback(harness.service.app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", console_error)
            page.on("pageerror", page_error)

            await page.goto(f"{base}/dashboard#token={owner}&month=2026-03&span=1")
            await drawn(page)

            assert "token" not in await page.evaluate("location.hash")
            counts = await chart_data(page)
            assert set(counts) == CHARTS and all(count > 0 for count in counts.values()), counts
            assert await page.locator("h1").inner_text() == "数据决策驾驶舱"
            assert "员工排行榜" in await texts(page, "h2")
            assert await page.locator("#branch option").all_inner_texts() == ["全连锁", "b1", "b2"]
            scopes = await texts(page, ".scope")
            assert "2026-03-01 – 2026-03-31 · 全连锁 · Asia/Shanghai" in scopes
            assert "2025-04-01 – 2026-03-31 · 全连锁 · Asia/Shanghai" in scopes  # trends, cohorts
            assert all(text.startswith("数据截至: ") for text in await texts(page, ".as-of"))
            assert len(await texts(page, ".as-of")) == len(scopes) == 9
            await page.screenshot(path=tmp_path / "dashboard-zh-CN.png", full_page=True)

            await page.click("#language")

            assert await page.locator("h1").inner_text() == "Decision dashboard"
            assert "Staff leaderboard" in await texts(page, "h2")
            assert all(text.startswith("Data as of: ") for text in await texts(page, ".as-of"))
            assert "2026-03-01 – 2026-03-31 · Whole chain · Asia/Shanghai" in await texts(page, ".scope")
            counts = await chart_data(page)
            assert set(counts) == CHARTS and all(count > 0 for count in counts.values()), counts
            await page.screenshot(path=tmp_path / "dashboard-en.png", full_page=True)

            # A manager sees their own branch only, in a tab of their own.
            branch_page = await browser.new_page(viewport={"width": 1280, "height": 900})
            branch_page.on("console", console_error)
            branch_page.on("pageerror", page_error)
            await branch_page.goto(f"{base}/dashboard#token={manager}&month=2026-03&span=1")
            await drawn(branch_page)
            assert await branch_page.locator("#branch option").all_inner_texts() == ["b2"]
            assert "2026-03-01 – 2026-03-31 · b2 · Asia/Shanghai" in await texts(branch_page, ".scope")

            # Where campaign ROI answers with incremental revenue (a control group's), it is drawn and listed.
            async def with_incremental_revenue(route: Route) -> None:
                response = await route.fetch()
                answer = await response.json()
                for campaign in answer["campaigns"]:
                    campaign["incremental_revenue_fen"] = (
                        12_345 if campaign["campaign_id"] == "camp1" else None
                    )
                await route.fulfill(response=response, json=answer)

            await page.route("**/v1/kpis/campaign-roi?*", with_incremental_revenue)
            await page.reload()
            await drawn(page)
            rows = await page.locator("#campaign-table tbody tr").all_inner_texts()
            assert rows[0].endswith("CN¥123.45") and rows[1].endswith("no control group"), rows
            series = await page.evaluate(
                "() => echarts.getInstanceByDom(document.querySelector('[data-chart=campaigns]'))"
                ".getOption().series.map((series) => series.data)"
            )
            assert series[2] == [123.45, None]
        finally:
            await browser.close()

    assert problems == []
    assert (tmp_path / "dashboard-zh-CN.png").stat().st_size > 10_000
