"""Seeding the profile read model fast: COPY straight into the tables the lookup reads (customers, phones,
vehicles, mileage readings, visits), after the service's own migrations created them. The lookup reads
only these tables, so how the rows got there (events or COPY) does not change what is measured."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from pitlane_events.identifiers import PROVINCES
from pitlane_platform.db import libpq_url

AUTHORITY_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
VISITS_PER_CUSTOMER = 3
START = datetime(2025, 1, 1, tzinfo=UTC)
LINE_ITEMS = json.dumps(
    [
        {
            "item_code": "SVC-OIL",
            "name": "更换机油机滤",
            "category": "package",
            "quantity": "1",
            "unit_price_fen": 38800,
            "line_total_fen": 38800,
        }
    ],
    ensure_ascii=False,
)


def plate_of(n: int) -> str:
    """A distinct valid plate for every n below 74 million: province, authority letter, five digits."""
    provinces = len(PROVINCES)
    letters = len(AUTHORITY_LETTERS)
    return (
        PROVINCES[n % provinces]
        + AUTHORITY_LETTERS[(n // provinces) % letters]
        + f"{(n // (provinces * letters)) % 100_000:05d}"
    )


def customer_id_of(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def seed(database_url: str, customers: int) -> None:
    with psycopg.connect(libpq_url(database_url)) as connection:
        _copy(
            connection,
            "customers (customer_id, full_name, primary_phone, gender, source, tags, custom_fields, consents,"
            " registered_at, version, visit_count, total_spend_fen, last_service_at, last_service_mileage_km)",
            (
                (
                    customer_id_of(n),
                    f"客户{n}",
                    f"+86139{n:08d}",
                    "unspecified",
                    "import",
                    "{注重品质}" if n % 3 == 0 else "{}",
                    "{}",
                    '{"sms:service": true}',
                    START,
                    1,
                    VISITS_PER_CUSTOMER,
                    VISITS_PER_CUSTOMER * 38800,
                    _visit_time(VISITS_PER_CUSTOMER - 1),
                    30_000,
                )
                for n in range(customers)
            ),
        )
        _copy(
            connection,
            "customer_phones (phone, customer_id, is_primary)",
            ((f"+86139{n:08d}", customer_id_of(n), True) for n in range(customers)),
        )
        _copy(
            connection,
            "vehicles (vehicle_id, owner_customer_id, plate, brand, model, model_year, mileage_km, insurance,"
            " version, visit_count, total_spend_fen, last_service_at, last_service_mileage_km)",
            (
                (
                    f"v-{n}",
                    customer_id_of(n),
                    plate_of(n),
                    "大众",
                    "朗逸",
                    2019,
                    30_000,
                    '{"compulsory": {"insurer": "中国人保", "expires_on": "2027-05-01", "policy_number": null}}',
                    1,
                    VISITS_PER_CUSTOMER,
                    VISITS_PER_CUSTOMER * 38800,
                    _visit_time(VISITS_PER_CUSTOMER - 1),
                    30_000,
                )
                for n in range(customers)
            ),
        )
        _copy(
            connection,
            "vehicle_mileage (vehicle_id, mileage_km, source, recorded_at, work_order_id)",
            (
                (f"v-{n}", 30_000, "work_order", _visit_time(VISITS_PER_CUSTOMER - 1), f"wo-{n}-2")
                for n in range(customers)
            ),
        )
        _copy(
            connection,
            "visits (work_order_id, customer_id, vehicle_id, branch_id, plate, mileage_km, opened_at, completed_at,"
            " total_fen, paid_fen, line_items)",
            _visits(customers),
        )
        connection.execute("ANALYZE")
        connection.commit()


def _visits(customers: int) -> Iterator[tuple[object, ...]]:
    for n in range(customers):
        for visit in range(VISITS_PER_CUSTOMER):
            at = _visit_time(visit)
            yield (
                f"wo-{n}-{visit}",
                customer_id_of(n),
                f"v-{n}",
                "b1",
                plate_of(n),
                10_000 * (visit + 1),
                at - timedelta(hours=2),
                at,
                38800,
                38800,
                LINE_ITEMS,
            )


def _visit_time(visit: int) -> datetime:
    return START + timedelta(days=120 * visit)


def _copy(connection: psycopg.Connection, target: str, rows: Iterator[tuple[object, ...]]) -> None:
    with connection.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
