"""The demo chain as a plan: who comes when, with which car, for what, and what they answer — worked out from
a seed before a single request is sent, so the same size gives the same chain (ADR 27). Pure: no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

BRANCHES = (
    ("xuhui", "徐汇漕溪店", "上海市徐汇区漕溪北路88号"),
    ("pudong", "浦东张江店", "上海市浦东新区张江路1号"),
    ("minhang", "闵行莘庄店", "上海市闵行区莘庄镇莘松路380号"),
    ("jingan", "静安寺店", "上海市静安区南京西路1618号"),
    ("hangzhou", "杭州西湖店", "浙江省杭州市西湖区文三路259号"),
)
BAYS_PER_BRANCH = 4
ADVISORS = ("王芳", "刘洋", "陈静", "杨帆", "赵敏", "黄磊", "周婷", "吴昊", "徐丽", "孙强")
TECHNICIANS = (
    "李师傅",
    "张师傅",
    "马师傅",
    "胡师傅",
    "郭师傅",
    "何师傅",
    "高师傅",
    "林师傅",
    "罗师傅",
    "郑师傅",
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红建国志飞鹏辉斌宇浩凯晨欣怡子涵梓轩思雨嘉"
CARS = (
    ("大众", "朗逸"),
    ("丰田", "卡罗拉"),
    ("本田", "雅阁"),
    ("日产", "轩逸"),
    ("别克", "英朗"),
    ("大众", "帕萨特"),
    ("丰田", "凯美瑞"),
    ("比亚迪", "秦PLUS"),
    ("吉利", "帝豪"),
    ("宝马", "3系"),
    ("奔驰", "C级"),
    ("奥迪", "A4L"),
    ("长安", "CS75"),
    ("哈弗", "H6"),
    ("特斯拉", "Model 3"),
)
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
# Customer-profile tags as notification's audience_tags name them (codes, not prose).
TAGS = ("price-sensitive", "quality-first", "fleet", "new-owner")
# What a visit is for: complaint, its lines (code, name, category, quantity, unit price,
# cost) in fen, and its share of visits.
SERVICES = (
    (
        "小保养",
        (
            ("OIL-5W30", "机油 5W-30 4L", "parts", "1", 38000, 21000),
            ("FLT-OIL", "机油滤清器", "parts", "1", 6000, 2500),
            ("LAB-MNT", "保养工时", "labour", "1", 8000, None),
        ),
        50,
    ),
    (
        "大保养",
        (
            ("OIL-5W30", "机油 5W-30 4L", "parts", "1", 38000, 21000),
            ("FLT-SET", "三滤套装", "parts", "1", 32000, 15000),
            ("SPK-PLG", "火花塞(4支)", "parts", "1", 36000, 18000),
            ("LAB-MNT", "保养工时", "labour", "2", 8000, None),
        ),
        15,
    ),
    (
        "刹车异响检查",
        (
            ("BRK-PAD", "前刹车片", "parts", "1", 48000, 30000),
            ("LAB-BRK", "刹车工时", "labour", "1.5", 12000, None),
        ),
        10,
    ),
    (
        "更换轮胎",
        (
            ("TYR-205", "轮胎 205/55R16", "parts", "2", 52000, 36000),
            ("LAB-TYR", "拆装动平衡", "labour", "2", 5000, None),
        ),
        10,
    ),
    (
        "空调不制冷",
        (
            ("AC-GAS", "空调冷媒加注", "parts", "1", 28000, 9000),
            ("LAB-AC", "空调检修工时", "labour", "1", 15000, None),
        ),
        7,
    ),
    (
        "钣金喷漆",
        (
            ("PNT-PNL", "单面喷漆", "parts", "1", 90000, 40000),
            ("LAB-PNT", "钣喷工时", "labour", "3", 15000, None),
        ),
        8,
    ),
)
ADD_ONS = (
    ("更换空调滤芯", "FLT-AC", "parts", 16000, "滤芯发黑，异味"),
    ("更换雨刮片", "WPR-SET", "parts", 12000, "雨刮老化，刮不干净"),
    ("更换刹车油", "BRK-FLD", "parts", 28000, "刹车油含水量超标"),
    ("四轮定位", "LAB-ALN", "labour", 22000, "轮胎偏磨"),
)
COMMENTS = {
    "promoter": ("服务很专业，进度照片很清楚", "师傅很细心，价格透明", "预约方便，准时交车"),
    "passive": ("还可以，等待时间有点长", "整体不错", ""),
    "detractor": ("等了太久", "价格偏贵，解释不够", "交车时车没洗干净"),
}


@dataclass(frozen=True)
class DemoSize:
    customers: int
    days: int
    # The share of customers the chain already has on day one; the others
    # walk in or book over the two years and are introduced by workorder.
    known_share: float = 0.6
    # Of those, the members: registered one by one with their consents (campaigns reach only them); the
    # others come in one spreadsheet import, without consent (customer-profile imports none).
    member_share: float = 0.3
    lapsed_share: float = 0.5
    churn: float = 0.3  # the chance that a visit is the customer's last
    campaigns: int = 8


# Sized to the five minutes of `make up` on two cores (README, "The demo chain"): each visit costs the
# system about a third of a core-second (its commands, every consumer's reaction, its messages), a customer
# in the import next to nothing, so the chain has many customers and its shops' usual share of lapsed ones.
FULL = DemoSize(customers=2000, days=730, known_share=0.88, member_share=0.1, lapsed_share=0.9, churn=0.55)
SMALL = DemoSize(customers=40, days=45, campaigns=1)


@dataclass(frozen=True)
class Vehicle:
    plate: str
    brand: str
    model: str
    mileage_km: int  # at the start of the demo
    km_per_day: int
    insurance_expires_on: date | None  # None: the spreadsheet did not say


@dataclass(frozen=True)
class Customer:
    key: int
    full_name: str
    phone: str
    home_branch: str
    known: bool  # the chain has them before the first day: imported from its spreadsheet, or a member
    member: bool  # registered at the counter with their consents, marketing included
    tags: tuple[str, ...]
    vehicles: tuple[Vehicle, ...]


@dataclass(frozen=True)
class Visit:
    key: int
    customer: Customer
    vehicle: Vehicle
    branch_id: str
    day: int  # days after the first day
    hour: int  # local hour of the slot or arrival
    booked: bool
    campaign: int | None  # index of the campaign whose link it was booked through
    no_show: bool
    service: int  # index in SERVICES
    add_on: int | None  # index in ADD_ONS
    add_on_approved: bool
    nps_score: int | None  # None: does not answer the survey
    nps_comment: str

    def mileage_km(self) -> int:
        return self.vehicle.mileage_km + self.vehicle.km_per_day * self.day


@dataclass(frozen=True)
class Campaign:
    key: int
    day: int
    name: str
    tag: str
    cost_fen: int


@dataclass
class Plan:
    first_day: date
    size: DemoSize
    customers: list[Customer] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    _by_day: dict[int, list[Visit]] = field(default_factory=dict)

    def visits_on(self, day: int) -> list[Visit]:
        if not self._by_day:
            for visit in self.visits:
                self._by_day.setdefault(visit.day, []).append(visit)
        return self._by_day.get(day, [])


def make_plan(size: DemoSize, today: date, seed: int = 2026) -> Plan:
    rng = random.Random(seed)
    plan = Plan(first_day=today - timedelta(days=size.days), size=size)
    plan.campaigns = [
        Campaign(
            key=index,
            day=int((index + 0.5) * size.days / size.campaigns),
            name=(
                "春季保养节",
                "五一自驾检测",
                "夏季空调季",
                "国庆出行关爱",
                "双十一保养套餐",
                "冬季安全检查",
            )[index % 6],
            tag=TAGS[index % 2],
            cost_fen=rng.randrange(200_000, 800_000, 10_000),
        )
        for index in range(size.campaigns)
    ]
    phones: set[str] = set()
    plates: set[str] = set()
    for key in range(size.customers):
        customer = _customer(rng, key, size, today, phones, plates)
        plan.customers.append(customer)
        plan.visits += _visits_of(rng, customer, size, plan.campaigns, len(plan.visits))
    plan.visits.sort(key=lambda visit: (visit.day, visit.hour, visit.key))
    return plan


def _customer(
    rng: random.Random, key: int, size: DemoSize, today: date, phones: set[str], plates: set[str]
) -> Customer:
    phone = _unique(phones, lambda: f"1{rng.choice('3589')}{rng.randrange(10)}{rng.randrange(10**8):08d}")
    vehicles = tuple(
        Vehicle(
            plate=_unique(
                plates,
                lambda: (
                    f"{rng.choice('沪沪沪沪浙苏')}{rng.choice(PLATE_LETTERS)}"
                    + "".join(rng.choice(PLATE_LETTERS + "0123456789") for _ in range(5))
                ),
            ),
            brand=(car := rng.choice(CARS))[0],
            model=car[1],
            mileage_km=rng.randrange(3_000, 90_000),
            km_per_day=rng.randrange(15, 70),
            insurance_expires_on=today + timedelta(days=rng.randrange(365)) if rng.random() < 0.4 else None,
        )
        for _ in range(2 if rng.random() < 0.1 else 1)
    )
    return Customer(
        key=key,
        full_name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
        phone=phone,
        home_branch=rng.choice(BRANCHES)[0],
        known=(known := rng.random() < size.known_share),
        member=known and rng.random() < size.member_share,
        tags=tuple(tag for tag in TAGS if rng.random() < 0.3),
        vehicles=vehicles,
    )


def _visits_of(
    rng: random.Random, customer: Customer, size: DemoSize, campaigns: list[Campaign], numbered: int
) -> list[Visit]:
    """Known customers come from the start, new ones from a day of their own; each comes back after five to
    ten months, and about one in three drifts away after each visit (the return rate has something to show).
    Half the spreadsheet's customers never come back at all (the lapsed ones campaigns are for)."""
    visits: list[Visit] = []
    if customer.known and not customer.member and rng.random() < size.lapsed_share:
        return visits
    day = rng.randrange(0, size.days // 3) if customer.known else rng.randrange(0, size.days - 1)
    while day < size.days - 1:
        vehicle = rng.choice(customer.vehicles)
        booked = rng.random() < 0.45
        campaign = next(
            (
                c.key
                for c in campaigns
                if c.tag in customer.tags and 0 <= day - c.day <= 30 and rng.random() < 0.5
            ),
            None,
        )
        service = rng.choices(range(len(SERVICES)), weights=[s[2] for s in SERVICES])[0]
        score = _score(rng) if rng.random() < 0.45 else None
        visits.append(
            Visit(
                key=numbered + len(visits),
                customer=customer,
                vehicle=vehicle,
                branch_id=customer.home_branch if rng.random() < 0.85 else rng.choice(BRANCHES)[0],
                day=day,
                hour=rng.randrange(9, 17),
                booked=booked or campaign is not None,
                campaign=campaign,
                no_show=booked and rng.random() < 0.07,
                service=service,
                add_on=rng.randrange(len(ADD_ONS)) if rng.random() < 0.25 else None,
                add_on_approved=rng.random() < 0.6,
                nps_score=score,
                nps_comment=rng.choice(COMMENTS[_nps_kind(score)]) if score is not None else "",
            )
        )
        if rng.random() < size.churn:
            break
        day += rng.randrange(150, 300)
    return visits


def _score(rng: random.Random) -> int:
    return rng.choices(range(11), weights=(1, 1, 1, 1, 2, 3, 4, 8, 14, 30, 35))[0]


def _nps_kind(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _unique(taken: set[str], draw) -> str:  # type: ignore[no-untyped-def]
    while (value := draw()) in taken:
        pass
    taken.add(value)
    return value
