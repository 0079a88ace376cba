"""A KPI digest as an e-mail: the headline figures of the period beside the period before, as plain text and
as simple HTML (inline styles, no image, script or stylesheet from anywhere), in zh-CN or English, with a
link to the dashboard. Figures only: a digest names no customer, vehicle or member of staff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from pitlane_analytics.domain.digest_schedule import Cadence, DigestPeriod
from pitlane_analytics.service_layer.answers import Headline, RateView

Language = Literal["zh-CN", "en"]
FigureKind = Literal["count", "rate", "fen", "decimal"]


@dataclass(frozen=True)
class Figure:
    zh: str
    en: str
    kind: FigureKind
    read: Callable[[Headline], int | Decimal | None]


def _rate(read: Callable[[Headline], RateView]) -> Callable[[Headline], Decimal | None]:
    return lambda headline: read(headline).value


FIGURES = (
    Figure("到店客户", "Customers with a visit", "count", lambda h: h.return_rate.denominator),
    Figure("回头率", "Return rate", "rate", _rate(lambda h: h.return_rate)),
    Figure("新客户", "New customers", "count", lambda h: h.new_customers),
    Figure("年均消费", "Spend per year", "fen", lambda h: h.spend_per_year_fen),
    Figure("客户终身价值", "Customer lifetime value", "fen", lambda h: h.ltv_fen),
    Figure("NPS", "NPS", "decimal", lambda h: h.nps),
    Figure("NPS 回答数", "NPS answers", "count", lambda h: h.nps_answers),
    Figure("预约转化率", "Appointment conversion", "rate", _rate(lambda h: h.appointment_conversion)),
    Figure("平均到店间隔（天）", "Days between visits", "decimal", lambda h: h.mean_days_between_visits),
    Figure("提醒有效率", "Reminder effectiveness", "rate", _rate(lambda h: h.reminder_effectiveness)),
    Figure(
        "拒绝项目挽回率", "Declined-work recovery", "rate", _rate(lambda h: h.declined_work_recovery_by_count)
    ),
)

_WORDS: dict[Language, dict[str, str]] = {
    "zh-CN": {
        Cadence.DAILY: "经营日报",
        Cadence.WEEKLY: "经营周报",
        Cadence.MONTHLY: "经营月报",
        "chain": "全连锁",
        "branch": "门店 {branch}",
        "period": "期间",
        "compared": "对比",
        "previous": "上期",
        "change": "变化",
        "as_of": "数据截至",
        "dashboard": "查看驾驶舱",
        "points": " 个百分点",
    },
    "en": {
        Cadence.DAILY: "Daily KPI digest",
        Cadence.WEEKLY: "Weekly KPI digest",
        Cadence.MONTHLY: "Monthly KPI digest",
        "chain": "whole chain",
        "branch": "branch {branch}",
        "period": "Period",
        "compared": "compared with",
        "previous": "previous",
        "change": "change",
        "as_of": "Data as of",
        "dashboard": "Open the dashboard",
        "points": " pp",
    },
}


@dataclass(frozen=True)
class DigestContent:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class FigureLine:
    label: str
    value: str
    previous: str
    change: str


def render_digest(
    *,
    cadence: Cadence,
    branch_id: str | None,
    period: DigestPeriod,
    timezone: ZoneInfo,
    language: Language,
    current: Headline,
    previous: Headline,
    dashboard_url: str,
) -> DigestContent:
    words = _WORDS[language]
    scope = words["chain"] if branch_id is None else words["branch"].format(branch=branch_id)
    this_period = _days(period.start, period.end)
    before = _days(period.previous_start, period.start)
    title = words[cadence]
    lines = [
        FigureLine(
            label=figure.zh if language == "zh-CN" else figure.en,
            value=_shown(figure.kind, figure.read(current)),
            previous=_shown(figure.kind, figure.read(previous)),
            change=_change(figure.kind, figure.read(current), figure.read(previous), words["points"]),
        )
        for figure in FIGURES
    ]
    as_of = (
        "—"
        if current.data_as_of is None
        else current.data_as_of.astimezone(timezone).strftime("%Y-%m-%d %H:%M")
    )
    period_line = f"{words['period']}: {this_period} ({timezone.key}), {words['compared']} {before}"
    as_of_line = f"{words['as_of']}: {as_of} ({timezone.key})"
    link = _dashboard_link(dashboard_url, branch_id, period, language)
    text = "\n".join(
        [
            f"{title} · {scope}",
            period_line,
            "",
            *(
                f"{line.label}: {line.value}  ({words['previous']} {line.previous}, "
                f"{words['change']} {line.change})"
                for line in lines
            ),
            "",
            as_of_line,
            f"{words['dashboard']}: {link}",
            "",
        ]
    )
    cell = 'style="padding:4px 12px;border-bottom:1px solid #ddd"'
    rows = "".join(
        f'<tr><td {cell}>{escape(line.label)}</td><td {cell} align="right"><b>{escape(line.value)}</b></td>'
        f'<td {cell} align="right">{escape(line.previous)}</td>'
        f'<td {cell} align="right">{escape(line.change)}</td></tr>'
        for line in lines
    )
    html = (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:sans-serif;color:#222">'
        f"<h2>{escape(title)} · {escape(scope)}</h2><p>{escape(period_line)}</p>"
        f'<table style="border-collapse:collapse"><tr><th></th><th {cell}>{escape(this_period)}</th>'
        f"<th {cell}>{escape(words['previous'])}</th><th {cell}>{escape(words['change'])}</th></tr>"
        f"{rows}</table>"
        f"<p>{escape(as_of_line)}</p>"
        f'<p><a href="{escape(link)}">{escape(words["dashboard"])}</a></p>'
        "</body></html>\n"
    )
    return DigestContent(subject=f"{title} · {scope} · {this_period}", text=text, html=html)


def _days(start: date, end: date) -> str:
    """One day as itself, several as first – last (the period is half-open: its last day is end − 1)."""
    last = end - timedelta(days=1)
    return start.isoformat() if last == start else f"{start.isoformat()} – {last.isoformat()}"


def _shown(kind: FigureKind, value: int | Decimal | None) -> str:
    if value is None:
        return "—"
    match kind:
        case "count":
            return str(value)
        case "rate":
            return f"{Decimal(value) * 100:.2f}%"
        case "fen":
            return f"¥{Decimal(value).scaleb(-2):,.2f}"
        case "decimal":
            return str(value)


def _change(
    kind: FigureKind, current: int | Decimal | None, previous: int | Decimal | None, points: str
) -> str:
    if current is None or previous is None:
        return "—"
    difference = Decimal(current) - Decimal(previous)
    match kind:
        case "count":
            return f"{difference:+}"
        case "rate":
            return f"{difference * 100:+.2f}{points}"
        case "fen":
            return f"{'+' if difference >= 0 else '-'}¥{abs(difference).scaleb(-2):,.2f}"
        case "decimal":
            return f"{difference:+}"


def _dashboard_link(base_url: str, branch_id: str | None, period: DigestPeriod, language: Language) -> str:
    """The dashboard on the period's month (its view lives in the fragment: `#branch=…&month=…&lang=…`)."""
    view = {"month": period.start.strftime("%Y-%m"), "span": "1", "lang": language}
    if branch_id is not None:
        view["branch"] = branch_id
    return f"{base_url.rstrip('/')}/dashboard#{urlencode(view)}"
