"""notification's fixed SQL, as functions taking a unit of work (psycopg `%(name)s` placeholders)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

# ---- contacts, consent, tags -------------------------------------------------------------------------

_UPSERT_CONTACT = """
    INSERT INTO contacts (customer_id, full_name, phone)
    VALUES (%(customer_id)s, %(full_name)s, %(phone)s)
    ON CONFLICT (customer_id) DO UPDATE SET
        full_name = coalesce(excluded.full_name, contacts.full_name),
        phone = coalesce(contacts.phone, excluded.phone)
    WHERE contacts.erased_at IS NULL
"""


async def upsert_contact(unit: Unit, customer_id: str, *, full_name: str | None, phone: str | None) -> None:
    """A customer met (registered in customer-profile, or introduced by workorder): the name and the first
    phone known. A phone is only filled in where none is known: customer-profile's primary one wins."""
    await execute_on_driver(
        unit,
        "upsert contact",
        _UPSERT_CONTACT,
        {"customer_id": customer_id, "full_name": full_name, "phone": phone},
    )


_CONTACT_COLUMNS = {"phone": "phone", "wechat": "wechat_open_id", "email": "email"}


async def set_contact_point(
    unit: Unit, customer_id: str, kind: str, value: str | None, *, primary: bool
) -> None:
    """Set the customer's address on one channel: a primary one replaces, another fills a gap only."""
    column = _CONTACT_COLUMNS[kind]
    await execute_on_driver(
        unit,
        "set contact point",
        f"""
        INSERT INTO contacts (customer_id, {column}) VALUES (%(customer_id)s, %(value)s)
        ON CONFLICT (customer_id) DO UPDATE
            SET {column} = CASE WHEN %(primary)s OR contacts.{column} IS NULL THEN excluded.{column}
                                ELSE contacts.{column} END
        WHERE contacts.erased_at IS NULL
        """,
        {"customer_id": customer_id, "value": value, "primary": primary},
    )


async def clear_contact_point(unit: Unit, customer_id: str, kind: str, value: str) -> None:
    column = _CONTACT_COLUMNS[kind]
    await execute_on_driver(
        unit,
        "clear contact point",
        f"UPDATE contacts SET {column} = NULL WHERE customer_id = %(customer_id)s AND {column} = %(value)s",
        {"customer_id": customer_id, "value": value},
    )


async def merge_contacts(unit: Unit, survivor: str, merged: Sequence[str]) -> None:
    """The merged customers point at the survivor, which takes the addresses it lacks; of the consent
    decisions per channel and purpose the newest stands (an unsubscribe on the merged record is not undone
    by an older grant on the survivor's); tags move over."""
    parameters = {"survivor": survivor, "merged": list(merged)}
    await execute_on_driver(
        unit,
        "merge contacts",
        """
        INSERT INTO contacts (customer_id) VALUES (%(survivor)s) ON CONFLICT (customer_id) DO NOTHING
        """,
        parameters,
    )
    await execute_on_driver(
        unit,
        "merge contacts",
        """
        UPDATE contacts AS s SET
            phone = coalesce(s.phone, m.phone),
            wechat_open_id = coalesce(s.wechat_open_id, m.wechat_open_id),
            email = coalesce(s.email, m.email),
            full_name = coalesce(s.full_name, m.full_name)
        FROM (SELECT (array_agg(phone) FILTER (WHERE phone IS NOT NULL))[1] AS phone,
                     (array_agg(wechat_open_id) FILTER (WHERE wechat_open_id IS NOT NULL))[1] AS wechat_open_id,
                     (array_agg(email) FILTER (WHERE email IS NOT NULL))[1] AS email,
                     (array_agg(full_name) FILTER (WHERE full_name IS NOT NULL))[1] AS full_name
              FROM contacts WHERE customer_id = ANY(%(merged)s)) AS m
        WHERE s.customer_id = %(survivor)s
        """,
        parameters,
    )
    await execute_on_driver(
        unit,
        "merge contacts",
        "UPDATE contacts SET merged_into = %(survivor)s WHERE customer_id = ANY(%(merged)s)",
        parameters,
    )
    await execute_on_driver(
        unit,
        "merge consents",
        """
        INSERT INTO consents (customer_id, channel, purpose, granted, source, decided_at)
        SELECT DISTINCT ON (channel, purpose) %(survivor)s, channel, purpose, granted, source, decided_at
        FROM consents WHERE customer_id = ANY(%(merged)s)
        ORDER BY channel, purpose, decided_at DESC
        ON CONFLICT (customer_id, channel, purpose) DO UPDATE
            SET granted = excluded.granted, source = excluded.source, decided_at = excluded.decided_at
            WHERE consents.decided_at < excluded.decided_at
        """,
        parameters,
    )
    await execute_on_driver(
        unit,
        "merge tags",
        """
        INSERT INTO customer_tags (customer_id, tag)
        SELECT DISTINCT %(survivor)s, tag FROM customer_tags WHERE customer_id = ANY(%(merged)s)
        ON CONFLICT DO NOTHING
        """,
        parameters,
    )


