"""The texts Pitlane sends until a chain writes its own (PUT /v1/templates/…): per trigger and locale, one
subject (e-mail) and one body (every channel), and the variables SMS and WeChat templates take.

SMS providers in China send only pre-approved templates: a chain registers its texts with Alibaba Cloud or
Tencent Cloud and sets the approved template code and its parameter names per trigger. Until then the
`provider_template` below is a placeholder that the recording provider accepts and a real one refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pitlane_notification.service_layer.requests import Trigger

DEFAULT_LOCALE = "zh-CN"


@dataclass(frozen=True)
class TemplateText:
    subject: str | None
    body: str
    provider_template: str | None = None
    # Provider parameter name → Jinja expression over the trigger's variables.
    provider_parameters: dict[str, str] = field(default_factory=dict)


def _t(
    trigger: Trigger, zh: tuple[str, str], en: tuple[str, str], **parameters: str
) -> dict[Any, TemplateText]:
    code = f"PITLANE_{trigger.value.upper()}"
    params = {name: f"{{{{ {expression} }}}}" for name, expression in parameters.items()}
    return {
        (trigger, "zh-CN"): TemplateText(zh[0], zh[1], code, params),
        (trigger, "en"): TemplateText(en[0], en[1], code, params),
    }


DEFAULTS: MappingProxyType[tuple[Trigger, str], TemplateText] = MappingProxyType(
    {
        **_t(
            Trigger.APPOINTMENT_BOOKED,
            (
                "预约成功",
                "{{ customer_name }}您好，您已预约{{ branch_name }} {{ slot_start }}的{{ service_requested }}，车牌{{ plate }}。"
                "确认或改约：{{ link }}",
            ),
            (
                "Booking confirmed",
                "Hello {{ customer_name }}, your {{ service_requested }} at {{ branch_name }} is booked for {{ slot_start }} ({{ plate }})."
                " Confirm or move it: {{ link }}",
            ),
            branch="branch_name",
            time="slot_start",
            service="service_requested",
            link="link",
        ),
        **_t(
            Trigger.APPOINTMENT_REMINDER,
            (
                "明日预约提醒",
                "温馨提醒：您明天{{ slot_start }}在{{ branch_name }}有预约（{{ service_requested }}），期待您的光临。"
                "确认或改约：{{ link }}",
            ),
            (
                "Your appointment tomorrow",
                "A reminder: your {{ service_requested }} at {{ branch_name }} is tomorrow at {{ slot_start }}."
                " Confirm or move it: {{ link }}",
            ),
            branch="branch_name",
            time="slot_start",
            link="link",
        ),
        **_t(
            Trigger.APPOINTMENT_SOON,
            (
                "预约即将开始",
                "温馨提醒：您{{ slot_start }}在{{ branch_name }}的预约（{{ service_requested }}）两小时后开始。"
                "确认或改约：{{ link }}",
            ),
            (
                "Your appointment in two hours",
                "A reminder: your {{ service_requested }} at {{ branch_name }} starts at {{ slot_start }}, in two hours."
                " Confirm or move it: {{ link }}",
            ),
            branch="branch_name",
            time="slot_start",
            link="link",
        ),
        **_t(
            Trigger.WAITLIST_OFFER,
            (
                "候补空位",
                "{{ customer_name }}您好，{{ branch_name }} {{ slot_start }}有空位（{{ service_requested }}），"
                "为您保留到{{ until }}：{{ link }}",
            ),
            (
                "A place for you",
                "Hello {{ customer_name }}, a place is free at {{ branch_name }} at {{ slot_start }} ({{ service_requested }}),"
                " held for you until {{ until }}: {{ link }}",
            ),
            branch="branch_name",
            time="slot_start",
            until="until",
            link="link",
        ),
        **_t(
            Trigger.WORK_ORDER_PROGRESS,
            ("车辆维修进度", "您的爱车{{ plate }}有新进度：{{ progress }} 查看照片：{{ link }}"),
            ("Progress on your car", "News on {{ plate }}: {{ progress }} See the photos: {{ link }}"),
            plate="plate",
            link="link",
        ),
        **_t(
            Trigger.ADD_ON_PROPOSED,
            (
                "待您确认的增项",
                "技师建议为{{ plate }}增加：{{ item }}（{{ price }}元），原因：{{ reason }}。请确认：{{ link }}",
            ),
            (
                "Extra work to approve",
                "We suggest for {{ plate }}: {{ item }} ({{ price }} yuan), because {{ reason }}. Approve or decline: {{ link }}",
            ),
            plate="plate",
            item="item",
            price="price",
            link="link",
        ),
        **_t(
            Trigger.WORK_ORDER_COMPLETED,
            (
                "感谢您的光临",
                "{{ customer_name }}您好，您的爱车{{ plate }}已完工交车，本次消费{{ total }}元。感谢您选择{{ branch_name }}！",
            ),
            (
                "Thank you",
                "Hello {{ customer_name }}, {{ plate }} is ready and handed back; the bill was {{ total }} yuan. Thank you for choosing {{ branch_name }}!",
            ),
            plate="plate",
            total="total",
        ),
        **_t(
            Trigger.NPS_SURVEY,
            ("服务评价", "您会向朋友推荐{{ branch_name }}吗？花10秒打个分：{{ link }}"),
            (
                "How did we do?",
                "Would you recommend {{ branch_name }} to a friend? Tell us in 10 seconds: {{ link }}",
            ),
            branch="branch_name",
            link="link",
        ),
        **_t(
            Trigger.NPS_SURVEY_REMINDER,
            ("还差一步：服务评价", "您的评价对我们很重要：您会向朋友推荐{{ branch_name }}吗？{{ link }}"),
            (
                "One question left",
                "Your opinion matters to us: would you recommend {{ branch_name }}? {{ link }}",
            ),
            branch="branch_name",
            link="link",
        ),
        **_t(
            Trigger.REMINDER_DUE,
            (
                "保养提醒",
                "{{ customer_name }}您好，您的爱车{{ plate }}{{ reminder }}。在线预约：{{ link }}"
                " 已在别处完成或稍后提醒：{{ answer_link }}",
            ),
            (
                "Time for your car",
                "Hello {{ customer_name }}, {{ plate }}: {{ reminder }}. Book online: {{ link }}"
                " Done elsewhere, or remind me later: {{ answer_link }}",
            ),
            plate="plate",
            reminder="reminder",
            link="link",
            answer="answer_link",
        ),
        **_t(
            Trigger.CAMPAIGN,
            (
                "{{ campaign_name }}",
                "{{ campaign_name }}：凭券码{{ coupon_code }}到店享优惠，在线预约：{{ link }}",
            ),
            (
                "{{ campaign_name }}",
                "{{ campaign_name }}: show coupon {{ coupon_code }} at the branch. Book online: {{ link }}",
            ),
            campaign="campaign_name",
            coupon="coupon_code",
            link="link",
        ),
        **_t(
            Trigger.STAGE_OVERDUE,
            (
                "工单超时：{{ plate }}",
                "{{ branch_name }}：{{ plate }}的{{ stage }}已超过{{ limit_minutes }}分钟时限（应于{{ due_time }}前完成），请跟进。",
            ),
            (
                "Overdue: {{ plate }}",
                "{{ branch_name }}: {{ stage }} of {{ plate }} is past its {{ limit_minutes }}-minute limit (due {{ due_time }}). Please follow up.",
            ),
            plate="plate",
            stage="stage",
            limit="limit_minutes",
        ),
        **_t(
            Trigger.DIGEST,
            (
                "您有{{ count }}条新消息",
                "您有{{ count }}条新消息：{% for part in parts %}\n{{ loop.index }}. {{ part }}{% endfor %}",
            ),
            (
                "{{ count }} new messages",
                "You have {{ count }} new messages:{% for part in parts %}\n{{ loop.index }}. {{ part }}{% endfor %}",
            ),
            count="count",
        ),
    }
)

# The variables of each trigger besides those every message has, with sample values.
_EXTRA_SAMPLES: dict[Trigger, dict[str, Any]] = {
    Trigger.APPOINTMENT_BOOKED: {"slot_start": "2026-11-16 10:00", "service_requested": "小保养"},
    Trigger.APPOINTMENT_REMINDER: {"slot_start": "2026-11-16 10:00", "service_requested": "小保养"},
    Trigger.APPOINTMENT_SOON: {"slot_start": "2026-11-16 10:00", "service_requested": "小保养"},
    Trigger.WAITLIST_OFFER: {
        "slot_start": "2026-11-16 10:00",
        "service_requested": "小保养",
        "until": "08:30",
    },
    Trigger.WORK_ORDER_PROGRESS: {"progress": "已更换机油"},
    Trigger.ADD_ON_PROPOSED: {"item": "更换前刹车片", "price": "480.00", "reason": "刹车片剩余2mm"},
    Trigger.WORK_ORDER_COMPLETED: {"total": "680.00"},
    Trigger.NPS_SURVEY: {},
    Trigger.NPS_SURVEY_REMINDER: {},
    Trigger.REMINDER_DUE: {
        "reminder": "即将到达保养里程",
        "due_on": "2027-04-11",
        "due_mileage_km": "45000",
        "answer_link": "https://shop.example.cn/r/xyz",
    },
    Trigger.CAMPAIGN: {"campaign_name": "夏季空调清洗季", "coupon_code": "SUMMER-7K2Q"},
    Trigger.DIGEST: {"count": 2, "parts": ["第一条", "第二条"]},
    Trigger.STAGE_OVERDUE: {"stage": "派工", "limit_minutes": "15", "due_time": "09:45"},
}

# What each trigger's templates may use: rendering a chain's template against these at save time finds a
# misspelt variable before any customer would have received a broken message.
SAMPLE_CONTEXT: MappingProxyType[Trigger, dict[str, Any]] = MappingProxyType(
    {
        trigger: {
            "customer_name": "张先生",
            "branch_name": "浦东张江店",
            "plate": "沪A12345",
            "link": "https://shop.example.cn/c/xyz",
            "unsubscribe_url": "https://shop.example.cn/n/u/xyz",
            **extra,
        }
        for trigger, extra in _EXTRA_SAMPLES.items()
    }
)

# What a due reminder says it is about, in the customer's language (the `reminder` variable).
REMINDER_PHRASES: MappingProxyType[tuple[str, str], str] = MappingProxyType(
    {
        ("service_due_by_mileage", "zh-CN"): "即将到达保养里程",
        ("service_due_by_mileage", "en"): "is nearly due for a service by mileage",
        ("service_due_by_date", "zh-CN"): "已到保养时间",
        ("service_due_by_date", "en"): "is due for its regular service",
        ("insurance_renewal", "zh-CN"): "的车险即将到期",
        ("insurance_renewal", "en"): "needs its insurance renewed soon",
        ("annual_inspection", "zh-CN"): "即将到年检时间",
        ("annual_inspection", "en"): "is due for its annual inspection",
        ("declined_work", "zh-CN"): "上次建议的维修项目尚未处理",
        ("declined_work", "en"): "still has the work we recommended last time",
    }
)


def reminder_phrase(kind: str, locale: str) -> str:
    return REMINDER_PHRASES.get((kind, locale)) or REMINDER_PHRASES.get((kind, DEFAULT_LOCALE), kind)
