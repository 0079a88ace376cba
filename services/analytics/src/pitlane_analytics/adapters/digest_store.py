"""The digest tables: subscriptions, the delivery log and the development mailer's recorded e-mails, in
fixed SQL on the platform's driver connections."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

_COLUMNS = (
    "subscription_id, email, branch_id, cadence, weekday, month_day, send_time, timezone, language, "
    "created_by, created_at"
)


async def branch_timezone(unit: Unit, branch_id: str) -> str | None:
    """The time zone workorder gave the branch, if analytics has heard of it."""
    rows = await fetch_on_driver(
        unit, "branch time zone", "SELECT timezone FROM branches WHERE branch_id = %(b)s", {"b": branch_id}
    )
    return rows[0][0] if rows else None


async def insert_subscription(unit: Unit, subscription: dict[str, Any]) -> None:
    await execute_on_driver(
        unit,
        "INSERT digest_subscriptions",
        f"INSERT INTO digest_subscriptions ({_COLUMNS}) VALUES "
        "(%(subscription_id)s, %(email)s, %(branch_id)s, %(cadence)s, %(weekday)s, %(month_day)s, "
        "%(send_time)s, %(timezone)s, %(language)s, %(created_by)s, %(created_at)s)",
        subscription,
    )


async def subscription(unit: Unit, subscription_id: str) -> dict[str, Any] | None:
    """A subscription that has not been deleted."""
    rows = await fetch_on_driver(
        unit,
        "SELECT digest_subscriptions",
        f"SELECT {_COLUMNS} FROM digest_subscriptions WHERE subscription_id = %(id)s AND deleted_at IS NULL",
        {"id": subscription_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def subscriptions(unit: Unit, *, branches: Collection[str] | None) -> list[dict[str, Any]]:
    """The subscriptions not deleted; `branches` given: only those of these branches (not the chain's)."""
    return await fetch_on_driver(
        unit,
        "SELECT digest_subscriptions",
        f"SELECT {_COLUMNS} FROM digest_subscriptions WHERE deleted_at IS NULL "
        "AND (%(all)s OR branch_id = ANY(%(branches)s)) ORDER BY created_at, subscription_id",
        {"all": branches is None, "branches": list(branches or ())},
        as_dicts=True,
    )


async def mark_deleted(unit: Unit, subscription_id: str, *, now: datetime) -> None:
    await execute_on_driver(
        unit,
        "UPDATE digest_subscriptions",
        "UPDATE digest_subscriptions SET deleted_at = %(now)s WHERE subscription_id = %(id)s",
        {"id": subscription_id, "now": now},
    )


async def record_delivery(unit: Unit, delivery: dict[str, Any]) -> None:
    """One attempt to send a period's digest, numbered after the period's earlier attempts."""
    await execute_on_driver(
        unit,
        "INSERT digest_deliveries",
        "INSERT INTO digest_deliveries (subscription_id, period_start, attempt, period_end, attempted_at, "
        "outcome, reason, message_id) "
        "SELECT %(subscription_id)s, %(period_start)s, coalesce(max(attempt), 0) + 1, %(period_end)s, "
        "%(attempted_at)s, %(outcome)s, %(reason)s, %(message_id)s "
        "FROM digest_deliveries WHERE subscription_id = %(subscription_id)s AND period_start = %(period_start)s",
        delivery,
    )


async def was_sent(unit: Unit, subscription_id: str, period_start: date) -> bool:
    row = await execute_on_driver(
        unit,
        "SELECT digest_deliveries",
        "SELECT 1 FROM digest_deliveries WHERE subscription_id = %(id)s AND period_start = %(start)s "
        "AND outcome = 'sent'",
        {"id": subscription_id, "start": period_start},
    )
    return row is not None


async def deliveries(unit: Unit, subscription_id: str) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit,
        "SELECT digest_deliveries",
        "SELECT period_start, period_end, attempt, attempted_at, outcome, reason, message_id "
        "FROM digest_deliveries WHERE subscription_id = %(id)s ORDER BY attempted_at, period_start, attempt",
        {"id": subscription_id},
        as_dicts=True,
    )


async def record_email(unit: Unit, email: dict[str, Any]) -> None:
    await execute_on_driver(
        unit,
        "INSERT recorded_digest_emails",
        "INSERT INTO recorded_digest_emails (message_id, email, subject, text, html, recorded_at) "
        "VALUES (%(message_id)s, %(email)s, %(subject)s, %(text)s, %(html)s, %(recorded_at)s) "
        "ON CONFLICT (message_id) DO NOTHING",
        email,
    )