async def erase_contact(unit: Unit, customer_id: str, at: datetime) -> None:
    """Everything personal notification holds of the customer goes: addresses, name, the text and address
    of every message to them, recorded copies, drafts and comments of their surveys (ADR 13)."""
    parameters = {"customer_id": customer_id, "at": at}
    statements = [
        """
        INSERT INTO contacts (customer_id, erased_at) VALUES (%(customer_id)s, %(at)s)
        ON CONFLICT (customer_id) DO UPDATE SET full_name = NULL, phone = NULL, wechat_open_id = NULL,
            email = NULL, erased_at = %(at)s
        """,
        """
        DELETE FROM recorded_messages WHERE message_id IN (
            SELECT message_id FROM messages WHERE customer_id = %(customer_id)s)
        """,
        """
        UPDATE messages SET address = NULL, subject = NULL, body = NULL, parameters = '{}'::jsonb,
            link = NULL, context = '{}'::jsonb, content_erased_at = %(at)s,
            status = CASE WHEN status = 'queued' THEN 'suppressed' ELSE status END,
            status_reason = CASE WHEN status = 'queued' THEN 'customer_erased' ELSE status_reason END
        WHERE customer_id = %(customer_id)s
        """,
        # A survey still open takes no answer any more: its comment would be published after the scrub.
        """
        UPDATE surveys SET draft_comment = NULL,
            status = CASE WHEN status IN ('scheduled', 'sent') THEN 'cancelled' ELSE status END,
            status_reason = CASE WHEN status IN ('scheduled', 'sent') THEN 'customer_erased' ELSE status_reason END
        WHERE customer_id = %(customer_id)s
        """,
        "UPDATE appointments SET plate = NULL, service_requested = '' WHERE customer_id = %(customer_id)s",
        "UPDATE work_orders SET plate = NULL WHERE customer_id = %(customer_id)s",
        "UPDATE vehicles SET plate = NULL WHERE owner_customer_id = %(customer_id)s",
        """
        UPDATE survey_answers SET comment = NULL
        WHERE survey_id IN (SELECT survey_id FROM surveys WHERE customer_id = %(customer_id)s)
        """,
        "DELETE FROM wechat_allowances WHERE customer_id = %(customer_id)s",
        "DELETE FROM customer_tags WHERE customer_id = %(customer_id)s",
    ]
    for statement in statements:
        await execute_on_driver(unit, "erase customer", statement, parameters)


async def known_to_profile(unit: Unit, customer_id: str) -> bool:
    """customer-profile's events about the customer have been applied (the contacts read model has a version)."""
    row = await execute_on_driver(
        unit,
        "known to profile",
        "SELECT 1 FROM read_model_versions WHERE read_model = 'contacts' AND aggregate_id = %(c)s",
        {"c": customer_id},
    )
    return row is not None


_CONTACT = """
    WITH RECURSIVE chain AS (
        SELECT c.*, 0 AS depth FROM contacts c WHERE customer_id = %(customer_id)s
        UNION ALL
        SELECT c.*, chain.depth + 1 FROM contacts c JOIN chain ON c.customer_id = chain.merged_into
        WHERE chain.depth < 10
    )
    SELECT customer_id, full_name, phone, wechat_open_id, email, locale, erased_at
    FROM chain WHERE merged_into IS NULL OR erased_at IS NOT NULL
    ORDER BY depth LIMIT 1
"""


async def contact(unit: Unit, customer_id: str) -> dict[str, Any] | None:
    """The customer as notification knows them, following merges to the surviving customer."""
    rows = await fetch_on_driver(unit, "contact", _CONTACT, {"customer_id": customer_id}, as_dicts=True)
    return rows[0] if rows else None


