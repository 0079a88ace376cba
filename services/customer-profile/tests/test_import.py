"""Importing a shop's spreadsheet: a dry run reports each bad row by number and reason and stores nothing;
a real run applies the good rows; running the same file again adds nothing."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from profile_testing import Service, make_vin, upload
from sqlalchemy import func, select

from pitlane_customer_profile.adapters.tables import customers, vehicles
from pitlane_platform.schema import events

HEADER = [
    "姓名",
    "手机",
    "性别",
    "生日",
    "标签",
    "车牌",
    "VIN",
    "品牌",
    "车型",
    "年款",
    "里程",
    "保险公司",
    "保险到期",
]


def good_row(n: int, phone_of: int | None = None) -> list[str]:
    return [
        f"客户{n}",
        f"139{(phone_of if phone_of is not None else n):08d}",
        "男" if n % 2 else "女",
        "1985-06-01",
        "注重品质;老客户" if n % 3 == 0 else "",
        f"沪A{n:05d}",
        make_vin(n),
        "大众",
        "朗逸",
        "2019",
        str(10_000 + n),
        "中国人保",
        "2027-05-01",
    ]


def spreadsheet(rows: int, every_bad: int) -> tuple[list[list[str]], dict[int, str]]:
    """`rows` data rows; every `every_bad`-th is bad in one of five ways. Returns the rows and the bad rows'
    spreadsheet numbers (header = row 1) with the field that is wrong. Every 10th good row is a second car
    of the row before it (same phone)."""
    data: list[list[str]] = []
    bad: dict[int, str] = {}
    for n in range(rows):
        number = n + 2
        row = good_row(n, phone_of=n - 1 if n % 10 == 9 and (n - 1) % every_bad != every_bad - 1 else None)
        if n % every_bad == every_bad - 1:
            kind = (n // every_bad) % 5
            field, column, value = [
                ("phone", 1, "1234567"),
                ("plate", 5, "XX12345"),
                ("vin", 6, make_vin(n)[:8] + ("0" if make_vin(n)[8] != "0" else "1") + make_vin(n)[9:]),
                ("full_name", 0, ""),
                ("birthday", 3, "1985-13-45"),
            ][kind]
            row[column] = value
            bad[number] = field
        data.append(row)
    return data, bad


def as_csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


async def counts(service: Service) -> tuple[int, int, int]:
    async with service.runtime.sessions() as session:
        return (
            await session.scalar(select(func.count()).select_from(customers)) or 0,
            await session.scalar(select(func.count()).select_from(vehicles)) or 0,
            await session.scalar(select(func.count()).select_from(events)) or 0,
        )


async def test_ten_thousand_rows_with_fifty_bad_ones(service: Service) -> None:
    rows, bad = spreadsheet(10_000, every_bad=200)
    assert len(bad) == 50
    content = as_csv(rows)

    dry = await upload(service, content, dry_run=True)
    assert {p["row"]: p["field"] for p in dry["problems"]} == bad
    assert dry["bad_rows"] == 50 and dry["rows"] == 10_000
    assert all(p["reason"] for p in dry["problems"])
    assert await counts(service) == (0, 0, 0)

    real = await upload(service, content, dry_run=False)
    assert {p["row"]: p["field"] for p in real["problems"]} == bad
    assert (real["customers_created"], real["vehicles_created"]) == (
        dry["customers_created"],
        dry["vehicles_created"],
    )
    assert real["vehicles_created"] == 9_950
    stored_customers, stored_vehicles, stored_events = await counts(service)
    assert (stored_customers, stored_vehicles) == (real["customers_created"], 9_950)

    again = await upload(service, content, dry_run=False)
    assert (again["customers_created"], again["vehicles_created"]) == (0, 0)
    assert again["vehicles_existing"] == 9_950
    assert await counts(service) == (stored_customers, stored_vehicles, stored_events)

    two_cars = (await service.get("/v1/lookup", phone="13900000008")).json()
    assert sorted(v["plate"] for v in two_cars["vehicles"]) == ["沪A00008", "沪A00009"]
    assert two_cars["customer"]["tags"] == []
    tagged = (await service.get("/v1/lookup", plate="沪A00003")).json()
    assert tagged["customer"]["tags"] == ["注重品质", "老客户"]
    assert tagged["vehicles"][0]["insurance"]["compulsory"]["insurer"] == "中国人保"
    assert (await service.get("/v1/lookup", plate="沪A00199")).status_code == 404  # row 201: a bad phone


async def test_an_xlsx_file_with_excel_types_imports_the_same(service: Service) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append(
        ["王芳", 13912345678, "女", None, "VIP", "粤B D12345", None, "比亚迪", "汉", 2022, 5_000, None, None]
    )
    sheet.append(["李雷", "1391234", "男", None, None, None, None, None, None, None, None, None, None])
    buffer = io.BytesIO()
    workbook.save(buffer)

    report = await upload(service, buffer.getvalue(), dry_run=False, filename="门店客户.xlsx")
    assert [(p["row"], p["field"]) for p in report["problems"]] == [(3, "phone")]
    profile = (await service.get("/v1/lookup", plate="粤BD12345")).json()
    assert profile["customer"]["primary_phone"] == "+8613912345678"
    assert profile["vehicles"][0]["model_year"] == 2022


async def test_a_file_without_the_needed_columns_is_refused_naming_them(service: Service) -> None:
    response = await service.client.post(
        "/v1/imports",
        files={"file": ("x.csv", "车牌\n沪A12345\n".encode())},
        headers=service.owner_headers(),
    )
    assert response.status_code == 422 and "full_name" in response.text
    advisor = await service.client.post(
        "/v1/imports", files={"file": ("x.csv", b"a\n")}, headers=service.headers("advisor")
    )
    assert advisor.status_code == 403


async def test_a_csv_field_over_128_kib_or_a_nul_is_a_422_naming_the_file(service: Service) -> None:
    header = "姓名,手机,车牌\n".encode()
    huge_field = header + "张三,13812345678,".encode() + b"x" * (130 * 1024) + b"\n"
    with_nul = header + "张\x00三,13812345678,沪A12345\n".encode()

    for content in (huge_field, with_nul):
        response = await service.client.post(
            "/v1/imports",
            params={"dry_run": "false"},
            files={"file": ("customers.csv", content)},
            headers=service.owner_headers(),
        )

        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == ["file"]
        assert "line 2" in response.json()["detail"]
    assert (await counts(service))[0] == 0
