"""The message log's fixed SQL: one row per message to one customer on one channel (adapters/tables.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

LIMITED_STATUSES = ("queued", "sent", "delivered")

_INSERT = """
    INSERT INTO messages (
        message_id, dedupe_key, batch_key, customer_id, branch_id, channel, purpose, trigger, locale,
        subject, body, provider_template, parameters, link, context, status, status_reason, due_at,
        work_order_id, appointment_id, reminder_id, campaign_id, survey_id, correlation_id, created_at
    ) VALUES (
        %(message_id)s, %(dedupe_key)s, %(batch_key)s, %(customer_id)s, %(branch_id)s, %(channel)s,
        %(purpose)s, %(trigger)s, %(locale)s, %(subject)s, %(body)s, %(provider_template)s,
        %(parameters)s::jsonb, %(link)s, %(context)s::jsonb, %(status)s, %(status_reason)s, %(due_at)s,
        %(work_order_id)s, %(appointment_id)s, %(reminder_id)s, %(campaign_id)s, %(survey_id)s,
        %(correlation_id)s, %(created_at)s
    )
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING message_id
"""


async def insert(unit: Unit, row: Mapping[str, Any]) -> bool:
    """False when a message with the same dedupe key exists (the trigger was seen before)."""
    parameters = {
        **row,
        "parameters": json.dumps(dict(row.get("parameters") or {}), ensure_ascii=False),
        "context": json.dumps(dict(row.get("context") or {}), ensure_ascii=False, default=str),
    }
    return await execute_on_driver(unit, "insert message", _INSERT, parameters) is not None


async def queued_batch(unit: Unit, batch_key: str) -> list[dict[str, Any]]:
    """The batch's messages still to send, locked: a provider callback or another timer waits for them."""
    return await fetch_on_driver(
        unit,
        "queued batch",
        """
        SELECT * FROM messages WHERE batch_key = %(batch_key)s AND status = 'queued'
        ORDER BY created_at, message_id FOR UPDATE
        """,
        {"batch_key": batch_key},
        as_dicts=True,
    )


async def mark_sent(
    unit: Unit,
    message_ids: Sequence[str],
    *,
    address: str,
    provider: str,
    provider_message_id: str | None,
    at: datetime,
) -> None:
    await execute_on_driver(
        unit,
        "mark sent",
        """
        UPDATE messages SET status = 'sent', status_reason = NULL, sent_at = %(at)s, attempts = attempts + 1,
            address = %(address)s, provider = %(provider)s, provider_message_id = %(provider_message_id)s
        WHERE message_id = ANY(%(ids)s)
        """,
        {
            "ids": list(message_ids),
            "at": at,
            "address": address,
            "provider": provider,
            "provider_message_id": provider_message_id,
        },
    )


async def mark_failed(
    unit: Unit, message_ids: Sequence[str], *, reason: str, at: datetime, attempted: bool
) -> None:
    await execute_on_driver(
        unit,
        "mark failed",
        """
        UPDATE messages SET status = 'failed', status_reason = %(reason)s, failed_at = %(at)s,
            attempts = attempts + CASE WHEN %(attempted)s THEN 1 ELSE 0 END
        WHERE message_id = ANY(%(ids)s)
        """,
        {"ids": list(message_ids), "reason": reason, "at": at, "attempted": attempted},
    )


async def mark_suppressed(unit: Unit, message_ids: Sequence[str], *, reason: str) -> None:
    await execute_on_driver(
        unit,
        "mark suppressed",
        "UPDATE messages SET status = 'suppressed', status_reason = %(reason)s WHERE message_id = ANY(%(ids)s)",
        {"ids": list(message_ids), "reason": reason},
    )


async def record_failed_attempt(unit: Unit, message_ids: Sequence[str], *, reason: str) -> int:
    """One more failed attempt for the batch; returns the attempts made so far."""
    row = await execute_on_driver(
        unit,
        "failed attempt",
        """
        WITH updated AS (
            UPDATE messages SET attempts = attempts + 1, status_reason = %(reason)s
            WHERE message_id = ANY(%(ids)s) RETURNING attempts
        )
        SELECT max(attempts) FROM updated
        """,
        {"ids": list(message_ids), "reason": reason},
    )
    return int(row[0]) if row and row[0] is not None else 0


async def move_to_batch(unit: Unit, message_ids: Sequence[str], *, batch_key: str, due_at: datetime) -> None:
    await execute_on_driver(
        unit,
        "move to batch",
        "UPDATE messages SET batch_key = %(batch_key)s, due_at = %(due_at)s WHERE message_id = ANY(%(ids)s)",
        {"ids": list(message_ids), "batch_key": batch_key, "due_at": due_at},
    )