async def record_consent(
    unit: Unit, customer_id: str, channel: str, purpose: str, *, granted: bool, source: str, at: datetime
) -> bool:
    """Keep the newest decision per channel and purpose (a late, older decision changes nothing)."""
    row = await execute_on_driver(
        unit,
        "record consent",
        """
        INSERT INTO consents (customer_id, channel, purpose, granted, source, decided_at)
        VALUES (%(customer_id)s, %(channel)s, %(purpose)s, %(granted)s, %(source)s, %(at)s)
        ON CONFLICT (customer_id, channel, purpose) DO UPDATE
            SET granted = excluded.granted, source = excluded.source, decided_at = excluded.decided_at
            WHERE consents.decided_at <= excluded.decided_at
        RETURNING 1
        """,
        {
            "customer_id": customer_id,
            "channel": channel,
            "purpose": purpose,
            "granted": granted,
            "source": source,
            "at": at,
        },
    )
    return row is not None


async def consent(unit: Unit, customer_id: str, channel: str, purpose: str) -> tuple[bool, str] | None:
    """(granted, source) of the customer's decision, or None when they never decided."""
    row = await execute_on_driver(
        unit,
        "consent",
        """
        SELECT granted, source FROM consents
        WHERE customer_id = %(customer_id)s AND channel = %(channel)s AND purpose = %(purpose)s
        """,
        {"customer_id": customer_id, "channel": channel, "purpose": purpose},
    )
    return (bool(row[0]), str(row[1])) if row else None


async def tag(unit: Unit, customer_id: str, tag_name: str, *, present: bool) -> None:
    if present:
        sql = "INSERT INTO customer_tags (customer_id, tag) VALUES (%(c)s, %(t)s) ON CONFLICT DO NOTHING"
    else:
        sql = "DELETE FROM customer_tags WHERE customer_id = %(c)s AND tag = %(t)s"
    await execute_on_driver(unit, "tag", sql, {"c": customer_id, "t": tag_name})


async def customers_tagged(unit: Unit, tags: Sequence[str]) -> list[str]:
    rows = await fetch_on_driver(
        unit,
        "customers tagged",
        """
        SELECT DISTINCT t.customer_id FROM customer_tags t JOIN contacts c USING (customer_id)
        WHERE t.tag = ANY(%(tags)s) AND c.merged_into IS NULL AND c.erased_at IS NULL
        ORDER BY t.customer_id
        """,
        {"tags": list(tags)},
    )
    return [row[0] for row in rows]


async def customer_by_phone(unit: Unit, phone: str) -> list[str]:
    rows = await fetch_on_driver(
        unit,
        "customer by phone",
        "SELECT customer_id FROM contacts WHERE phone = %(phone)s AND merged_into IS NULL AND erased_at IS NULL",
        {"phone": phone},
    )
    return [row[0] for row in rows]


# ---- branches, work orders ------------------------------------------------------------------------------


async def upsert_branch(unit: Unit, branch_id: str, *, name: str | None, timezone: str | None) -> None:
    await execute_on_driver(
        unit,
        "upsert branch",
        """
        INSERT INTO branches (branch_id, name, timezone)
        VALUES (%(branch_id)s, coalesce(%(name)s, %(branch_id)s), coalesce(%(timezone)s, 'Asia/Shanghai'))
        ON CONFLICT (branch_id) DO UPDATE SET
            name = coalesce(%(name)s, branches.name), timezone = coalesce(%(timezone)s, branches.timezone)
        """,
        {"branch_id": branch_id, "name": name, "timezone": timezone},
    )


async def branch(unit: Unit, branch_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "branch",
        """
        SELECT b.branch_id, b.name, b.timezone, q.starts, q.ends
        FROM (SELECT %(branch_id)s AS branch_id) AS wanted
        LEFT JOIN branches b USING (branch_id)
        LEFT JOIN branch_quiet_hours q ON q.branch_id = wanted.branch_id
        """,
        {"branch_id": branch_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def set_quiet_hours(unit: Unit, branch_id: str, starts: time, ends: time) -> None:
    await execute_on_driver(
        unit,
        "set quiet hours",
        """
        INSERT INTO branch_quiet_hours (branch_id, starts, ends) VALUES (%(b)s, %(s)s, %(e)s)
        ON CONFLICT (branch_id) DO UPDATE SET starts = excluded.starts, ends = excluded.ends
        """,
        {"b": branch_id, "s": starts, "e": ends},
    )


async def open_work_order(
    unit: Unit, work_order_id: str, *, branch_id: str, customer_id: str, plate: str, advisor_id: str
) -> None:
    await execute_on_driver(
        unit,
        "open work order",
        """
        INSERT INTO work_orders (work_order_id, branch_id, customer_id, plate, advisor_id)
        VALUES (%(w)s, %(b)s, %(c)s, %(p)s, %(a)s)
        ON CONFLICT (work_order_id) DO NOTHING
        """,
        {"w": work_order_id, "b": branch_id, "c": customer_id, "p": plate, "a": advisor_id},
    )


async def complete_work_order(
    unit: Unit,
    work_order_id: str,
    *,
    branch_id: str,
    customer_id: str,
    plate: str,
    advisor_id: str,
    technician_ids: Sequence[str],
    completed_at: datetime,
) -> None:
    await execute_on_driver(
        unit,
        "complete work order",
        """
        INSERT INTO work_orders (work_order_id, branch_id, customer_id, plate, advisor_id, technician_ids,
                                 completed_at)
        VALUES (%(w)s, %(b)s, %(c)s, %(p)s, %(a)s, %(t)s::jsonb, %(at)s)
        ON CONFLICT (work_order_id) DO UPDATE SET
            customer_id = excluded.customer_id, advisor_id = excluded.advisor_id,
            technician_ids = excluded.technician_ids, completed_at = excluded.completed_at
        """,
        {
            "w": work_order_id,
            "b": branch_id,
            "c": customer_id,
            "p": plate,
            "a": advisor_id,
            "t": json.dumps(list(technician_ids)),
            "at": completed_at,
        },
    )


async def void_work_order(unit: Unit, work_order_id: str, at: datetime) -> None:
    await execute_on_driver(
        unit,
        "void work order",
        "UPDATE work_orders SET voided_at = %(at)s WHERE work_order_id = %(w)s",
        {"w": work_order_id, "at": at},
    )


async def work_order(unit: Unit, work_order_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "work order",
        "SELECT * FROM work_orders WHERE work_order_id = %(w)s",
        {"w": work_order_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


# ---- appointments, vehicles -----------------------------------------------------------------------------


async def book_appointment(
    unit: Unit,
    appointment_id: str,
    *,
    branch_id: str,
    customer_id: str,
    plate: str | None,
    slot_start: datetime,
    service_requested: str,
) -> None:
    await execute_on_driver(
        unit,
        "book appointment",
        """
        INSERT INTO appointments (appointment_id, branch_id, customer_id, plate, slot_start, service_requested,
                                  status)
        VALUES (%(a)s, %(b)s, %(c)s, %(p)s, %(s)s, %(r)s, 'booked')
        ON CONFLICT (appointment_id) DO NOTHING
        """,
        {
            "a": appointment_id,
            "b": branch_id,
            "c": customer_id,
            "p": plate,
            "s": slot_start,
            "r": service_requested,
        },
    )


async def update_appointment(
    unit: Unit, appointment_id: str, *, status: str | None = None, slot_start: datetime | None = None
) -> None:
    await execute_on_driver(
        unit,
        "update appointment",
        """
        UPDATE appointments SET status = coalesce(%(status)s, status), slot_start = coalesce(%(s)s, slot_start)
        WHERE appointment_id = %(a)s
        """,
        {"a": appointment_id, "status": status, "s": slot_start},
    )


async def appointment(unit: Unit, appointment_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "appointment",
        "SELECT * FROM appointments WHERE appointment_id = %(a)s",
        {"a": appointment_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def upsert_vehicle(
    unit: Unit, vehicle_id: str, *, plate: str | None, owner_customer_id: str | None
) -> None:
    await execute_on_driver(
        unit,
        "upsert vehicle",
        """
        INSERT INTO vehicles (vehicle_id, plate, owner_customer_id) VALUES (%(v)s, %(p)s, %(o)s)
        ON CONFLICT (vehicle_id) DO UPDATE SET plate = coalesce(%(p)s, vehicles.plate),
            owner_customer_id = coalesce(%(o)s, vehicles.owner_customer_id)
        """,
        {"v": vehicle_id, "p": plate, "o": owner_customer_id},
    )


async def vehicle_plate(unit: Unit, vehicle_id: str) -> str | None:
    row = await execute_on_driver(
        unit, "vehicle plate", "SELECT plate FROM vehicles WHERE vehicle_id = %(v)s", {"v": vehicle_id}
    )
    return row[0] if row else None