async def limited_contacts_since(
    unit: Unit, customer_id: str, triggers: Sequence[str], since: datetime
) -> list[datetime]:
    """When the customer was sent (or is queued) a survey or marketing message since `since`."""
    rows = await fetch_on_driver(
        unit,
        "limited contacts",
        """
        SELECT coalesce(sent_at, due_at) FROM messages
        WHERE customer_id = %(customer_id)s AND trigger = ANY(%(triggers)s) AND status = ANY(%(statuses)s)
          AND coalesce(sent_at, due_at) > %(since)s
        """,
        {
            "customer_id": customer_id,
            "triggers": list(triggers),
            "statuses": list(LIMITED_STATUSES),
            "since": since,
        },
    )
    return [row[0] for row in rows]


async def sent_to_address_since(unit: Unit, channel: str, address: str, since: datetime) -> int:
    """Sends to one address on one channel since `since` (a provider's per-number daily cap)."""
    row = await execute_on_driver(
        unit,
        "sent to address",
        """
        SELECT count(DISTINCT coalesce(provider_message_id, message_id)) FROM messages
        WHERE channel = %(channel)s AND address = %(address)s AND sent_at >= %(since)s
        """,
        {"channel": channel, "address": address, "since": since},
    )
    return int(row[0]) if row else 0


async def record_delivery(
    unit: Unit,
    provider: str,
    provider_message_id: str,
    *,
    delivered: bool,
    error_code: str | None,
    at: datetime,
) -> list[dict[str, Any]]:
    """Apply a provider's delivery receipt to the messages it sent under that id; returns them (once: a
    receipt pushed twice changes nothing the second time)."""
    return await fetch_on_driver(
        unit,
        "record delivery",
        """
        UPDATE messages SET
            status = CASE WHEN %(delivered)s THEN 'delivered' ELSE 'failed' END,
            delivered_at = CASE WHEN %(delivered)s THEN %(at)s END,
            failed_at = CASE WHEN %(delivered)s THEN NULL ELSE %(at)s END,
            status_reason = CASE WHEN %(delivered)s THEN NULL ELSE 'not_delivered: ' || coalesce(%(error)s, 'unknown') END
        WHERE provider = %(provider)s AND provider_message_id = %(id)s AND status = 'sent'
        RETURNING message_id, customer_id, channel, purpose, trigger, survey_id, campaign_id, status, status_reason,
                  correlation_id
        """,
        {
            "provider": provider,
            "id": provider_message_id,
            "delivered": delivered,
            "error": error_code,
            "at": at,
        },
        as_dicts=True,
    )


async def spend_wechat_allowance(unit: Unit, customer_id: str, template_id: str) -> bool:
    row = await execute_on_driver(
        unit,
        "spend wechat allowance",
        """
        UPDATE wechat_allowances SET remaining = remaining - 1
        WHERE customer_id = %(c)s AND template_id = %(t)s AND remaining > 0 RETURNING remaining
        """,
        {"c": customer_id, "t": template_id},
    )
    return row is not None


async def wechat_allowance(unit: Unit, customer_id: str, template_id: str) -> int:
    row = await execute_on_driver(
        unit,
        "wechat allowance",
        "SELECT remaining FROM wechat_allowances WHERE customer_id = %(c)s AND template_id = %(t)s",
        {"c": customer_id, "t": template_id},
    )
    return int(row[0]) if row else 0


async def grant_wechat_allowance(unit: Unit, customer_id: str, template_id: str, count: int) -> int:
    row = await execute_on_driver(
        unit,
        "grant wechat allowance",
        """
        INSERT INTO wechat_allowances (customer_id, template_id, remaining) VALUES (%(c)s, %(t)s, %(n)s)
        ON CONFLICT (customer_id, template_id) DO UPDATE SET remaining = wechat_allowances.remaining + %(n)s
        RETURNING remaining
        """,
        {"c": customer_id, "t": template_id, "n": count},
    )
    assert row is not None
    return int(row[0])


async def revoke_wechat_allowance(unit: Unit, customer_id: str, template_id: str) -> None:
    await execute_on_driver(
        unit,
        "revoke wechat allowance",
        "UPDATE wechat_allowances SET remaining = 0 WHERE customer_id = %(c)s AND template_id = %(t)s",
        {"c": customer_id, "t": template_id},
    )


async def record(unit: Unit, message: Mapping[str, Any]) -> None:
    """The recording provider's copy of a message it was given (idempotent per message id)."""
    await execute_on_driver(
        unit,
        "record message",
        """
        INSERT INTO recorded_messages (message_id, channel, address, subject, body, provider_template,
                                       parameters, link)
        VALUES (%(message_id)s, %(channel)s, %(address)s, %(subject)s, %(body)s, %(provider_template)s,
                %(parameters)s::jsonb, %(link)s)
        ON CONFLICT (message_id) DO NOTHING
        """,
        {**message, "parameters": json.dumps(dict(message["parameters"]), ensure_ascii=False)},
    )
